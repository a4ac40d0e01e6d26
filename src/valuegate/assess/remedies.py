"""Opt-in remedies (`assess.remedies`): which columns and rows to drop from the prepared
data, and the splits without them. Each remedy marks the findings it resolves."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from valuegate.assess.findings import Finding
from valuegate.config.schema import Remedies
from valuegate.errors import DataError


def plan_remedies(
    findings: list[Finding],
    remedy_rows: dict[str, dict[str, np.ndarray]],
    remedies: Remedies,
    features: list[str],
) -> tuple[list[str], dict[str, np.ndarray], list[dict[str, Any]]]:
    """(columns to drop, row positions to drop per split, what was done); marks the
    resolved findings 'remedied'."""
    columns: list[str] = []
    rows: dict[str, set[int]] = {}
    done: list[dict[str, Any]] = []

    def drop_column(finding: Finding, remedy: str) -> None:
        named = finding.columns
        for column in named:
            if column in features and column not in columns:
                columns.append(column)
        finding.status = "remedied"
        finding.note = f"{remedy}: dropped column{'s' if len(named) > 1 else ''} " + ", ".join(
            repr(c) for c in named
        )

    def drop_rows(finding: Finding, remedy: str, splits=None) -> None:
        count = 0
        for split, positions in remedy_rows.get(finding.id, {}).items():
            if splits is None or split in splits:
                rows.setdefault(split, set()).update(int(p) for p in positions)
                count += len(positions)
        finding.status, finding.note = (
            "remedied",
            f"{remedy}: dropped {count:,} row{'' if count == 1 else 's'}",
        )

    for finding in findings:
        if finding.status != "open":  # accepted: the user keeps it as it is
            continue
        kind = finding.kind
        if (
            remedies.drop_leaky_columns
            and kind in ("target_leakage", "post_outcome", "combined_leakage")
            and finding.severity == "block"
            and finding.columns  # combined_leakage:quick_model names none: it stays blocking
        ):
            drop_column(finding, "drop_leaky_columns")
        elif remedies.drop_id_like_columns and kind == "id_like":
            drop_column(finding, "drop_id_like_columns")
        elif remedies.drop_duplicates and (
            finding.id == "duplicates:within_split"
            # Identical feature vectors of distinct rows (a warning) stay: dropping them
            # would make valid and test unlike production, where such profiles recur.
            or (finding.id == "duplicates:cross_split" and finding.evidence.get("copies"))
            or finding.id == "duplicates:shared_ids"
        ):
            drop_rows(finding, "drop_duplicates")
        elif remedies.drop_noisy_labels and finding.id == "label_noise:suspected":
            drop_rows(finding, "drop_noisy_labels", splits=("train",))
        else:
            continue
        done.append({"finding": finding.id, "remedy": finding.note})
    if columns and len(columns) >= len(features):
        raise DataError(
            f"assess.remedies: dropping {columns} would leave no feature to learn from; "
            "turn the remedy off and fix the data instead."
        )
    return columns, {s: np.array(sorted(r), dtype=np.int64) for s, r in rows.items()}, done


def remedied_splits(
    splits: dict[str, pd.DataFrame], columns: list[str], rows: dict[str, np.ndarray]
) -> dict[str, pd.DataFrame]:
    """The splits without the dropped columns and rows (row index reset)."""
    out = {}
    for split, frame in splits.items():
        drop = rows.get(split)
        if drop is not None and len(drop):
            keep = np.ones(len(frame), dtype=bool)
            keep[drop] = False
            frame = frame.loc[keep]
        out[split] = frame.drop(columns=columns).reset_index(drop=True)
    return out
