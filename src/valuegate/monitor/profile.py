"""The reference profile: what monitoring compares production with, stored in the bundle
(`profile.json`, hashed in the manifest like every file), so monitoring never reloads the
training data.

Pure: frames and arrays in, one JSON-ready dict out, the same bytes for the same inputs.

Layout (`FORMAT`):
- `features[name]`: numeric -> `edges` (interior quantile bin edges of the reference
  values, ascending; bin i holds `edges[i-1] < x <= edges[i]`), `counts` (one per bin,
  len(edges) + 1), `missing`, `rows`; categorical -> `categories` (the most frequent
  reference levels, at most `max_categories`, as the training text), `counts` (one per
  level), `other` (reference rows of any other level), `missing`, `rows`;
- `score`: the same numeric profile of the calibrated scores (predictions for regression)
  of the rows scored out of sample (the validation split);
- `calibration` (binary): per score bin, rows, mean calibrated score and the observed
  positive rate on those rows, and a Hosmer-Lemeshow-type test of the whole table;
- `value`: the value per period with its standard error and interval on the validation and
  the test rows, at the deployed operating point (`value.at_deploy` names the one value at
  risk is measured from: the test value the deploy gate accepted).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

FORMAT = "valuegate-profile/1"
PROFILE_FILE = "profile.json"


def numeric_edges(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Interior bin edges: the distinct reference quantiles at 1/n_bins, ..., (n_bins-1)/n_bins
    of the non-missing `values` (n,). A coarse feature gets fewer edges (ties collapse), a
    constant one none (one bin)."""
    finite = values[~np.isnan(values)]
    if len(finite) == 0:
        return np.empty(0)
    levels = np.arange(1, n_bins) / n_bins
    # "lower": edges are observed values, so a coarse feature's levels each get a bin
    return np.unique(np.quantile(finite, levels, method="lower"))


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per bin of `values` (n,) float: shape (len(edges) + 2,), the bins then the
    missing values. Bin i holds `edges[i-1] < x <= edges[i]`."""
    missing = np.isnan(values)
    index = np.searchsorted(edges, values, side="left")
    index[missing] = len(edges) + 1
    return np.bincount(index, minlength=len(edges) + 2)


def category_counts(values: Any, categories: list[str]) -> np.ndarray:
    """Counts of `values` (n,) (training text, as `bundle.check_chunk` resolves them) per
    level of `categories`, then every other level, then missing: shape (len + 2,)."""
    # Count the distinct values first (one hash pass; Arrow-backed text and categoricals
    # count in C), then place the few distinct values: ~6x faster on 1M rows than
    # looking every row up in the categories.
    counted = pd.Series(values, copy=False).value_counts(dropna=False, sort=False)
    distinct = counted.index
    missing = np.asarray(distinct.isna())
    position = pd.Index(categories).get_indexer(distinct).copy()
    position[(position < 0) & ~missing] = len(categories)
    position[missing] = len(categories) + 1
    out = np.zeros(len(categories) + 2, dtype=np.int64)
    np.add.at(out, position, counted.to_numpy(dtype=np.int64))
    return out


MIN_BIN_ROWS = 25
"""Reference rows per bin, at least: fewer bins for a small reference. The drift test's
chi-square approximation needs it (by simulation: at 100 reference rows and 10 bins of 10
rows the false-alert rate is twice alpha; at 25 rows a bin it is within a point)."""


def numeric_profile(values: Any, n_bins: int) -> dict[str, Any]:
    """Quantile bins of `values` (n,): at most `n_bins`, at least `MIN_BIN_ROWS` reference
    rows each. `continuous`: no bin edge is a tied value, so the bins are the reference's
    own quantiles of a continuous feature (the drift test conditions on them)."""
    array = np.asarray(values, dtype=float)
    finite = array[~np.isnan(array)]
    edges = numeric_edges(array, max(1, min(n_bins, len(finite) // MIN_BIN_ROWS)))
    counts = bin_counts(array, edges)
    ordered = np.sort(finite)
    ties = np.searchsorted(ordered, edges, side="right") - np.searchsorted(ordered, edges)
    return {
        "kind": "numeric",
        "continuous": bool(len(edges) > 0 and np.all(ties <= 1)),
        "edges": [float(e) for e in edges],
        "counts": [int(c) for c in counts[:-1]],
        "missing": int(counts[-1]),
        "rows": len(array),
        "min": float(finite.min()) if len(finite) else None,
        "median": float(np.median(finite)) if len(finite) else None,
        "max": float(finite.max()) if len(finite) else None,
    }


def categorical_profile(values: Any, max_categories: int) -> dict[str, Any]:
    column = pd.Series(values, copy=False).astype(object)
    missing = int(column.isna().sum())
    frequency = column.dropna().astype(str).value_counts()
    # most frequent first, ties in text order: the same list for the same data
    ranked = sorted(frequency.items(), key=lambda item: (-item[1], item[0]))
    kept = ranked[:max_categories]
    return {
        "kind": "categorical",
        "categories": [name for name, _ in kept],
        "counts": [int(count) for _, count in kept],
        "other": int(sum(count for _, count in ranked[max_categories:])),
        "missing": missing,
        "rows": len(column),
    }


def reference_counts(entry: dict[str, Any]) -> np.ndarray:
    """A profile entry's counts in the layout `current_counts` gives: bins (+ other) +
    missing."""
    if entry["kind"] == "numeric":
        return np.array([*entry["counts"], entry["missing"]], dtype=np.int64)
    return np.array([*entry["counts"], entry["other"], entry["missing"]], dtype=np.int64)


def current_counts(entry: dict[str, Any], values: Any) -> np.ndarray:
    """Counts of production `values` (n,) in the bins of a profile entry."""
    if entry["kind"] == "numeric":
        return bin_counts(np.asarray(values, dtype=float), np.asarray(entry["edges"], float))
    return category_counts(values, entry["categories"])


def calibration_table(
    probability: Any, y_true: Any, edges: list[float] | np.ndarray
) -> dict[str, Any]:
    """Observed positive rate vs. mean calibrated score per score bin (`edges` as in
    `bin_counts`), on rows (n,) scored out of sample, and a test of the whole table:
    statistic = sum over bins of (observed - expected positives)^2 / (n p (1 - p)), chi-square
    with (bins - 1) degrees of freedom (Hosmer-Lemeshow); a small p-value says the scores
    are not probabilities on these rows, so an estimate of value from them is unreliable."""
    p = np.asarray(probability, dtype=float)
    y = np.asarray(y_true, dtype=float)
    edges = np.asarray(edges, dtype=float)
    index = np.searchsorted(edges, p, side="left")
    k = len(edges) + 1
    rows = np.bincount(index, minlength=k)
    predicted = np.bincount(index, weights=p, minlength=k)
    observed = np.bincount(index, weights=y, minlength=k)
    used = rows > 0
    mean_p = np.where(used, predicted / np.maximum(rows, 1), np.nan)
    rate = np.where(used, observed / np.maximum(rows, 1), np.nan)
    variance = predicted - np.bincount(index, weights=p * p, minlength=k)  # sum p(1-p)
    informative = used & (variance > 1e-12)
    statistic = float(
        np.sum((observed[informative] - predicted[informative]) ** 2 / variance[informative])
    )
    dof = max(int(informative.sum()) - 1, 1)
    return {
        "edges": [float(e) for e in edges],
        "rows": [int(r) for r in rows],
        "mean_score": [None if np.isnan(v) else float(v) for v in mean_p],
        "positive_rate": [None if np.isnan(v) else float(v) for v in rate],
        "statistic": statistic,
        "dof": dof,
        "p_value": float(stats.chi2.sf(statistic, dof)),
    }


def value_evidence(
    model: Any,
    y_true: Any,
    scores: Any,
    point: float,
    amount: Any | None,
    confidence: float,
) -> dict[str, Any]:
    """Value per period at the fixed operating point `point` on labelled rows (n,), with
    its standard error (currency per period; the rows are a sample of the cases) and a
    two-sided `confidence` normal interval. From the one value model (`case_values_at`)."""
    values = model.case_values_at(y_true, scores, point, amount)
    n = len(values)
    mean = float(values.mean()) * model.volume
    se = float(values.std(ddof=1) / np.sqrt(n)) * model.volume if n > 1 else float("nan")
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    return {
        "rows": n,
        "value_per_period": mean,
        "se": se,
        "low": mean - z * se,
        "high": mean + z * se,
        "confidence": confidence,
    }


def build_profile(
    reference: pd.DataFrame,
    fields: list[dict[str, Any]],
    model: Any,
    point: float,
    valid: dict[str, Any],
    test: dict[str, Any] | None = None,
    n_bins: int = 10,
    max_categories: int = 50,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """The reference profile (module docstring).

    reference: the rows the features are profiled on (the training + validation splits),
        holding every field's column (categories as training text);
    fields: the bundle's input fields (name, dtype); the amount column is left out;
    model: the value model (`business.value_model`); point: the deployed threshold/offset;
    valid / test: {"scores": (n,) calibrated scores or predictions, "y": (n,) labels (0/1
        or target), "amount": (n,) or None} of rows the model did not train on; `valid`
        gives the score distribution and the calibration table.
    """
    features = {}
    for field in fields:
        if field.get("role") == "amount":
            continue
        name = field["name"]
        if field["dtype"] == "category":
            features[name] = categorical_profile(reference[name], max_categories)
        else:
            features[name] = numeric_profile(reference[name], n_bins)
    scores = np.asarray(valid["scores"], dtype=float)
    score = numeric_profile(scores, n_bins)
    calibration = None
    if model.point_kind == "threshold":
        calibration = calibration_table(scores, valid["y"], score["edges"])
    value = {
        "valid": value_evidence(model, valid["y"], scores, point, valid.get("amount"), confidence)
    }
    if test is not None:
        value["test"] = value_evidence(
            model, test["y"], test["scores"], point, test.get("amount"), confidence
        )
    value["at_deploy"] = "test" if test is not None else "valid"
    return {
        "format": FORMAT,
        "reference": {
            "feature_rows": len(reference),
            "score_rows": len(scores),
            "n_bins": n_bins,
            "max_categories": max_categories,
        },
        "point": {"kind": model.point_kind, "value": float(point)},
        "features": features,
        "score": score,
        "calibration": calibration,
        "value": value,
    }


def reference_rows(frames: list[pd.DataFrame], fields: list[dict[str, Any]]) -> pd.DataFrame:
    """The reference rows' features as the bundle reads them (`bundle.check_chunk`:
    categories resolved to the training text), bad rows left out."""
    from valuegate.bundle import check_chunk

    checked = check_chunk(pd.concat(frames, ignore_index=True), fields)
    return checked.clean.loc[~checked.bad]


def profile_from_splits(
    fields: list[dict[str, Any]],
    model: Any,
    point: float,
    splits: dict[str, pd.DataFrame],
    scores: dict[str, np.ndarray],
    data: Any,
    amount_column: str | None,
) -> dict[str, Any]:
    """`build_profile` from the prepared splits: features profiled on train + valid (the
    model's own period), scores, calibration and value on valid and test (rows it did not
    train on). `scores`: calibrated scores (predictions) per split "valid", "test", in the
    splits' row order; `data`: the data config (target, positive label, task)."""
    from valuegate.data import target_vector

    def labelled(name: str) -> dict[str, Any] | None:
        if name not in splits or name not in scores:
            return None
        frame = splits[name]
        amount = frame[amount_column].to_numpy(float) if amount_column else None
        return {"scores": scores[name], "y": target_vector(frame, data), "amount": amount}

    reference = reference_rows([splits["train"], splits["valid"]], fields)
    valid = labelled("valid")
    if valid is None:
        raise ValueError("the profile needs the validation split and its scores")
    return build_profile(reference, fields, model, point, valid, labelled("test"))


def profile_bytes(profile: dict[str, Any]) -> bytes:
    """The profile as the bundle stores it (`profile.json`): JSON, 10 significant digits,
    the same bytes for the same profile."""
    from valuegate.io import to_json

    return to_json(profile).encode("utf-8")
