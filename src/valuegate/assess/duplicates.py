"""Duplicate rows within a split, the same row in more than one split (leakage: the model
is tested on rows it trained on), and identical features with different labels.

Exact counts on every row: a 64-bit hash per row (features + target) is cheap."""

from __future__ import annotations

import numpy as np
import pandas as pd

from valuegate.assess.findings import CheckResult, Finding
from valuegate.assess.inputs import AssessData
from valuegate.config.schema import AssessConfig

# Later splits are checked against earlier ones: a test row also in train or valid leaks.
ORDER = ("train", "valid", "test")


def row_hashes(data: AssessData, with_target: bool = True) -> dict[str, np.ndarray]:
    # The amount is part of a row: two loans alike but for their size are not repeats
    # (dropping one would change the value estimates).
    amount = [data.amount_column] if data.amount_column else []
    columns = [*data.features, *amount, *([data.target] if with_target else [])]
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
    result.figures.update(
        duplicate_rows=n_within,
        cross_split_duplicates=n_cross,
    )
    result.remedy_rows["duplicates:within_split"] = {
        s: np.flatnonzero(m) for s, m in within.items()
    }
    result.remedy_rows["duplicates:cross_split"] = {s: np.flatnonzero(m) for s, m in cross.items()}
    if n_within:
        share = n_within / sum(rows.values())
        result.findings.append(
            Finding(
                id="duplicates:within_split",
                severity="warn" if share >= config.duplicates.within_split_warn else "info",
                title=f"{n_within:,} rows ({share:.1%}) repeat an earlier row of the same split "
                f"(train {within_counts['train']:,}, valid {within_counts['valid']:,}, test "
                f"{within_counts['test']:,}).",
                action="find out whether they are real repeat cases or copies from a join; "
                "assess.remedies.drop_duplicates: true drops the copies",
                evidence={"repeats": within_counts, "share": share},
                example_rows={
                    s: data.row_ids(s, np.flatnonzero(m)[:10]) for s, m in within.items() if m.any()
                },
            )
        )
    if n_cross:
        share = n_cross / held_out
        block = share >= config.duplicates.cross_split_block
        result.findings.append(
            Finding(
                id="duplicates:cross_split",
                severity="block" if block else "warn",
                title=f"{n_cross:,} validation and test rows ({share:.1%}) also occur in an "
                f"earlier split (valid {cross_counts['valid']:,} in train; test "
                f"{cross_counts['test']:,} in train or valid): models are scored on rows they "
                "were trained on, so their value is overstated.",
                action="deduplicate the raw data, or set assess.remedies.drop_duplicates: true "
                "(drops them from valid and test)",
                evidence={"rows_seen_earlier": cross_counts, "share_of_valid_and_test": share},
                example_rows={
                    s: data.row_ids(s, np.flatnonzero(m)[:10]) for s, m in cross.items() if m.any()
                },
            )
        )
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
                title=f"{n:,} rows share every feature value with a row of the other label: "
                "no model can tell them apart.",
                action="check the labels of these rows, or add the feature that separates them",
                evidence={"rows": n},
                example_rows=examples,
            )
        )
