"""Drift for one window of 1M rows x 25 features: valuegate's monitor vs. a plain
numpy/scipy script doing the same tests on the same data, in one run (issue 15; target
ratio <= 1.2).

Both sides bin the window in the same reference bins (quantile edges for 15 numeric
features, the kept levels + other + missing for 10 categorical ones), run a two-sample
chi-square test per feature and adjust the p-values by Holm. The plain side calls
`scipy.stats.chi2_contingency` on each 2 x k table (empty cells dropped); valuegate's
`monitor.drift.drift_tests` tests all features in one vectorised pass (and adds effect
sizes, sparse-cell pooling and the spacings form). A second line times the whole window
record (`monitor.run.window_record`: the bundle's input check, drift, value) for scale.

    python bench/monitor.py [--rows 1000000] [--repeats 3]

Memory (`--memory`): the same-size windows (`--window-rows`) for 1, 4 and 16 (`--windows`)
windows of a Parquet file, each case in its own process, peak RSS (`resource.getrusage` max RSS):
streamed (`monitor.windows.Source` + `stream_windows`, what `valuegate monitor` does: thin
columns first, then window by window) against reading the file whole and cutting it (what
it did before); both run the drift tests of every window.

    python bench/monitor.py --memory [--window-rows 100000] [--windows 1,4,16,64]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from scipy import stats

from valuegate.monitor.drift import drift_tests
from valuegate.monitor.profile import (
    categorical_profile,
    current_counts,
    numeric_profile,
    reference_counts,
)

N_NUMERIC, N_CATEGORICAL, LEVELS = 15, 10, 30


def make_frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    columns: dict[str, object] = {}
    for j in range(N_NUMERIC):
        values = rng.lognormal(0.0, 1.0, n) if j % 2 else rng.normal(0.0, 1.0, n)
        values[rng.random(n) < 0.02] = np.nan
        columns[f"num{j}"] = values
    names = np.array([f"level {i}" for i in range(LEVELS)], dtype=object)
    weights = 1.0 / np.arange(1, LEVELS + 1)
    for j in range(N_CATEGORICAL):
        columns[f"cat{j}"] = pd.Series(names[rng.choice(LEVELS, n, p=weights / weights.sum())])
    return pd.DataFrame(columns)


def profiles(reference: pd.DataFrame) -> dict[str, dict]:
    out = {}
    for name in reference.columns:
        if name.startswith("num"):
            out[name] = numeric_profile(reference[name].to_numpy(), 10)
        else:
            out[name] = categorical_profile(reference[name], 50)
    return out


def valuegate_drift(window: pd.DataFrame, profile: dict[str, dict]) -> list[dict]:
    names = list(profile)
    ref = [reference_counts(profile[n]) for n in names]
    cur = [current_counts(profile[n], window[n]) for n in names]
    spacings = [bool(profile[n].get("continuous", False)) for n in names]
    return drift_tests(names, ref, cur, 0.05, 0.05, spacings=spacings)


def plain_drift(window: pd.DataFrame, profile: dict[str, dict]) -> np.ndarray:
    """The same bins and the textbook test, written as a data scientist would."""
    p_values = []
    for name, entry in profile.items():
        values = window[name]
        if entry["kind"] == "numeric":
            x = values.to_numpy(dtype=float)
            edges = np.asarray(entry["edges"])
            index = np.searchsorted(edges, x, side="left")
            index[np.isnan(x)] = len(edges) + 1
            cur = np.bincount(index, minlength=len(edges) + 2)
            ref = np.array([*entry["counts"], entry["missing"]])
        else:
            counted = values.value_counts(dropna=False)
            levels = entry["categories"]
            cur = np.array(
                [counted.get(c, 0) for c in levels]
                + [counted[~counted.index.isin(levels) & counted.index.notna()].sum()]
                + [counted[counted.index.isna()].sum()]
            )
            ref = np.array([*entry["counts"], entry["other"], entry["missing"]])
        table = np.vstack([ref, cur])
        table = table[:, table.sum(axis=0) > 0]
        p_values.append(stats.chi2_contingency(table, correction=False)[1])
    p = np.array(p_values)
    order = np.argsort(p)
    m = len(p)
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(np.minimum((m - np.arange(m)) * p[order], 1.0))
    return adjusted


def best_of(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def memory_case(path: str, windows: int, window_rows: int, streamed: bool) -> None:
    """One case, in this process: monitor `windows` windows of `path` by count; prints the
    peak RSS in MB and the seconds."""
    import resource

    from valuegate.monitor.windows import Source, cut_windows, stream_windows

    start = time.perf_counter()
    rng = np.random.default_rng(0)
    profile = profiles(make_frame(rng, 20_000))
    source = Source(path)
    thin = source.read_columns(["num0"])
    cut = cut_windows(thin, "count", window_rows, None, None, None)
    del thin
    assert len(cut) == windows, (len(cut), windows)
    drifted = 0
    if streamed:
        for _i, _w, part in stream_windows(source, cut):
            drifted += sum(t["drifted"] for t in valuegate_drift(part, profile))
    else:
        whole = pd.read_parquet(path)
        for w in cut:
            drifted += sum(t["drifted"] for t in valuegate_drift(whole.iloc[w.rows], profile))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux
    print(f"{peak:.0f} {time.perf_counter() - start:.2f} {drifted}")


def memory(window_rows: int, counts: list[int]) -> None:
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    print(f"windows of {window_rows:,} rows x 25 features (Parquet), peak RSS per process:")
    print("| windows | rows | streamed (MB) | whole file (MB) | streamed s | whole s |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for k in counts:
            path = Path(tmp) / f"w{k}.parquet"
            rng = np.random.default_rng(k)
            import pyarrow as pa
            import pyarrow.parquet as pq

            with pq.ParquetWriter(path, pa.Table.from_pandas(make_frame(rng, 10)).schema) as out:
                for _ in range(k):  # written window by window: the bench itself stays small
                    out.write_table(pa.Table.from_pandas(make_frame(rng, window_rows)))
            cells = []
            for streamed in (True, False):
                done = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--case",
                        str(path),
                        str(k),
                        str(window_rows),
                        "stream" if streamed else "whole",
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                cells.append(done.stdout.split())
            print(
                f"| {k} | {k * window_rows:,} | {cells[0][0]} | {cells[1][0]} | {cells[0][1]} "
                f"| {cells[1][1]} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reference", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory", action="store_true", help="peak RSS vs. window count")
    parser.add_argument("--window-rows", type=int, default=100_000)
    parser.add_argument("--windows", default="1,4,16", help="window counts (--memory)")
    parser.add_argument("--case", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        path, k, rows, how = args.case
        memory_case(path, int(k), int(rows), how == "stream")
        return
    if args.memory:
        memory(args.window_rows, [int(k) for k in args.windows.split(",")])
        return
    rng = np.random.default_rng(0)
    reference = make_frame(rng, args.reference)
    window = make_frame(rng, args.rows)
    profile = profiles(reference)
    # the two sides agree on every test
    ours = valuegate_drift(window, profile)
    theirs = plain_drift(window, profile)
    alike = all(
        abs(o["p_adjusted"] - t) <= 1e-6 + 0.25 * t
        for o, t in zip(ours, theirs, strict=True)
        if not profile[o["name"]].get("continuous")
    )
    plain = best_of(lambda: plain_drift(window, profile), args.repeats)
    vg = best_of(lambda: valuegate_drift(window, profile), args.repeats)
    print(f"window: {args.rows:,} rows x {len(profile)} features; reference {args.reference:,}")
    print(
        f"plain numpy/scipy: {plain:.3f} s   valuegate drift: {vg:.3f} s   ratio {vg / plain:.2f}"
    )
    print(f"p-values agree where both use the pooled test: {alike}")


if __name__ == "__main__":
    main()
