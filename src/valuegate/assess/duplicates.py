"""Duplicate rows within a split, rows shared between splits, ids shared between splits,
and identical features with different labels.

A held-out row identical to an earlier split's row is leakage only when it is a copy of
it. Distinct entities with identical coded profiles (a few categorical features) collide
by chance, and then as often within one split as across splits: the expected share of
held-out rows that repeat an earlier split's whole row (features, amount, label) is the
share of the earlier splits' rows that repeat another of their rows (under distinct ids
with `data.id_column`; see `expected_cross_share`). Only an excess beyond that (at least
`cross_split_block` of the held-out rows, and beyond chance by a one-sided binomial test
at `chance_level`) blocks; so does an id (`data.id_column`) seen in an earlier split.
Otherwise it is a warning.

Exact counts on every row: a 64-bit hash per row (features + target) is cheap."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from valuegate.assess.findings import CheckResult, Finding
from valuegate.assess.inputs import AssessData, plural
from valuegate.config.schema import AssessConfig

# Later splits are checked against earlier ones: a test row also in train or valid leaks.
ORDER = ("train", "valid", "test")


def row_hashes(data: AssessData, with_target: bool = True) -> dict[str, np.ndarray]:
    columns = whole_row_columns(data, with_target)
    return {
        split: pd.util.hash_pandas_object(frame[columns], index=False).to_numpy()
        for split, frame in data.splits.items()
    }


def duplicate_masks(
    hashes: dict[str, np.ndarray],
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(repeats within each split after its first occurrence, rows of a split that already
    occur in an earlier split), as boolean masks per split."""
    within = {s: pd.Series(h).duplicated(keep="first").to_numpy() for s, h in hashes.items()}
    cross = {}
    seen = np.empty(0, dtype=np.uint64)
    for split in ORDER:
        cross[split] = (
            np.isin(hashes[split], seen) if len(seen) else np.zeros(len(hashes[split]), dtype=bool)
        )
        seen = np.union1d(seen, hashes[split])
    return within, cross


def check_duplicates(data: AssessData, config: AssessConfig) -> CheckResult:
    result = CheckResult()
    hashes = row_hashes(data)
    within, cross = duplicate_masks(hashes)
    rows = {s: len(h) for s, h in hashes.items()}
    within_counts = {s: int(m.sum()) for s, m in within.items()}
    cross_counts = {s: int(m.sum()) for s, m in cross.items()}
    n_within = sum(within_counts.values())
    n_cross = sum(cross_counts.values())
    held_out = rows["valid"] + rows["test"]
    result.figures.update(cross_split_duplicates=n_cross)
    # With an id column, a copy repeats the id too; rows alike but for their ids are
    # distinct cases with one coded profile (census codes, bands), as production will see
    # them: reported, never dropped by the remedy.
    copies = within
    has_ids = bool(data.id_column) and all(data.id_column in f for f in data.splits.values())
    if has_ids:
        with_id = {
            s: pd.util.hash_pandas_object(
                frame[[*whole_row_columns(data), data.id_column]], index=False
            ).to_numpy()
            for s, frame in data.splits.items()
        }
        copies = {s: pd.Series(h).duplicated(keep="first").to_numpy() for s, h in with_id.items()}
    copy_counts = {s: int(m.sum()) for s, m in copies.items()}
    n_copies = sum(copy_counts.values())
    n_profiles = n_within - n_copies
    result.figures.update(duplicate_rows=n_copies, identical_profile_rows=n_profiles)
    result.remedy_rows["duplicates:within_split"] = {
        s: np.flatnonzero(m) for s, m in copies.items()
    }
    result.remedy_rows["duplicates:cross_split"] = {s: np.flatnonzero(m) for s, m in cross.items()}
    total_rows = sum(rows.values())
    distinct = (
        f"; {plural(n_profiles, 'more row shares', 'more rows share')} the features and label "
        f"of an earlier row under another {data.id_column!r}: distinct cases with one profile, "
        "kept"
        if n_copies and n_profiles
        else ""
    )
    if n_copies:
        share = n_copies / total_rows
        what = (
            f"an earlier row of the same split, {data.id_column!r} included"
            if has_ids
            else ("an earlier row of the same split")
        )
        result.findings.append(
            Finding(
                id="duplicates:within_split",
                severity="warn" if share >= config.duplicates.within_split_warn else "info",
                title=f"{plural(n_copies, 'row', 'rows')} ({share:.1%}) "
                f"repeat{'s' if n_copies == 1 else ''} {what} "
                f"(train {copy_counts['train']:,}, valid {copy_counts['valid']:,}, test "
                f"{copy_counts['test']:,}){distinct}.",
                action="find out whether they are real repeat cases or copies from a join; "
                "assess.remedies.drop_duplicates: true drops the copies",
                evidence={"repeats": copy_counts, "share": share, "distinct_ids": n_profiles},
                example_rows={
                    s: data.row_ids(s, np.flatnonzero(m)[:10]) for s, m in copies.items() if m.any()
                },
            )
        )
    elif n_profiles:
        share = n_profiles / total_rows
        result.findings.append(
            Finding(
                id="duplicates:within_split",
                severity="info",
                title=f"{plural(n_profiles, 'row', 'rows')} ({share:.1%}) "
                f"share{'s' if n_profiles == 1 else ''} the feature values and label of an earlier "
                f"row of the same split under another "
                f"{data.id_column!r} (train {within_counts['train']:,}, valid "
                f"{within_counts['valid']:,}, test {within_counts['test']:,}): distinct cases "
                "with identical feature vectors, as coarse coded features make common. Not "
                "copies; the remedy keeps them.",
                action=f"nothing, if {data.id_column!r} identifies distinct cases",
                evidence={
                    "repeats": copy_counts,  # copies: none
                    "share": 0.0,
                    "distinct_ids": n_profiles,
                    "identical_profiles": within_counts,
                },
                example_rows={
                    s: data.row_ids(s, np.flatnonzero(m)[:10]) for s, m in within.items() if m.any()
                },
            )
        )
    if n_cross:
        _cross_split(data, config, result, hashes, cross, cross_counts, held_out)
    if data.id_column and all(data.id_column in f for f in data.splits.values()):
        _shared_ids(data, config, result, held_out)
    if data.task == "binary":
        _conflicting_labels(data, result)
    return result


