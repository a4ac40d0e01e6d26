"""Retraining policies (`retrain.backtest.policies`): at the end of each production period,
from that period's monitoring record, does the policy retrain? Pure: a policy and a record
in, a decision and the sentence behind it out.

Triggers:
- `never`: the first model serves every period;
- `every` (`n`): retrain at the end of every n-th period;
- `value_at_risk` (`threshold`, currency per objective.period): retrain when monitoring is
  sure the serving model lost more than `threshold` against its value at deploy: the UPPER
  bound of the value at risk's interval (at monitor.confidence) is below -threshold. The
  upper bound, because a retrain costs money (retrain.cost): a policy that retrained
  whenever a loss was merely plausible (the point estimate, or the lower bound) would pay
  for retrains on noise. It is exactly when monitoring raises its `value` alert with
  monitor.alerts.value_drop = threshold;
- `drift`: retrain when the period raised a drift alert on at least `min_features` of the
  features and the score (monitor/: Holm-corrected tests, effect size at least
  monitor.alerts.min_distance).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from valuegate.config.schema import PolicyConfig
from valuegate.deploy import money


@dataclass(frozen=True)
class Decision:
    """Whether to retrain after a period, and why (one sentence, with the numbers)."""

    retrain: bool
    why: str


def decide(policy: PolicyConfig, index: int, record: dict[str, Any], unit: str) -> Decision:
    """The decision at the end of the period at position `index` (0-based) of the replay.

    `record`: monitoring's window record of the serving model on that period
    (`monitor.run.window_record`: `value.at_risk` {value_per_period, low, high, confidence,
    now} or None, `drift.drifted` [names]); `unit`: "USD/month", for the sentence."""
    trigger = policy.trigger
    if trigger == "never":
        return Decision(False, "never retrains")
    if trigger == "every":
        n = policy.n or 1
        due = (index + 1) % n == 0
        return Decision(
            due, f"period {index + 1} of every {n}: " + ("retrain" if due else "not due")
        )
    if trigger == "value_at_risk":
        threshold = float(policy.threshold or 0.0)
        risk = record["value"]["at_risk"]
        if risk is None:
            return Decision(False, "no value at risk (no labels, no estimate): no retrain")
        fires = risk["high"] < -threshold
        return Decision(
            fires,
            f"value at risk {money(risk['value_per_period'])} {unit} ({risk['confidence']:.0%} "
            f"interval {money(risk['low'])} {unit} to {money(risk['high'])} {unit}); upper bound "
            + ("below" if fires else "not below")
            + f" -{money(threshold)} {unit}: "
            + ("retrain" if fires else "no retrain"),
        )
    if trigger == "drift":
        need = policy.min_features or 1
        drifted = list(record["drift"]["drifted"])
        fires = len(drifted) >= need
        shown = ", ".join(drifted[:6]) + (", ..." if len(drifted) > 6 else "")
        return Decision(
            fires,
            f"{len(drifted)} drift alert(s)"
            + (f" ({shown})" if drifted else "")
            + f", {need} needed: "
            + ("retrain" if fires else "no retrain"),
        )
    raise AssertionError(f"unknown trigger {trigger!r}")  # the schema allows no other
