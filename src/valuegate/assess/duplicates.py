"""Duplicate rows within a split, rows shared between splits, ids shared between splits,
and identical features with different labels.

A held-out row identical to an earlier split's row is leakage only when it is a copy of
it. Distinct entities with identical coded profiles (a few categorical features) collide
by chance, and then as often within one split as across splits. A held-out row whose
whole row (features, amount, label) occurs at two or more earlier rows, or at another row
of its own split, repeats a common profile: chance. The rest pair with one earlier row
and nowhere else, as a copy does; they are judged against how often the earlier splits'
rows pair up with one another (under distinct ids with `data.id_column`; see
`CrossChance`). Only an excess beyond chance (at least `cross_split_block` of the held-out
rows, and beyond chance by a one-sided binomial test at `chance_level`) blocks; so does an
id (`data.id_column`) seen in an earlier split. Otherwise it is a warning.

Exact counts on every row: a 64-bit hash per row (features + target) is cheap."""

from __future__ import annotations

from dataclasses import dataclass

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


def cross_split_check(data: AssessData, config: AssessConfig) -> CheckResult:
    """Only the cross-split repeat check (`duplicates:cross_split`, as check_duplicates
    finds it): for simulations of its block rate (bench/soundness.py)."""
    result = CheckResult()
    hashes = row_hashes(data)
    _within, cross = duplicate_masks(hashes)
    cross_counts = {s: int(m.sum()) for s, m in cross.items()}
    if sum(cross_counts.values()):
        held_out = len(hashes["valid"]) + len(hashes["test"])
        _cross_split(data, config, result, hashes, cross, cross_counts, held_out)
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


@dataclass
class CrossChance:
    """What chance makes of the held-out rows (valid, test) that repeat a whole row of an
    earlier split (their pool: train; train + valid for test), in rows summed over both.

    A repeated row is *explained* when its whole row occurs at two or more pool rows or at
    another row of its own split (distinct ids counted once each, with `data.id_column`):
    a profile that common repeats by chance, and a copy of it could not be told from
    chance anyway. The rest are *lone* pairs: one pool row and one held-out row, and
    nowhere else; a copy from an earlier split is one. How many lone pairs chance makes
    is judged by the pool's own lone pairs (a profile at exactly two pool rows and no
    held-out row): pairs of rows placed at random fall across the splits 2n / (N - 1)
    times as often as inside the pool (n held-out rows, N pool rows): the expectation;
    and given all lone pairs, each is across with probability 2n / (2n + N - 1): the
    one-sided binomial test. Judging pairs at both ends keeps a shift between the splits
    (a time window whose later rows crowd into the common profiles) from reading as
    copies."""

    explained: int  # held-out rows repeating a common profile
    lone: int  # held-out rows forming a lone pair with one pool row (tested)
    expected_lone: float  # lone pairs across expected by chance (from the pool's own pairs)
    p_value: float  # P(at least `lone` lone pairs across | chance)
    basis: str  # JUDGED's key
    lone_masks: dict[str, np.ndarray]  # per held-out split, its lone rows (copies if any)

    @property
    def expected_rows(self) -> float:
        return self.explained + self.expected_lone


def cross_chance(data: AssessData, hashes: dict[str, np.ndarray]) -> CrossChance:
    """Split the held-out rows that repeat an earlier split's whole row into explained
    ones and lone pairs, and test the lone pairs against chance (see `CrossChance`).

    With `data.id_column` a row repeated *with its id* counts once (a copy, not a second
    case), so the pool's pairs are distinct cases: chance ("distinct ids"). Without one a
    pool pair is a copy or a chance pair; the pool's pairs count as chance ("pairs") only
    when the columns taken as independent explain more than a tenth of the pool's repeats,
    or the repeats look like a coded space (`_coded_space`: correlated codes, which the
    independence model misses by orders of magnitude); else they are copies too, and the
    chance of a lone pair is at most the chance of any repeat with the columns independent
    ("independent"): each held-out row's chance 1 - (1 - q)^N, q the product of its
    values' shares in train (missing is a value), near 0 when any column is continuous."""
    has_ids = bool(data.id_column) and all(data.id_column in f for f in data.splits.values())
    # Ids as 64-bit hashes: a (row, id) pair is two integers, cheap to deduplicate.
    ids = {
        s: pd.util.hash_pandas_object(f[data.id_column], index=False).to_numpy()
        if has_ids
        else None
        for s, f in data.splits.items()
    }
    explained = lone = 0
    inside, across, masks, pool_repeats, common = [], [], {}, {}, {}
    for i, split in enumerate(ORDER[1:], start=1):
        pool_h = np.concatenate([hashes[s] for s in ORDER[:i]])
        pool_ids = np.concatenate([ids[s] for s in ORDER[:i]]) if has_ids else None
        pool = _distinct(pool_h, pool_ids)
        held = _distinct(hashes[split], ids[split])
        pool_counts = pool.value_counts()
        held_counts = held.value_counts()
        in_pool = pool_counts.reindex(hashes[split], fill_value=0).to_numpy()
        others = held_counts.reindex(hashes[split], fill_value=0).to_numpy() - 1
        matched = in_pool >= 1
        masks[split] = alone = matched & (in_pool == 1) & (others == 0)
        explained += int((matched & ~alone).sum())
        lone += int(alone.sum())
        # The pool's own lone pairs (a profile at two pool rows and no held-out row), and
        # how many pairs across the split boundary chance makes per pair inside the pool.
        inside.append(int(((pool_counts == 2) & ~pool_counts.index.isin(held_counts.index)).sum()))
        across.append(2 * len(held) / (len(pool) - 1) if len(pool) > 1 else 0.0)
        pool_repeats[split] = float(pool.duplicated(keep=False).mean()) if len(pool) else 0.0
        common[split] = _coded_space(pool_counts)
    basis = "distinct ids" if has_ids else "pairs"
    independent = _independent_share(data)
    held_rows = sum(len(hashes[s]) for s in ORDER[1:])
    by_columns = sum(independent[s] * len(hashes[s]) for s in ORDER[1:])
    rate = min(1.0, by_columns / held_rows) if held_rows else 0.0
    columns_p = float(stats.binom.sf(lone - 1, held_rows, rate))
    explains = all(independent[s] > 0.1 * pool_repeats[s] for s in independent)
    if not has_ids and not explains and not all(common.values()):
        # The pool's pairs are copies too. The chance of a lone pair is at most the
        # chance of any repeat with the columns independent.
        return CrossChance(explained, lone, by_columns, columns_p, "independent", masks)
    # Expected lone pairs across: the pool's pairs times chance's ratio across/inside.
    expected = float(np.dot(inside, across))
    # The test conditions on all lone pairs (inside + across), each across with
    # probability ratio / (1 + ratio): binomial at the pairs' mean rate (the sum of two
    # binomials at different rates has a thinner tail, so this errs towards "chance").
    total = lone + sum(inside)
    rate = sum(k * r / (1 + r) for k, r in zip(inside, across, strict=True))
    rate += sum(int(masks[s].sum()) * r / (1 + r) for s, r in zip(ORDER[1:], across, strict=True))
    p_value = float(stats.binom.sf(lone - 1, total, rate / total)) if total else 1.0
    if explains and columns_p < p_value:
        # Few pairs say little (4 lone pairs of 4 across: p = 0.33^4 at a 60/20/20 split);
        # where the columns taken as independent explain the pool's repeats (no repeats
        # at all, in a continuous space), their near-zero chance is the sharper judge.
        return CrossChance(explained, lone, by_columns, columns_p, "columns", masks)
    return CrossChance(explained, lone, expected, p_value, basis, masks)