def _conflicting_labels(data: AssessData, result: CheckResult) -> None:
    features = row_hashes(data, with_target=False)
    frame = pd.DataFrame(
        {
            "features": np.concatenate(list(features.values())),
            "label": np.concatenate([data.y(s) for s in features]),
        }
    )
    labels = frame.groupby("features", sort=False)["label"].transform("nunique")
    conflicting = labels.to_numpy() > 1
    n = int(conflicting.sum())
    result.figures["conflicting_label_rows"] = n
    if n:
        offsets = np.cumsum([0, *(len(h) for h in features.values())])
        examples = {}
        for (split, _), start, stop in zip(
            features.items(), offsets[:-1], offsets[1:], strict=True
        ):
            idx = np.flatnonzero(conflicting[start:stop])
            if len(idx):
                examples[split] = data.row_ids(split, idx[:10])
        result.findings.append(
            Finding(
                id="duplicates:conflicting_labels",
                severity="warn",
                title=f"{plural(n, 'row shares', 'rows share')} every feature value with a row "
                "of the other label: "
                "no model can tell them apart.",
                action="check the labels of these rows, or add the feature that separates them",
                evidence={"rows": n},
                example_rows=examples,
            )
        )


def whole_row_columns(data: AssessData, with_target: bool = True) -> list[str]:
    # The amount is part of a row: two loans alike but for their size are not repeats
    # (dropping one would change the value estimates).
    amount = [data.amount_column] if data.amount_column else []
    return list(dict.fromkeys([*data.features, *amount, *([data.target] if with_target else [])]))


