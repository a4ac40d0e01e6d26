"""Small time-ordered tables for the retrain tests (window, labels, messy periods): one
number `x`, a label `y` ("bad" for about `bad` of rows), an id and a period column."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from valuegate.config.schema import DataConfig


def data_config(time_column: str = "year", path: str = "unused.csv") -> DataConfig:
    """A binary table (target `y`, positive "bad") with ids `id`, split by time 60/20/20."""
    return DataConfig(
        name="t",
        path=path,
        task="binary",
        target="y",
        positive_label="bad",
        id_column="id",
        time_column=time_column,
        split={"method": "time", "train": 0.6, "valid": 0.2, "test": 0.2},
    )


def rows(
    ids: Iterable[int],
    period: Any,
    rng: np.random.Generator,
    *,
    time_column: str = "year",
    bad: float = 0.3,
    decimals: int | None = None,
) -> pd.DataFrame:
    """One row per id, all in `period` (a scalar, or one period per row); `x` ~ N(0, 1)
    (rounded to `decimals` for text files), then the labels, both drawn from `rng`."""
    ids = list(ids)
    x = rng.normal(size=len(ids))
    return pd.DataFrame(
        {
            "id": ids,
            time_column: period,
            "x": x if decimals is None else x.round(decimals),
            "y": np.where(rng.random(len(ids)) < bad, "bad", "good"),
        }
    )


def by_period(
    rows_per_period: dict[Any, int], seed: int = 0, time_column: str = "year", bad: float = 0.3
) -> pd.DataFrame:
    """`rows_per_period[p]` rows in each period, in that order, with ids 0, 1, ... in
    file order."""
    rng = np.random.default_rng(seed)
    parts, start = [], 0
    for period, n in rows_per_period.items():
        parts.append(rows(range(start, start + n), period, rng, time_column=time_column, bad=bad))
        start += n
    return pd.concat(parts, ignore_index=True)
