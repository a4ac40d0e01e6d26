"""What every check reads: the splits, the roles of their columns, and row sampling."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class AssessData:
    """The prepared splits and what their columns mean (from schema.json and `data`)."""

    splits: dict[str, pd.DataFrame]
    task: str  # binary | regression
    target: str
    positive_label: Any
    numeric: list[str]
    categorical: list[str]
    id_column: str | None = None
    time_column: str | None = None
    amount_column: str | None = None
    split_method: str = "stratified"
    _targets: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    @property
    def expected_columns(self) -> list[str]:
        roles = [self.id_column, self.time_column, self.amount_column]
        return list(dict.fromkeys([*(c for c in roles if c), *self.features, self.target]))

    def y(self, split: str) -> np.ndarray:
        """0/1 (1 = positive label) for binary, float for regression; cached."""
        if split not in self._targets:
            target = self.splits[split][self.target]
            if self.task == "binary":
                values = (target.astype(str) == str(self.positive_label)).to_numpy(np.int8)
            else:
                values = target.to_numpy(float)
            self._targets[split] = values
        return self._targets[split]

    def row_ids(self, split: str, positions: np.ndarray) -> list[Any]:
        """How a user finds rows again: the id column's values, else row positions."""
        positions = np.asarray(positions, dtype=np.int64)
        if self.id_column and self.id_column in self.splits[split]:
            return self.splits[split][self.id_column].to_numpy()[positions].tolist()
        return positions.tolist()


def plural(n: int, one: str, many: str) -> str:
    """'1 row' / '2 rows': `one` and `many` are the words after the count."""
    return f"{n:,} {one if n == 1 else many}"


def fmt(value: float, spec: str) -> str:
    """`format(value, spec)` without a negative zero ('-0', '-0.000'): a value that rounds
    to zero is printed as zero."""
    text = format(value, spec)
    if text.startswith("-") and not any(ch in "123456789" for ch in text):
        return text[1:]
    return text


def sample_positions(
    n: int, size: int, rng: np.random.Generator, y: np.ndarray | None = None
) -> np.ndarray:
    """Sorted row positions: all rows when n <= size, else `size` of them (stratified by
    a binary `y`, so a rare class keeps its share)."""
    if n <= size:
        return np.arange(n)
    if y is None or len(np.unique(y)) > 2:
        return np.sort(rng.choice(n, size=size, replace=False))
    parts = []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        take = max(1, round(size * len(idx) / n))
        parts.append(rng.choice(idx, size=min(take, len(idx)), replace=False))
    return np.sort(np.concatenate(parts))


# OpenMP threads for the assessment's tree models: one. Their fits are on samples (at most
# a few seconds each), where a second thread gains little, while on a busy machine OpenMP's
# spin-waiting made the same fit 10-35x slower (measured here: the train-vs-test classifier
# on 40,000 rows took 89 s with 2 threads, 2.5 s with 1).
FIT_THREADS = 1


def encode_codes(column: pd.Series) -> np.ndarray:
    """Integer codes of a column's values, -1 for missing (for grouping and bincount)."""
    codes, _ = pd.factorize(column, use_na_sentinel=True)
    return codes.astype(np.int64)


def model_matrix(frames: list[pd.DataFrame], numeric: list[str], categorical: list[str]):
    """One float matrix for tree models: numerics as they are, categoricals as shared
    integer codes (NaN for missing), and the mask of categorical columns."""
    joined = pd.concat([f[numeric + categorical] for f in frames], ignore_index=True)
    parts = []
    if numeric:
        values = joined[numeric].to_numpy(float, copy=True)
        # Infinities are reported by the quality check; here they are missing values, and
        # an all-empty column is a constant (the tree models cannot bin an empty column).
        values[~np.isfinite(values)] = np.nan
        values[:, np.isnan(values).all(axis=0)] = 0.0
        parts.append(values)
    for column in categorical:
        # Histogram gradient boosting takes at most 255 categories; rarer ones share one.
        codes = np.minimum(encode_codes(joined[column]), 254).astype(float)
        codes[codes < 0] = np.nan
        parts.append(codes[:, None])
    matrix = np.hstack(parts) if parts else np.empty((len(joined), 0))
    mask = np.array([False] * len(numeric) + [True] * len(categorical))
    return matrix, mask
