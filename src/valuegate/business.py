"""THE value model: what a model's decisions are worth, in currency per period.

Every money figure valuegate shows (baselines, candidates, uplift, threshold choice, and
later the gate, tuning and monitoring) is computed here, from the objective config.

Binary classification
    Each case gets one of four outcomes. Outcome `o` is worth
    `value[o] + per_amount[o] * amount` for that case (currency), where `amount` is the
    optional per-row amount column. A model flags a case as positive when its score is
    `>= threshold`. Value per period = mean value per case x `volume` (cases per period).

Regression
    An error `e = y_pred - y_true` beyond `tolerance` costs `over` per unit when positive
    and `under` per unit when negative; value per case = -cost. The operating point is an
    additive `offset` to the predictions, chosen like a threshold: asymmetric costs make a
    shifted prediction worth more than the unbiased one.

One interface
    Both value models answer the same calls, so no caller asks which kind it holds:
    `choose_point` (the operating point for value under the constraints),
    `case_values_at` / `value_at_point` (value of decisions at a point, per case and per
    period), `decide` / `decide_one` (the decision and its expected value per case before
    the outcome is known), `metrics_at_point`, `value_curve`, `acts`, `regret_at`,
    `metric_point_worth`, and the point's name for display (`point_kind`, `point_label`,
    `default_point`, `default_point_key`). `task` names the technical metrics that go with
    it (ROC AUC or R2). Build one with `value_model(config)` or, from a bundle manifest,
    `value_model_from_record(task, objective)`: one builder, `build_value_model`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from valuegate.config.schema import Config, Constraint, Objective

OUTCOMES = ("tp", "fp", "fn", "tn")


@dataclass(frozen=True)
class OperatingPoint:
    """A chosen decision rule and what it is worth on the rows it was chosen on."""

    kind: str  # "threshold" (binary) or "offset" (regression)
    value: float  # the threshold (score units) or offset (target units)
    value_per_period: float  # at the chosen operating point
    default_value_per_period: float  # at threshold 0.5 / offset 0
    constraints_met: bool
    metrics: dict[str, float] = field(default_factory=dict)  # at the chosen point


def _as_float_array(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    return array


@dataclass(frozen=True)
class BinaryValueModel:
    """Currency value of binary decisions. `values[o] = (fixed, per_amount)` for each outcome."""

    values: dict[str, tuple[float, float]]
    volume: float

    @classmethod
    def from_config(cls, config: Config) -> BinaryValueModel:
        return cls.from_objective(config.objective)

    @classmethod
    def from_objective(cls, objective: Objective) -> BinaryValueModel:
        outcomes = objective.outcomes
        if outcomes is None:
            raise ValueError(
                "objective.outcomes (value of tp, fp, fn, tn) is required for a binary task"
            )
        values = {
            o: (getattr(outcomes, o).value, getattr(outcomes, o).per_amount) for o in OUTCOMES
        }
        return cls(values=values, volume=objective.volume)

    def _outcome_value(self, outcome: str, amount: Any | None) -> Any:
        """Value of `outcome` for a case of `amount` (a number, an array, or None)."""
        fixed, per_amount = self.values[outcome]
        if amount is None or per_amount == 0:
            return fixed
        return fixed + per_amount * amount

    def _outcome_values(self, outcome: str, n: int, amount: np.ndarray | None) -> np.ndarray:
        return np.broadcast_to(np.asarray(self._outcome_value(outcome, amount), float), (n,))

    def _flag_and_keep_values(
        self, y_true: np.ndarray, amount: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-row value if flagged, and if not flagged. Shapes (n,), (n,)."""
        n = len(y_true)
        positive = y_true.astype(bool)
        flagged = np.where(
            positive,
            self._outcome_values("tp", n, amount),
            self._outcome_values("fp", n, amount),
        )
        kept = np.where(
            positive,
            self._outcome_values("fn", n, amount),
            self._outcome_values("tn", n, amount),
        )
        return flagged, kept

    def case_values(self, y_true: Any, flagged: Any, amount: Any | None = None) -> np.ndarray:
        """Value of each case (currency), shape (n,). `y_true`, `flagged`: 0/1 arrays."""
        y = _as_float_array(y_true, "y_true")
        decisions = _as_float_array(flagged, "flagged").astype(bool)
        amounts = None if amount is None else _as_float_array(amount, "amount")
        if_flagged, if_kept = self._flag_and_keep_values(y, amounts)
        return np.where(decisions, if_flagged, if_kept)

    def expected_case_values(
        self, probability: Any, flagged: Any, amount: Any | None = None
    ) -> np.ndarray:
        """Expected value of each decision (currency), shape (n,), before the outcome is
        known: `probability` (n,) of the positive class, `flagged` (n,) the decisions."""
        p = _as_float_array(probability, "probability")
        n = len(p)
        if_positive = self.case_values(np.ones(n), flagged, amount)
        if_negative = self.case_values(np.zeros(n), flagged, amount)
        return p * if_positive + (1.0 - p) * if_negative

    def expected_value(
        self, probability: float, flagged: bool, amount: float | None = None
    ) -> float:
        """`expected_case_values` for one decision, without arrays (the HTTP service scores
        one record per request, where building arrays costs more than the arithmetic)."""
        positive, negative = ("tp", "fp") if flagged else ("fn", "tn")
        return probability * self._outcome_value(positive, amount) + (
            1.0 - probability
        ) * self._outcome_value(negative, amount)

    def value_per_period(self, y_true: Any, flagged: Any, amount: Any | None = None) -> float:
        """Mean value per case x volume (currency per period)."""
        values = self.case_values(y_true, flagged, amount)
        if len(values) == 0:
            raise ValueError("cannot value an empty set of cases")
        return float(values.mean() * self.volume)

    def value_at_threshold(
        self, y_true: Any, scores: Any, threshold: float, amount: Any | None = None
    ) -> float:
        flagged = _as_float_array(scores, "scores") >= threshold
        return self.value_per_period(y_true, flagged, amount)

    def curve(self, y_true: Any, scores: Any, amount: Any | None = None) -> dict[str, np.ndarray]:
        """Value and confusion counts for every distinct decision a score allows.

        Returns arrays of length m + 1 (m = distinct scores), ordered from flagging no case
        to flagging every case: `threshold` (flag when score >= threshold),
        `value_per_period`, `tp`, `fp`, `fn`, `tn`.
        """
        y = _as_float_array(y_true, "y_true")
        s = _as_float_array(scores, "scores")
        if len(y) != len(s):
            raise ValueError(f"y_true has {len(y)} rows but scores has {len(s)}")
        if len(y) == 0:
            raise ValueError("cannot value an empty set of cases")
        if np.isnan(s).any():
            raise ValueError("scores contain NaN")
        amounts = None if amount is None else _as_float_array(amount, "amount")
        if_flagged, if_kept = self._flag_and_keep_values(y, amounts)

        order = np.argsort(-s, kind="mergesort")
        s_sorted = s[order]
        gain = (if_flagged - if_kept)[order]
        positive = y[order]
        # Last index of each group of tied scores: flagging is all-or-nothing within a tie.
        ends = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])
        cum_gain = np.r_[0.0, np.cumsum(gain)[ends]]
        tp = np.r_[0.0, np.cumsum(positive)[ends]]
        flagged_count = np.r_[0.0, ends + 1.0]
        fp = flagged_count - tp
        n_pos = positive.sum()
        n = float(len(y))
        fn = n_pos - tp
        tn = (n - n_pos) - fp

        distinct = s_sorted[ends]  # descending
        top = distinct[0]
        above_top = (top + 1.0) / 2.0 if top < 1.0 else float(np.nextafter(top, np.inf))
        # Midpoints between neighbouring scores generalise better than the scores
        # themselves; where two scores are adjacent floats the midpoint collapses onto
        # the lower one, and the score itself is used.
        lower = np.r_[distinct[1:], min(0.0, distinct[-1])]
        midpoints = (distinct + lower) / 2.0
        collapsed = np.r_[midpoints[:-1] <= distinct[1:], False]
        thresholds = np.r_[above_top, np.where(collapsed, distinct, midpoints)]
        value = (if_kept.sum() + cum_gain) / n * self.volume
        return {
            "threshold": thresholds,
            "value_per_period": value,
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "tn": tn,
        }

    def choose_threshold(
        self,
        y_true: Any,
        scores: Any,
        amount: Any | None = None,
        constraints: list[Constraint] | tuple[Constraint, ...] = (),
    ) -> OperatingPoint:
        """The threshold that maximises value among those meeting every constraint.

        Ties are broken by the middle of the tied set (the centre of a flat optimum). When
        no threshold meets the constraints, the value-maximising one is returned with
        `constraints_met=False`.
        """
        curve = self.curve(y_true, scores, amount)
        metrics = threshold_metrics(curve)
        feasible = np.ones(len(curve["threshold"]), dtype=bool)
        for constraint in constraints:
            feasible &= np.array([constraint.holds(v) for v in metrics[constraint.metric]])
        met = bool(feasible.any())
        value = curve["value_per_period"]
        candidates = np.flatnonzero(feasible) if met else np.arange(len(value))
        best = value[candidates].max()
        tol = 1e-9 * max(1.0, abs(best))
        tied = candidates[value[candidates] >= best - tol]
        pick = int(tied[len(tied) // 2])
        return OperatingPoint(
            kind="threshold",
            value=float(curve["threshold"][pick]),
            value_per_period=float(value[pick]),
            default_value_per_period=self.value_at_threshold(y_true, scores, 0.5, amount),
            constraints_met=met,
            metrics={name: float(series[pick]) for name, series in metrics.items()},
        )

    # ------------------------------------------------------------ the operating-point API
    # The same names on both value models, so callers (training, gate, evaluation, deploy,
    # tuning, the report, the bundle) never branch on the kind of task. A binary model's
    # point is a threshold on the score.
    task = "binary"
    point_kind = "threshold"
    point_label = "threshold on the score (act when score >= threshold)"
    default_point = 0.5
    default_point_key = "value_at_0_5"  # the record key of the value at `default_point`
    point_metric_suffix = ""  # threshold metrics keep their names in the records

    def choose_point(
        self,
        y_true: Any,
        scores: Any,
        amount: Any | None = None,
        constraints: list[Constraint] | tuple[Constraint, ...] = (),
        n_candidates: int | None = None,
    ) -> OperatingPoint:
        """`choose_threshold` (every distinct score is a candidate; `n_candidates` unused)."""
        return self.choose_threshold(y_true, scores, amount, constraints)

    def case_values_at(
        self, y_true: Any, scores: Any, point: float, amount: Any | None = None
    ) -> np.ndarray:
        """Value of each case (currency), shape (n,), flagging `score >= point`."""
        return self.case_values(y_true, _as_float_array(scores, "scores") >= point, amount)

    def value_at_point(
        self, y_true: Any, scores: Any, point: float, amount: Any | None = None
    ) -> float:
        """Value per period at a fixed threshold (currency per period)."""
        return self.value_at_threshold(y_true, scores, point, amount)

    def metrics_at_point(
        self, y_true: Any, scores: Any, point: float, amount: Any | None = None
    ) -> dict[str, float]:
        """Threshold metrics (precision, recall, ...) at a fixed threshold; NaN if undefined."""
        y = _as_float_array(y_true, "y_true").astype(bool)
        flagged = _as_float_array(scores, "scores") >= point
        counts = {
            "tp": np.array([np.sum(flagged & y)]),
            "fp": np.array([np.sum(flagged & ~y)]),
            "fn": np.array([np.sum(~flagged & y)]),
            "tn": np.array([np.sum(~flagged & ~y)]),
        }
        return {k: float(v[0]) for k, v in threshold_metrics(counts).items()}

    def value_curve(
        self, y_true: Any, scores: Any, amount: Any | None = None
    ) -> dict[str, np.ndarray]:
        """Value per period (currency) at every distinct threshold: `{"threshold": (m,),
        "value_per_period": (m,)}` (`curve`, without the confusion counts)."""
        curve = self.curve(y_true, scores, amount)
        return {"threshold": curve["threshold"], "value_per_period": curve["value_per_period"]}

    def decide(self, scores: Any, point: float, amount: Any | None = None) -> dict[str, Any]:
        """The decision per case and its expected value before the outcome is known:
        `decision` bool (n,) (act when score >= point), `expected_value` (n,) currency per
        case, p * value(if positive) + (1 - p) * value(if negative) of that decision, the
        (calibrated) score read as the probability p of the positive class."""
        s = _as_float_array(scores, "scores")
        flagged = s >= point
        return {
            "decision": flagged,
            "expected_value": self.expected_case_values(s, flagged, amount),
        }

    def decide_one(
        self, score: float, point: float, amount: float | None = None
    ) -> tuple[bool, float]:
        """`decide` for one case, without arrays (the HTTP service scores one record per
        request, where building arrays costs more than the arithmetic)."""
        flagged = score >= point
        return flagged, self.expected_value(score, flagged, amount)

    def acts(self, scores: Any, point: float) -> str | None:
        """A single distinct score (a dummy) has no real threshold: it acts on every case
        ("always") or on none ("never"); None for a real score."""
        s = _as_float_array(scores, "scores")
        if len(s) == 0 or len(np.unique(s)) != 1:
            return None
        return "always" if s[0] >= point else "never"

    def regret_at(
        self, y_true: Any, scores: Any, point: float, amount: Any | None = None
    ) -> np.ndarray:
        """What each case loses (currency, >= 0), shape (n,), against the better of the two
        decisions for it once its outcome is known."""
        y = _as_float_array(y_true, "y_true")
        n = len(y)
        best = np.maximum(
            self.case_values(y, np.ones(n), amount), self.case_values(y, np.zeros(n), amount)
        )
        return best - self.case_values_at(y, scores, point, amount)

    def metric_point_worth(
        self, y_true: Any, scores: Any, point: float, amount: Any | None = None
    ) -> dict[str, Any]:
        """What one percentage point of recall or precision is worth at `point` (currency
        per period): one more point of recall catches 1% of the positives more (taken from
        those now missed, the false alarms unchanged); one more point of precision at the
        same recall means fewer false alarms (those cases are then left alone). Each moved
        case is worth this model's difference between the two decisions for it, averaged
        over the cases that would move (so a per-amount objective weighs them by amount)."""
        y = _as_float_array(y_true, "y_true")
        s = _as_float_array(scores, "scores")
        amounts = None if amount is None else _as_float_array(amount, "amount")
        n = len(y)
        positive = y.astype(bool)
        flagged = s >= point
        tp, fp = int((flagged & positive).sum()), int((flagged & ~positive).sum())
        fn = int((~flagged & positive).sum())
        ones, zeros = np.ones(n), np.zeros(n)
        # What acting on each case is worth more than leaving it (currency per case).
        catch = self.case_values(ones, ones, amounts) - self.case_values(ones, zeros, amounts)
        spare = self.case_values(zeros, zeros, amounts) - self.case_values(zeros, ones, amounts)
        missed, alarms = ~flagged & positive, flagged & ~positive
        per_catch = float(catch[missed].mean() if missed.any() else catch[positive].mean())
        per_spare = float(spare[alarms].mean() if alarms.any() else spare[~positive].mean())
        n_pos = int(positive.sum())
        recall_point = 0.01 * n_pos * per_catch / n * self.volume
        precision = tp / (tp + fp) if tp + fp else float("nan")
        precision_point = float("nan")
        fewer_alarms = float("nan")
        if tp > 0 and precision + 0.01 <= 1.0:
            fewer_alarms = fp - (tp / (precision + 0.01) - tp)
            precision_point = fewer_alarms * per_spare / n * self.volume
        return {
            "kind": "binary",
            "recall": tp / n_pos if n_pos else float("nan"),
            "precision": precision,
            "recall_point": recall_point,
            "precision_point": precision_point,
            "per_caught_case": per_catch,
            "per_spared_case": per_spare,
            "positives_per_point": 0.01 * n_pos / n * self.volume,
            "fewer_alarms_per_point": fewer_alarms / n * self.volume,
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "rows": n,
        }

    def decision_gain(self, probability: Any, amount: Any | None = None) -> np.ndarray:
        """Expected value of acting minus not acting, per case (currency), shape (n,), for
        the probability (n,) of the positive class: acting is worth it where this is > 0."""
        p = _as_float_array(probability, "probability")
        n = len(p)
        return self.expected_case_values(p, np.ones(n), amount) - self.expected_case_values(
            p, np.zeros(n), amount
        )

    def break_even_probability(self) -> float | None:
        """The probability above which acting is worth more than not acting, when the
        outcomes do not depend on the amount (else None: it differs per case)."""
        if any(per_amount != 0 for _fixed, per_amount in self.values.values()):
            return None
        gain_if_positive = self.values["tp"][0] - self.values["fn"][0]
        loss_if_negative = self.values["tn"][0] - self.values["fp"][0]
        total = gain_if_positive + loss_if_negative
        if total <= 0:
            return None  # acting never (or always) pays: no break-even inside (0, 1)
        ratio = float(loss_if_negative / total)
        # Outside (0, 1) one action pays whatever the probability: no break-even either.
        return ratio if 0.0 < ratio < 1.0 else None


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def threshold_metrics(counts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Threshold-dependent metrics from confusion counts (arrays); NaN where undefined."""
    tp, fp, fn, tn = (np.asarray(counts[k], dtype=float) for k in OUTCOMES)
    n = tp + fp + fn + tn
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    return {
        "precision": precision,
        "recall": recall,
        "specificity": _ratio(tn, tn + fp),
        "false_positive_rate": _ratio(fp, fp + tn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "accuracy": _ratio(tp + tn, n),
        "flag_rate": _ratio(tp + fp, n),
    }


@dataclass(frozen=True)
class RegressionValueModel:
    """Currency cost of regression errors; value = -cost."""

    under: float
    over: float
    tolerance: float
    volume: float

    @classmethod
    def from_config(cls, config: Config) -> RegressionValueModel:
        return cls.from_objective(config.objective)

    @classmethod
    def from_objective(cls, objective: Objective) -> RegressionValueModel:
        cost = objective.cost
        if cost is None:
            raise ValueError(
                "objective.cost (under, over, tolerance) is required for a regression task"
            )
        return cls(cost.under, cost.over, cost.tolerance, objective.volume)

    def case_values(self, y_true: Any, y_pred: Any) -> np.ndarray:
        """Value of each case (currency, <= 0), shape (n,)."""
        y = _as_float_array(y_true, "y_true")
        p = _as_float_array(y_pred, "y_pred")
        if len(y) != len(p):
            raise ValueError(f"y_true has {len(y)} rows but y_pred has {len(p)}")
        error = p - y
        excess = np.maximum(np.abs(error) - self.tolerance, 0.0)
        return -np.where(error > 0, self.over * excess, self.under * excess)

    def value_per_period(self, y_true: Any, y_pred: Any) -> float:
        values = self.case_values(y_true, y_pred)
        if len(values) == 0:
            raise ValueError("cannot value an empty set of cases")
        return float(values.mean() * self.volume)

    def choose_offset(
        self,
        y_true: Any,
        y_pred: Any,
        constraints: list[Constraint] | tuple[Constraint, ...] = (),
        n_candidates: int = 201,
    ) -> OperatingPoint:
        """The additive offset to predictions that maximises value (meeting constraints).

        Candidates are 0 and the residual quantiles at `n_candidates` evenly spaced levels
        (the optimum of a piecewise-linear cost lies at a residual, shifted by the
        tolerance). Ties go to the smallest absolute offset.
        """
        y = _as_float_array(y_true, "y_true")
        p = _as_float_array(y_pred, "y_pred")
        residual = y - p
        levels = np.linspace(0.0, 1.0, n_candidates)
        quantiles = np.quantile(residual, levels)
        tol = self.tolerance
        offsets = np.unique(np.r_[0.0, quantiles, quantiles - tol, quantiles + tol])
        values = np.array([self.value_per_period(y, p + o) for o in offsets])
        metrics_by_offset = [regression_metrics(y, p + o) for o in offsets]
        feasible = np.array(
            [all(c.holds(m[c.metric]) for c in constraints) for m in metrics_by_offset]
        )
        met = bool(feasible.any())
        candidates = np.flatnonzero(feasible) if met else np.arange(len(offsets))
        best = values[candidates].max()
        tied = candidates[values[candidates] >= best - 1e-9 * max(1.0, abs(best))]
        pick = int(tied[np.argmin(np.abs(offsets[tied]))])
        return OperatingPoint(
            kind="offset",
            value=float(offsets[pick]),
            value_per_period=float(values[pick]),
            default_value_per_period=self.value_per_period(y, p),
            constraints_met=met,
            metrics=metrics_by_offset[pick],
        )

    # ------------------------------------------------------------ the operating-point API
    # A regression model's point is an additive offset to the predictions (target units).
    task = "regression"
    point_kind = "offset"
    point_label = "offset added to the prediction (target units)"
    default_point = 0.0
    default_point_key = "value_at_offset_0"
    point_metric_suffix = "_at_offset"  # mae_at_offset beside the unshifted mae

    def choose_point(
        self,
        y_true: Any,
        y_pred: Any,
        amount: Any | None = None,
        constraints: list[Constraint] | tuple[Constraint, ...] = (),
        n_candidates: int | None = None,
    ) -> OperatingPoint:
        """`choose_offset` (`amount` unused: the cost does not depend on it)."""
        return self.choose_offset(y_true, y_pred, constraints, n_candidates or 201)

    def case_values_at(
        self, y_true: Any, y_pred: Any, point: float, amount: Any | None = None
    ) -> np.ndarray:
        """Value of each case (currency, <= 0), shape (n,), predictions shifted by `point`."""
        return self.case_values(y_true, _as_float_array(y_pred, "y_pred") + point)

    def value_at_point(
        self, y_true: Any, y_pred: Any, point: float, amount: Any | None = None
    ) -> float:
        """Value per period at a fixed offset (currency per period)."""
        return self.value_per_period(y_true, _as_float_array(y_pred, "y_pred") + point)

    def metrics_at_point(
        self, y_true: Any, y_pred: Any, point: float, amount: Any | None = None
    ) -> dict[str, float]:
        """MAE, RMSE, R2 of the shifted predictions."""
        y = _as_float_array(y_true, "y_true")
        return regression_metrics(y, _as_float_array(y_pred, "y_pred") + point)

    def value_curve(
        self, y_true: Any, y_pred: Any, amount: Any | None = None, n_points: int = 101
    ) -> dict[str, np.ndarray]:
        """Value per period (currency) for `n_points` offsets spanning the residuals' 1st
        to 99th percentile (and 0): `{"offset": (m,), "value_per_period": (m,)}`."""
        y = _as_float_array(y_true, "y_true")
        p = _as_float_array(y_pred, "y_pred")
        low, high = np.quantile(y - p, [0.01, 0.99])
        offsets = np.linspace(min(low, 0.0), max(high, 0.0), n_points)
        values = np.array([self.value_per_period(y, p + o) for o in offsets])
        return {"offset": offsets, "value_per_period": values}

    def decide(self, y_pred: Any, point: float, amount: Any | None = None) -> dict[str, Any]:
        """`decision` (n,): the prediction shifted by the offset (target units);
        `expected_value` (n,) is NaN: the cost of an error needs the outcome."""
        p = _as_float_array(y_pred, "y_pred")
        return {"decision": p + point, "expected_value": np.full(len(p), np.nan)}

    def decide_one(
        self, y_pred: float, point: float, amount: float | None = None
    ) -> tuple[float, None]:
        """`decide` for one case: (shifted prediction, None)."""
        return y_pred + point, None

    def acts(self, y_pred: Any, point: float) -> None:
        """An offset always gives a prediction: no act / not-act."""
        return None

    def regret_at(self, y_true: Any, y_pred: Any, point: float, amount: Any | None = None) -> None:
        """No discrete decision to regret: the value of each case is already its cost."""
        return None

    def metric_point_worth(
        self, y_true: Any, y_pred: Any, point: float, amount: Any | None = None
    ) -> dict[str, Any]:
        """What every error beyond the tolerance being one target unit smaller is worth at
        `point` (currency per period), and how many rows are outside the tolerance."""
        y = _as_float_array(y_true, "y_true")
        predicted = _as_float_array(y_pred, "y_pred") + point
        base = self.value_per_period(y, predicted)
        error = predicted - y
        excess = np.maximum(np.abs(error) - self.tolerance, 0.0)
        closer = predicted - np.sign(error) * np.minimum(excess, 1.0)
        return {
            "kind": "regression",
            "one_unit_less_error": self.value_per_period(y, closer) - base,
            "rows_outside_tolerance": int((excess > 0).sum()),
            "rows": len(y),
        }

    def decision_gain(self, probability: Any, amount: Any | None = None) -> None:
        """No act / not-act decision in regression."""
        return None

    def break_even_probability(self) -> None:
        return None


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and R2 (target units)."""
    error = y_pred - y_true
    ss_res = float(np.sum(error**2))
    ss_tot = float(np.sum((y_true - y_true.mean()) ** 2))
    return {
        "mae": float(np.mean(np.abs(error))),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan"),
    }


ValueModel = BinaryValueModel | RegressionValueModel


def fixed_operating_point(
    model: ValueModel,
    y_true: Any,
    pred: Any,
    amount: Any | None = None,
    constraints: list[Constraint] | tuple[Constraint, ...] = (),
    n_resamples: int = 200,
    seed: int = 0,
    interval: float = 0.9,
) -> dict[str, Any]:
    """Choose a model's operating point on out-of-fold rows, once, and say how sure it is.

    `y_true`, `pred` (calibrated scores or predictions), `amount`: shape (n,), the rows the
    point is chosen on (never the rows that later value it). Returns the JSON-ready record
    kept in fit.json (`operating_point`): `kind`, `value` (the threshold / offset that is
    then fixed), `constraints_met` (False: no point meets them on these rows, the model
    fails them), `value_per_period` on these rows at that point (optimistic: chosen here),
    `metrics` there, and the choice's uncertainty: the point is chosen again on
    `n_resamples` bootstrap resamples of the rows; `interval` holds the central `interval`
    share of those choices and `value_cost` is how much less the rows are worth (currency
    per period) at the worse end of that interval than at the chosen point.

    A model with a single score (a dummy) has no real threshold: it acts on every case or on
    none; `acts` says which ("always" / "never"), else it is None.
    """
    y = _as_float_array(y_true, "y_true")
    p = _as_float_array(pred, "pred")
    amounts = None if amount is None else _as_float_array(amount, "amount")
    point = model.choose_point(y, p, amounts, constraints)
    rng = np.random.default_rng(seed)
    n = len(y)
    choices = np.empty(n_resamples)
    for r in range(n_resamples):
        idx = rng.integers(0, n, size=n)
        # 51 offsets per resample (regression): the value near the optimum is flat.
        choices[r] = model.choose_point(
            y[idx], p[idx], None if amounts is None else amounts[idx], constraints, 51
        ).value
    tail = (1.0 - interval) / 2.0
    low, high = (float(v) for v in np.quantile(choices, [tail, 1.0 - tail]))
    worst = min(model.value_at_point(y, p, v, amounts) for v in (low, high))
    acts = model.acts(p, point.value)
    return {
        "kind": point.kind,
        "value": point.value,
        "acts": acts,
        "constraints_met": point.constraints_met,
        "rows": n,
        "value_per_period": point.value_per_period,
        # None where a metric is undefined at the point (JSON has no NaN)
        "metrics": {k: (v if v == v else None) for k, v in point.metrics.items()},
        "interval": [low, high],
        "interval_share": interval,
        "value_cost": max(0.0, point.value_per_period - worst),
        "choice_resamples": n_resamples,
    }


VALUE_MODELS: dict[str, type[BinaryValueModel] | type[RegressionValueModel]] = {
    "binary": BinaryValueModel,
    "regression": RegressionValueModel,
}


def build_value_model(task: str, objective: Objective) -> ValueModel:
    """THE builder: the value model `objective` declares for `task` ("binary" or
    "regression"). Both public constructors below go through it, so a bundle's value model
    is the one its config built."""
    if task not in VALUE_MODELS:
        raise ValueError(f"task must be one of {sorted(VALUE_MODELS)}, got {task!r}")
    return VALUE_MODELS[task].from_objective(objective)


def value_model(config: Config) -> ValueModel:
    """The value model the config's objective declares for its task."""
    return build_value_model(config.data.task, config.objective)


def value_model_from_record(task: str, objective: Mapping[str, Any]) -> ValueModel:
    """The value model of a stored record: `task` and `objective` as a bundle manifest
    keeps them (`model.task`, `objective` = `config.objective.model_dump()`). The record is
    validated by the config's own `Objective` schema, then built by `build_value_model`:
    the same code as from the config. ValueError (pydantic's, naming the field) for a
    record the schema refuses."""
    return build_value_model(task, Objective.model_validate(dict(objective)))
