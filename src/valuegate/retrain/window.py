"""The retrain window (`retrain.window`): which labelled periods a run may learn from, and
where its train / valid / test splits fall.

With `until` set, the rows of `data.time_column` after `until` are dropped (what was known
then), the rule picks the periods (and, for `weighted`, thins the older ones), the test
split is the last `holdout` share of the newest period's rows (time, then file order: the
recent rows neither the champion nor this run's model trained on, where the deploy gate
compares them), and the rest splits into train / valid in time order at data.split's
train:valid ratio. Pure: a frame in, positions and a JSON-ready record out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from valuegate.config.schema import DataConfig, RetrainWindow
from valuegate.errors import DataError

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Window:
    """`frame`: the input table; `parts`: split -> positions into `frame` (int arrays, in
    time order, file order within a period; rows after `until`, and the rows a weighted
    window leaves out, are in no part); `record`: what was selected, for schema.json."""

    frame: pd.DataFrame
    parts: dict[str, np.ndarray]
    record: dict[str, Any]


def plain_period(value: Any) -> Any:
    """A period label as JSON holds it: numbers as numbers, anything else as text (the
    window's record, the backtest's periods)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def periods(values: pd.Series, column: str) -> tuple[list[Any], np.ndarray]:
    """(the distinct periods in time order, each row's index into that list); `values` is
    the time column (validated by data.time_order: no missing, numbers or dates)."""
    from valuegate.data import time_order

    keys = time_order(values, column)
    _distinct, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    labels = [values.iloc[i] for i in first]
    return labels, inverse.reshape(-1)


def _instants(values: list[Any]) -> pd.Series:
    """Each value as a UTC instant (NaT when it is not a date), parsed as data.time_order
    parses a text time column (naive times taken as UTC)."""
    text = pd.Series([str(plain_period(v)) for v in values], dtype=object)
    return pd.to_datetime(text, errors="coerce", format="mixed", utc=True)


def same_period(values: list[Any], until: Any, dates: bool) -> np.ndarray:
    """Which of `values` (of data.time_column) are the period `until` as a user writes it:
    equal, equal as text, or (`dates`: the column holds dates or times, not numbers) the
    same instant (2017-02-01 is a timestamp column's 2017-02-01 00:00:00)."""
    out = np.array([str(plain_period(v)) == str(until) for v in values], dtype=bool)
    for i, value in enumerate(values):
        same = value == until
        out[i] |= isinstance(same, bool | np.bool_) and bool(same)
    if dates and not out.all():
        wanted = _instants([until]).iloc[0]
        if not pd.isna(wanted):
            out |= (_instants(values) == wanted).to_numpy()
    return out


def _match(until: Any, labels: list[Any], column: str, dates: bool = False) -> int:
    """The index of `until` among the periods; a clear error listing them when absent.
    `dates`: the periods are dates or times (not numbers), so `until` also matches the
    period at the same instant however it is written (2017-02-01 for a datetime column's
    2017-02-01 00:00:00, or 2017-02-01T00:00Z)."""
    for i, label in enumerate(labels):
        same = label == until
        if isinstance(same, bool | np.bool_) and bool(same):
            return i
    for i, label in enumerate(labels):  # a date or text period written in YAML as text
        if str(plain_period(label)) == str(until):
            return i
    hits = np.flatnonzero(same_period(labels, until, dates)) if dates else []
    if len(hits):
        return int(hits[0])
    shown = [plain_period(v) for v in labels]
    listed = ", ".join(map(str, shown if len(shown) <= 20 else [*shown[:10], "...", *shown[-5:]]))
    raise DataError(
        f"retrain.window.until: {until!r} is not a period of data.time_column {column!r}. "
        f"Allowed: {listed}."
    )


def _thin(y: np.ndarray, share: float, stratified: bool, seed: int) -> np.ndarray:
    """Positions (sorted) of round(share * n) of the n rows, seeded; stratified for binary."""
    from valuegate.data import sample_positions

    n = max(1, round(share * len(y)))
    return sample_positions(y, n, stratified, seed)


def select(frame: pd.DataFrame, data: DataConfig, window: RetrainWindow, seed: int) -> Window:
    """The window `window` over `frame` (validated rows with data.time_column); see the
    module docstring. Raises DataError naming `retrain.window.*` when `until` is not a
    period, or a split comes out empty or with one class of a binary target."""
    from valuegate.data import target_vector

    assert window.until is not None, "select() applies a window; until=null means none"
    column = data.time_column
    if column is None:
        raise DataError(
            "retrain.window.until: a window needs data.time_column (the periods it counts)."
        )
    labels, period = periods(frame[column], column)
    dates = not pd.api.types.is_numeric_dtype(frame[column])
    last = _match(window.until, labels, column, dates)
    first = max(0, last - window.periods + 1) if window.rule == "sliding" else 0
    kept_periods = range(first, last + 1)
    binary = data.task == "binary"
    y = target_vector(frame, data) if binary else np.zeros(len(frame))
    chosen: list[np.ndarray] = []
    rows_per_period: dict[str, int] = {}
    for p in kept_periods:
        rows = np.flatnonzero(period == p)  # file order within the period
        if window.rule == "weighted" and p < last:
            age = last - p
            # Each period's own seed, so adding a newer period does not reshuffle the rest.
            own_seed = int(np.random.SeedSequence([seed, age]).generate_state(1)[0])
            rows = rows[_thin(y[rows], window.decay**age, binary, own_seed)]
        chosen.append(rows)
        rows_per_period[str(plain_period(labels[p]))] = len(rows)
    newest = chosen[-1]
    n_test = round(window.holdout * len(newest))
    if n_test == 0 or n_test == len(newest):
        raise DataError(
            f"retrain.window.holdout: {window.holdout:g} of the {len(newest)} rows of period "
            f"{plain_period(labels[last])} leaves "
            + ("no test rows" if n_test == 0 else "no rows of it to learn from")
            + "; allowed: a share in (0, 1) that keeps at least one row on each side."
        )
    test = newest[len(newest) - n_test :]
    rest = np.concatenate([*chosen[:-1], newest[: len(newest) - n_test]])
    ratio = data.split.train / (data.split.train + data.split.valid)
    a = round(ratio * len(rest))
    parts = {"train": rest[:a], "valid": rest[a:], "test": test}
    described = f"retrain.window (until {plain_period(window.until)!r}, rule {window.rule})"
    for name in SPLITS:
        if len(parts[name]) == 0:
            raise DataError(
                f"{described}: the {name} split is empty ({len(rest) + len(test)} rows in the "
                f"window, periods {list(rows_per_period)}); choose a later until, more "
                "periods (retrain.window.periods) or another retrain.window.holdout."
            )
        if binary:
            positives = int(y[parts[name]].sum())
            if positives in (0, len(parts[name])):
                raise DataError(
                    f"{described}: the {name} split ({len(parts[name])} rows) holds only one "
                    f"class of {data.target!r}; choose more periods or another "
                    "retrain.window.holdout."
                )
    record: dict[str, Any] = {
        "until": plain_period(window.until),
        "rule": window.rule,
        "holdout": window.holdout,
        "rows_per_period": rows_per_period,
        "dropped_after_until": int((period > last).sum()),
        "test_period": plain_period(labels[last]),
    }
    if window.rule == "sliding":
        record["periods"] = window.periods
    if window.rule == "weighted":
        record["decay"] = window.decay
    return Window(frame, parts, record)
