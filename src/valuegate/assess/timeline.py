"""Time column checks (when `data.time_column` is set): missing times, ordering, gaps,
and whether the split lets models train on rows from after the ones they are tested on."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from valuegate.assess.findings import CheckResult, Finding
from valuegate.assess.inputs import AssessData, plural
from valuegate.config.schema import AssessConfig


def as_time(column: pd.Series) -> pd.Series:
    """Numbers stay numbers (e.g. a period index); anything else is parsed as datetime."""
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_datetime64_any_dtype(column):
        return column
    # format="mixed", as data.time_order parses it: text such as "Mar-2018" is read
    # element by element without pandas' "could not infer format" warning on stderr.
    return pd.to_datetime(column, errors="coerce", utc=True, format="mixed")


def check_timeline(data: AssessData, config: AssessConfig) -> CheckResult:
    result = CheckResult()
    column = data.time_column
    if not column:
        result.findings.append(
            Finding(
                id="timeline:skipped",
                severity="info",
                title="No time column is declared, so ordering and future leakage are not checked.",
                action="if rows have a date, set data.time_column (and consider "
                "data.split.method: time)",
            )
        )
        return result
    times = {s: as_time(f[column]) for s, f in data.splits.items()}
    missing = {s: int(t.isna().sum()) for s, t in times.items()}
    if sum(missing.values()):
        result.findings.append(
            Finding(
                id="timeline:missing_times",
                severity="warn",
                title=f"{plural(sum(missing.values()), 'row has', 'rows have')} no usable "
                f"time in {column!r}.",
                action=f"fill or drop them; check the format of {column!r}",
                evidence={"column": column, "missing": missing},
                example_rows={
                    s: data.row_ids(s, np.flatnonzero(t.isna().to_numpy())[:10])
                    for s, t in times.items()
                    if missing[s]
                },
            )
        )
    ranges = {s: (t.min(), t.max()) for s, t in times.items() if t.notna().any()}
    result.figures["time_ranges"] = {s: [str(lo), str(hi)] for s, (lo, hi) in ranges.items()}
    everything = pd.concat(list(times.values()), ignore_index=True).dropna().sort_values()
    values = everything.to_numpy()
    if pd.api.types.is_datetime64_any_dtype(everything):
        values = everything.dt.tz_localize(None).to_numpy().astype("datetime64[ns]")
    values = values.astype(np.int64) if values.dtype.kind == "M" else values.astype(float)
    steps = np.diff(values)
    positive = steps[steps > 0]
    if len(positive) >= 2:
        ratio = float(positive.max() / np.median(positive))
        if ratio >= config.timeline.gap_factor:
            at = everything.iloc[int(np.argmax(steps)) + 1]
            result.findings.append(
                Finding(
                    id="timeline:gaps",
                    severity="info",
                    title=f"The largest gap between consecutive times is {ratio:.0f} times the "
                    f"median gap (ending at {at}): a period may be missing.",
                    action="check that no data was lost for that period",
                    evidence={"column": column, "gap_ratio": ratio, "ends_at": str(at)},
                )
            )
    if data.split_method != "time" and {"train", "test"} <= set(ranges):
        later = int((times["train"] > ranges["test"][0]).sum())
        if later:
            share = later / len(times["train"])
            result.findings.append(
                Finding(
                    id="timeline:future_leak",
                    severity="warn",
                    title=f"The {data.split_method} split trains on "
                    f"{plural(later, 'row', 'rows')} "
                    f"({share:.0%} of train) dated after the earliest test row: models learn "
                    "from the future they are tested on, so test value is optimistic.",
                    action="set data.split.method: time (train oldest, test newest)",
                    evidence={"column": column, "train_rows_after_test_start": later},
                )
            )
    elif data.split_method == "time":
        order = [s for s in ("train", "valid", "test") if s in ranges]
        overlaps = [
            f"{a} ends {ranges[a][1]} after {b} starts {ranges[b][0]}"
            for a, b in itertools.pairwise(order)
            if ranges[a][1] > ranges[b][0]
        ]
        if overlaps:
            result.findings.append(
                Finding(
                    id="timeline:unordered",
                    severity="warn",
                    title="The time split's periods overlap: " + "; ".join(overlaps) + ".",
                    action=f"check {column!r} for mixed formats or time zones",
                    evidence={"column": column, "overlaps": overlaps},
                )
            )
    return result
