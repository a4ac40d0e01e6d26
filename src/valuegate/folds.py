"""Cross-validation folds that respect how the data was split.

One function, used by every step that cross-validates on the training split (tuning,
cross-fitted operating points, the assessment's quick models), so that a time-ordered
table is never cross-validated as if its rows were exchangeable:

- rows in time order (`data.split.method: time`): forward-chaining folds
  (`TimeSeriesSplit`): each fold trains on the past and is valued on the block after it;
- an id column whose values repeat: grouped folds (no id on both sides of a fold);
- otherwise: K-fold, stratified by the label for binary tasks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import (
    GroupKFold,
    KFold,
    StratifiedGroupKFold,
    StratifiedKFold,
    TimeSeriesSplit,
)

from valuegate.errors import DataError

Fold = tuple[np.ndarray, np.ndarray]


def fold_kind(time_ordered: bool, groups: Any | None) -> str:
    """'time', 'group' or 'kfold': the kind of folds `make_folds` builds for these inputs."""
    if time_ordered:
        return "time"
    if groups is not None and _repeats(groups):
        return "group"
    return "kfold"


def _repeats(groups: Any) -> bool:
    return bool(pd.Series(groups).dropna().astype(str).duplicated().any())


def _isnull(values: np.ndarray) -> np.ndarray:
    return pd.isna(pd.Series(values)).to_numpy()


def make_folds(
    y: np.ndarray,
    task: str,
    n_folds: int,
    seed: int,
    *,
    time_ordered: bool = False,
    groups: Any | None = None,
) -> list[Fold]:
    """(train_idx, test_idx) pairs over positions 0..len(y)-1.

    `time_ordered`: the rows are in time order (a time split keeps the training split
    sorted by `data.time_column`); folds then chain forward and the earliest block is
    never a test block. `groups`: shape (len(y),), e.g. the id column; when a value repeats,
    the folds keep every row of a group on one side. Binary tasks are stratified by label.
    """
    n = len(y)
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    kind = fold_kind(time_ordered, groups)
    _check_enough(kind, n, n_folds, groups)
    if kind == "time":
        splitter: Any = TimeSeriesSplit(n_splits=n_folds)
        return [(tr, te) for tr, te in splitter.split(np.zeros(n))]
    if kind == "group":
        codes = _group_codes(np.asarray(groups))
        if task == "binary":
            splitter = StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed)
            return list(splitter.split(np.zeros(n), y, codes))
        splitter = GroupKFold(n_folds, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(n), y, codes))
    if task == "binary":
        splitter = StratifiedKFold(n_folds, shuffle=True, random_state=seed)
    else:
        splitter = KFold(n_folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(n), y))


def _check_enough(kind: str, n: int, n_folds: int, groups: Any | None) -> None:
    """A DataError naming the cause, where scikit-learn's splitters would raise their own."""
    if kind == "group":
        distinct = pd.Series(groups).dropna().astype(str).nunique() + int(
            pd.isna(pd.Series(groups)).sum()
        )
        if distinct < n_folds:
            raise DataError(
                f"data.id_column has only {distinct} distinct values in the training split, "
                f"fewer than the {n_folds} folds asked for: every fold needs ids of its own "
                "(lower the folds or check that the id column identifies rows)."
            )
    elif n < n_folds + 1 if kind == "time" else n < n_folds:
        raise DataError(
            f"the training split has {n} rows, too few for {n_folds} "
            f"{'forward-chaining ' if kind == 'time' else ''}folds."
        )


def _group_codes(groups: np.ndarray) -> np.ndarray:
    """Integer codes; a missing id is its own group per row (no evidence it repeats)."""
    missing = _isnull(groups)
    codes = np.empty(len(groups), dtype=np.int64)
    present = ~missing
    _, codes[present] = np.unique(groups[present].astype(str), return_inverse=True)
    start = int(codes[present].max()) + 1 if present.any() else 0
    codes[missing] = np.arange(start, start + int(missing.sum()))
    return codes