def expected_cross_share(
    data: AssessData, hashes: dict[str, np.ndarray]
) -> tuple[dict[str, float], str]:
    """(per held-out split, the share of its rows expected to repeat a whole row of the
    earlier splits by chance, i.e. as distinct rows of this feature space; how it was
    judged: "distinct ids", "repeats", "independent", or "mixed" when the splits differ).

    The chance that a held-out row matches one of the N earlier rows is, for rows drawn
    alike, the chance that an earlier row matches one of the N - 1 others: the share of
    the pool (train; train + valid for test) whose whole row occurs at another pool row.
    That sees correlated columns (children of one age share every ACS code), which an
    independence model misses by orders of magnitude; but copies inside the pool inflate
    it. So:

    - with `data.id_column`, rows that repeat a pool row *with its id* are copies and
      count once: the share counts only repeats under distinct ids ("distinct ids");
    - without one, a repeat is a copy or a chance collision, and the pool's share counts
      only when the columns taken as independent explain a good part of it (at least a
      tenth): each held-out row's chance 1 - (1 - q)^N, q the product of its values'
      shares in train (missing is a value), near 0 when any column is continuous. Else
      the repeats inside the pool are copies too, and the expected share is the
      independent one ("independent"; else "repeats")."""
    train = data.splits["train"]
    has_ids = bool(data.id_column) and all(data.id_column in f for f in data.splits.values())
    # Ids as 64-bit hashes: a (row, id) pair is two integers, cheap to deduplicate.
    ids = (
        {
            s: pd.util.hash_pandas_object(f[data.id_column], index=False).to_numpy()
            for s, f in data.splits.items()
        }
        if has_ids
        else None
    )
    repeats: dict[str, float] = {}
    for i, split in enumerate(ORDER[1:], start=1):
        pool = ORDER[:i]
        repeats[split] = _pool_repeat_share(
            np.concatenate([hashes[s] for s in pool]),
            np.concatenate([ids[s] for s in pool]) if ids is not None else None,
        )
    if has_ids:
        return repeats, "distinct ids"
    columns = whole_row_columns(data)
    shares = {
        c: train[c].astype(object).where(train[c].notna(), "<missing>").value_counts(normalize=True)
        for c in columns
    }
    out, bases, pool_rows = {}, set(), len(train)
    for split in ORDER[1:]:
        frame = data.splits[split]
        log_q = np.zeros(len(frame))
        for c in columns:
            values = frame[c].astype(object).where(frame[c].notna(), "<missing>")
            share = values.map(shares[c]).to_numpy(float)
            with np.errstate(divide="ignore"):
                log_q += np.log(np.nan_to_num(share, nan=0.0))
        q = np.exp(log_q)
        independent = (
            float(np.mean(-np.expm1(pool_rows * np.log1p(-np.minimum(q, 1 - 1e-12)))))
            if len(q)
            else 0.0
        )
        explained = independent >= 0.1 * repeats[split]
        out[split] = max(repeats[split], independent) if explained else independent
        bases.add("repeats" if explained else "independent")
        pool_rows += len(frame)
    return out, bases.pop() if len(bases) == 1 else "mixed"


def _pool_repeat_share(hashes: np.ndarray, ids: np.ndarray | None) -> float:
    """The share of the pool's rows whose whole row (`hashes`) occurs at another of its
    rows; with `ids` (one hash per row), a row repeated with its id counts once (a copy,
    not a second case)."""
    if len(hashes) < 2:
        return 0.0
    rows = pd.DataFrame({"hash": hashes})
    if ids is not None:  # hashed ids
        rows["id"] = ids
        rows = rows.drop_duplicates()
    return float(rows["hash"].duplicated(keep=False).mean())


# How the chance share was judged (expected_cross_share's basis), in the finding's words.
JUDGED = {
    "distinct ids": "judged by how often rows of the earlier splits repeat one another "
    "under distinct ids",
    "repeats": "judged by how often rows of the earlier splits repeat one another",
    "independent": "judged by the columns' value shares taken as independent, as the "
    "repeats within the earlier splits look like copies too",
    "mixed": "judged per split by how often the earlier splits' rows repeat one another, "
    "or, where those repeats look like copies, by the columns taken as independent",
}


