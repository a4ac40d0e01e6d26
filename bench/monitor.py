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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reference", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
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