def _coded_space(counts: pd.Series) -> bool:
    """Do the pool's repeats (`counts`: rows per whole row) look like a coded feature
    space rather than copies? Copies of distinct rows make pairs; a space of few coded
    values fills profiles three times and more: at least as many rows in such profiles as
    in pairs, and at least 10 such profiles (one row copied thrice is not a space)."""
    triples = counts[counts >= 3]
    return len(triples) >= 10 and int(triples.sum()) >= 2 * int((counts == 2).sum())


def _distinct(hashes: np.ndarray, ids: np.ndarray | None) -> pd.Series:
    """The whole-row hashes of distinct rows: with `ids`, a row repeated with its id
    counts once."""
    if ids is None:
        return pd.Series(hashes)
    return pd.DataFrame({"hash": hashes, "id": ids}).drop_duplicates()["hash"]


def _independent_share(data: AssessData) -> dict[str, float]:
    """Per held-out split, the mean chance that a row repeats one of its pool's rows with
    the columns taken as independent (their value shares in train)."""
    train = data.splits["train"]
    columns = whole_row_columns(data)
    shares = {
        c: train[c].astype(object).where(train[c].notna(), "<missing>").value_counts(normalize=True)
        for c in columns
    }
    out, pool_rows = {}, len(train)
    for split in ORDER[1:]:
        frame = data.splits[split]
        log_q = np.zeros(len(frame))
        for c in columns:
            values = frame[c].astype(object).where(frame[c].notna(), "<missing>")
            share = values.map(shares[c]).to_numpy(float)
            with np.errstate(divide="ignore"):
                log_q += np.log(np.nan_to_num(share, nan=0.0))
        q = np.exp(log_q)
        out[split] = (
            float(np.mean(-np.expm1(pool_rows * np.log1p(-np.minimum(q, 1 - 1e-12)))))
            if len(q)
            else 0.0
        )
        pool_rows += len(frame)
    return out


# How chance was judged (CrossChance.basis), in the finding's words.
JUDGED = {
    "distinct ids": "judged by how often rows of the earlier splits pair up with one another "
    "under distinct ids",
    "pairs": "judged by how often rows of the earlier splits pair up with one another",
    "independent": "judged by the columns' value shares taken as independent, as the "
    "repeats within the earlier splits look like copies too",
    "columns": "judged by the columns' value shares taken as independent, which explain "
    "how often the earlier splits' rows repeat one another",
}


def _cross_split(data, config, result, hashes, cross, cross_counts, held_out) -> None:
    n_cross = sum(cross_counts.values())
    share = n_cross / held_out
    chance = cross_chance(data, hashes)
    basis, p_value = chance.basis, chance.p_value
    expected_share = chance.expected_rows / held_out
    beyond_chance = p_value < config.duplicates.chance_level
    copies = beyond_chance and share - expected_share >= config.duplicates.cross_split_block
    # What drop_duplicates drops when they are copies: the tested rows, never a profile
    # common enough to repeat by chance.
    result.remedy_rows["duplicates:cross_split"] = {
        s: np.flatnonzero(chance.lone_masks.get(s, np.zeros(len(h), dtype=bool)))
        for s, h in hashes.items()
    }
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
                if not data.id_column
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
                "common_profile_rows": chance.explained,  # repeat a profile seen twice or more
                "lone_pair_rows": chance.lone,  # tested against chance (all, if "independent")
                "lone_pairs_expected": chance.expected_lone,
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