def _cross_split(data, config, result, hashes, cross, cross_counts, held_out) -> None:
    n_cross = sum(cross_counts.values())
    share = n_cross / held_out
    expected, basis = expected_cross_share(data, hashes)
    expected_rows = sum(expected[s] * len(hashes[s]) for s in expected)
    expected_share = expected_rows / held_out
    # P(at least n_cross repeats | the chance rate): one-sided binomial on the held-out rows.
    p_value = float(stats.binom.sf(n_cross - 1, held_out, min(1.0, expected_share)))
    beyond_chance = p_value < config.duplicates.chance_level
    copies = beyond_chance and share - expected_share >= config.duplicates.cross_split_block
    judged = JUDGED[basis]
    counts = (
        f"(valid {cross_counts['valid']:,} in train; test {cross_counts['test']:,} in train "
        "or valid)"
    )
    rows = plural(n_cross, "validation or test row", "validation and test rows")
    repeat = f"{rows} ({share:.1%}) {'repeats' if n_cross == 1 else 'repeat'} a whole row of "
    if copies:
        title = (
            f"{repeat}an earlier split {counts}, far more "
            f"than distinct rows of this feature space would ({expected_share:.1%} expected "
            f"by chance, {judged}; p = {p_value:.2g}): they are copies, so models are "
            "scored on rows they were trained on and their value is overstated."
        )
        action = (
            "deduplicate the raw data, or set assess.remedies.drop_duplicates: true "
            "(drops them from valid and test)"
            + (
                "; if each row is a distinct case, set data.id_column: repeats under "
                "distinct ids are then judged against how often the earlier splits' rows "
                "repeat one another"
                if basis != "distinct ids"
                else ""
            )
        )
    elif beyond_chance:
        title = (
            f"{repeat}an earlier split {counts}, more than distinct rows of this feature "
            f"space would ({expected_share:.1%} expected by chance, {judged}; "
            f"p = {p_value:.2g}): "
            f"probably copies, but fewer than the {config.duplicates.cross_split_block:.1%} "
            "of valid and test rows that blocks, so they overstate the value only a little."
        )
        action = (
            "deduplicate the raw data, or set assess.remedies.drop_duplicates: true "
            "(drops them from valid and test)"
        )
    else:
        title = (
            f"{rows} ({share:.1%}) {'has' if n_cross == 1 else 'have'} the same feature "
            "values and label as a row of an "
            f"earlier split {counts}: distinct rows with identical feature vectors, about as "
            f"often as chance makes likely in this feature space ({expected_share:.1%} "
            f"expected, {judged}). That is "
            "what coarse, coded features do; it is not leakage, and models score these rows "
            "as any row with that profile."
        )
        action = (
            "nothing, if the rows are distinct cases (set data.id_column so that repeated "
            "cases are told apart); if they are copies, deduplicate the raw data"
        )
    result.findings.append(
        Finding(
            id="duplicates:cross_split",
            severity="block" if copies else "warn",
            title=title,
            action=action,
            evidence={
                "rows_seen_earlier": cross_counts,
                "share_of_valid_and_test": share,
                "expected_share": expected_share,
                "expected_from": basis,
                "p_value": p_value,
                "copies": beyond_chance,  # more than chance explains: drop_duplicates drops them
                "block_at_excess": config.duplicates.cross_split_block,
            },
            example_rows={
                s: data.row_ids(s, np.flatnonzero(m)[:10]) for s, m in cross.items() if m.any()
            },
        )
    )


def _shared_ids(data: AssessData, config: AssessConfig, result: CheckResult, held_out) -> None:
    """Held-out rows whose id already occurs in an earlier split: the same entity on both
    sides, so the models have seen it (whatever its features)."""
    seen: set = set()
    shared: dict[str, np.ndarray] = {}
    for split in ORDER:
        ids = data.splits[split][data.id_column]
        if split != "train":
            shared[split] = np.flatnonzero(ids.isin(seen).to_numpy() & ids.notna().to_numpy())
        seen |= set(ids.dropna().tolist())
    n = sum(len(v) for v in shared.values())
    result.figures["cross_split_ids"] = n
    if not n:
        return
    share = n / held_out
    block = share >= config.duplicates.cross_split_block
    result.remedy_rows["duplicates:shared_ids"] = shared
    result.findings.append(
        Finding(
            id="duplicates:shared_ids",
            severity="block" if block else "warn",
            title=f"{plural(n, 'validation or test row has', 'validation and test rows have')} "
            f"an id ({data.id_column!r}) already in an earlier split ({share:.1%}; valid "
            f"{len(shared['valid']):,}, test {len(shared['test']):,}): the same "
            f"{data.id_column!r} on both sides, so models are scored on cases they were "
            "trained on and their value is overstated.",
            action="split by id (every row of an id in one split), or set "
            "assess.remedies.drop_duplicates: true (drops those rows from valid and test)",
            evidence={
                "column": data.id_column,
                "rows": {s: len(v) for s, v in shared.items()},
                "share_of_valid_and_test": share,
                "block_at": config.duplicates.cross_split_block,
            },
            example_rows={s: data.row_ids(s, v[:10]) for s, v in shared.items() if len(v)},
        )
    )
