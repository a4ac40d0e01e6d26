"""Drift tests that are correct for the sample sizes involved. Pure numpy/scipy.

The reference is a sample too (the profile's counts come from a few hundred or thousand
rows), so each feature is tested with a two-sample test: a chi-square test of
homogeneity on the 2 x k table of reference vs. current counts in the reference's bins
(numeric features: quantile bins + a missing cell; categorical: the kept levels + other +
missing). A goodness-of-fit test against the reference proportions taken as exact (what
Evidently does) ignores the reference's own noise and raises false alerts at several
times alpha when the reference is small.

Cells whose expected count is below `min_expected` in either row are pooled into one cell
(the chi-square approximation needs expected counts of about 5); a feature whose pooled
table has one cell (a constant feature) cannot drift in its bins: p = 1.

All features of a window (and the score) form one family, corrected by Holm's step-down
method: it bounds the chance that a window with no drift raises *any* drift alert at
alpha, whatever the dependence between features (a window alert is a claim that something
changed; Benjamini-Hochberg bounds the share of false claims among alerts instead, which a
single-alert-per-window reader does not want), and it is uniformly more powerful than
Bonferroni.

Effect sizes beside the p-values: Jensen-Shannon distance (base 2, in [0, 1]) of the two
bin distributions, the population stability index (PSI, smoothed) and Cramér's V. An
alert needs both: a Holm-adjusted p-value below alpha and a distance of at least
`min_distance`, so that a huge window does not alert on a shift too small to matter.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

PSI_FLOOR = 1e-4  # proportions below this are floored in the PSI (log of zero otherwise)


def homogeneity(
    reference: np.ndarray,
    current: np.ndarray,
    min_expected: float = 5.0,
    spacings: np.ndarray | None = None,
    bonus: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Two-sample chi-square tests, one per row, vectorised.

    reference, current: counts, shape (f, k) (f tests of k cells; pad unused cells with
    zeros); bonus: (f, k) pseudo-counts added to the reference counts in the spacings
    form; spacings: bool (f,), True where the cells are the reference's own quantile bins
    of a continuous feature (see below). Returns arrays of shape (f,): `statistic`, `dof`,
    `p_value`, `js_distance`, `psi`, `cramers_v`, `rows_reference`, `rows_current`.
    """
    r = np.asarray(reference, dtype=float)
    c = np.asarray(current, dtype=float)
    n_r = r.sum(axis=1, keepdims=True)
    n_c = c.sum(axis=1, keepdims=True)
    n = n_r + n_c
    safe_n = np.where(n > 0, n, 1.0)
    pooled = r + c
    # Dirichlet pseudo-counts of the spacings form: + 1 in the top bin, + 1/2 in the
    # missing cell (the last non-empty column of each row's layout; see drift_tests).
    extra = np.zeros_like(r) if bonus is None else np.asarray(bonus, dtype=float)
    sparse = (np.minimum(n_r, n_c) * pooled / safe_n < min_expected) & (pooled > 0)
    # Pool the sparse cells of each row into one extra cell.
    r_cells = np.concatenate([np.where(sparse, 0.0, r), (r * sparse).sum(1, keepdims=True)], 1)
    c_cells = np.concatenate([np.where(sparse, 0.0, c), (c * sparse).sum(1, keepdims=True)], 1)
    t_cells = r_cells + c_cells
    used = t_cells > 0
    e_r = t_cells * n_r / safe_n
    e_c = t_cells * n_c / safe_n
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(used, (r_cells - e_r) ** 2 / e_r + (c_cells - e_c) ** 2 / e_c, 0.0)
        statistic = np.nan_to_num(terms.sum(axis=1))
        if spacings is not None and np.any(spacings):
            # Bins cut at the reference's own quantiles of a continuous feature: given the
            # reference, the current counts are Dirichlet-multinomial(n_c, alpha) with
            # alpha = the reference counts (+ 1 in the top bin, whose upper end is no
            # order statistic; + 1/2 in the missing cell, a plain count that may be 0), so
            # the Pearson statistic against alpha / A, scaled by the Dirichlet-multinomial
            # variance factor (A + n_c) / (A + 1), is chi-square(k - 1). The pooled
            # (homogeneity) form would treat the reference counts as multinomial: they
            # are fixed by construction, and its false-alert rate doubles at 100 rows.
            alpha = np.where(used, r_cells + np.concatenate([extra, 0 * n_r], 1), 0.0)
            total = alpha.sum(axis=1, keepdims=True)
            share = alpha / np.where(total > 0, total, 1.0)
            expected = n_c * share
            pearson = np.where(used, (c_cells - expected) ** 2 / np.where(used, expected, 1), 0)
            scale = (total[:, 0] + 1.0) / (total[:, 0] + n_c[:, 0])
            statistic = np.where(spacings, pearson.sum(axis=1) * scale, statistic)
    dof = used.sum(axis=1) - 1
    testable = (dof > 0) & (n_r[:, 0] > 0) & (n_c[:, 0] > 0)
    p_value = np.where(testable, stats.chi2.sf(statistic, np.maximum(dof, 1)), 1.0)
    statistic = np.where(testable, statistic, 0.0)

    # effect sizes on the unpooled cells
    p_ref = r / np.where(n_r > 0, n_r, 1.0)
    p_cur = c / np.where(n_c > 0, n_c, 1.0)
    mid = (p_ref + p_cur) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_ref = np.where(p_ref > 0, p_ref * np.log2(p_ref / np.where(mid > 0, mid, 1.0)), 0.0)
        kl_cur = np.where(p_cur > 0, p_cur * np.log2(p_cur / np.where(mid > 0, mid, 1.0)), 0.0)
    js = np.sqrt(np.clip((kl_ref.sum(1) + kl_cur.sum(1)) / 2, 0.0, 1.0))
    floor_ref = np.maximum(p_ref, PSI_FLOOR)
    floor_cur = np.maximum(p_cur, PSI_FLOOR)
    psi = ((floor_cur - floor_ref) * np.log(floor_cur / floor_ref)).sum(axis=1)
    cramers_v = np.sqrt(statistic / safe_n[:, 0])
    return {
        "statistic": statistic,
        "dof": np.where(testable, dof, 0),
        "p_value": p_value,
        "js_distance": np.where(testable | (n_c[:, 0] > 0), js, 0.0),
        "psi": psi,
        "cramers_v": cramers_v,
        "rows_reference": n_r[:, 0],
        "rows_current": n_c[:, 0],
    }


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values (m,): reject where adjusted <= alpha controls the
    family-wise error rate at alpha under any dependence."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="mergesort")
    scaled = np.minimum((m - np.arange(m)) * p[order], 1.0)
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def stack_counts(pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """[(reference counts (k_i,), current counts (k_i,))] -> two zero-padded (f, max k)
    arrays for `homogeneity`."""
    width = max((len(r) for r, _ in pairs), default=1)
    ref = np.zeros((len(pairs), width))
    cur = np.zeros((len(pairs), width))
    for i, (r, c) in enumerate(pairs):
        ref[i, : len(r)] = r
        cur[i, : len(c)] = c
    return ref, cur


def drift_tests(
    names: list[str],
    reference: list[np.ndarray],
    current: list[np.ndarray],
    alpha: float,
    min_distance: float,
    min_expected: float = 5.0,
    spacings: list[bool] | None = None,
) -> list[dict[str, Any]]:
    """One record per name: the two-sample test of its counts, Holm-adjusted over all
    `names` (one family), its effect sizes and `drifted` (adjusted p <= alpha and JS
    distance >= min_distance). `spacings[i]`: name i's cells are the reference's own
    quantile bins of a continuous feature (`homogeneity`)."""
    ref, cur = stack_counts(list(zip(reference, current, strict=True)))
    flags = None if spacings is None else np.asarray(spacings, dtype=bool)
    bonus = np.zeros_like(ref)
    for i, counts in enumerate(reference):
        if flags is not None and flags[i]:  # numeric layout: bins, then missing
            bonus[i, len(counts) - 2] = 1.0
            bonus[i, len(counts) - 1] = 0.5
    result = homogeneity(ref, cur, min_expected, flags, bonus)
    adjusted = holm(result["p_value"])
    out = []
    for i, name in enumerate(names):
        out.append(
            {
                "name": name,
                "p_value": float(result["p_value"][i]),
                "p_adjusted": float(adjusted[i]),
                "statistic": float(result["statistic"][i]),
                "dof": int(result["dof"][i]),
                "js_distance": float(result["js_distance"][i]),
                "psi": float(result["psi"][i]),
                "cramers_v": float(result["cramers_v"][i]),
                "drifted": bool(adjusted[i] <= alpha and result["js_distance"][i] >= min_distance),
            }
        )
    return out
