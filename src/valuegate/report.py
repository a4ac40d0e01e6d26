"""Plain-text views of decision records, for the terminal."""

from __future__ import annotations

from typing import Any


def money(value: float, currency: str) -> str:
    sign = "-" if value < 0 else ""
    return f"{sign}{abs(value):,.0f} {currency}"


def summary_table(summary: dict[str, Any]) -> str:
    """A table of every model's value, uplift and operating point (from evaluate.json)."""
    currency, period = summary["currency"], summary["period"]
    header = (
        f"{'model':<26}{'role':<11}{'value/' + period:>18}{'uplift':>16}  {'operating point':<20}"
    )
    lines = [
        f"Validation split, {summary['rows']} rows; value in {currency} per {period} at "
        f"{summary['volume']:,.0f} cases per {period}.",
        header,
        "-" * len(header),
    ]
    for name, rec in summary["models"].items():
        point = (
            f"threshold {rec['threshold']:.3f}"
            if "threshold" in rec
            else f"offset {rec['offset']:+.3g}"
        )
        if not rec["constraints_met"]:
            point += " (constraints not met)"
        lines.append(
            f"{name:<26}{rec['role']:<11}{money(rec['value_per_period'], currency):>18}"
            f"{money(rec['uplift'], currency):>16}  {point}"
        )
    best = summary["best_candidate"]
    uplift = summary["best_uplift"]
    verdict = "at or above" if uplift >= summary["min_uplift"] else "below"
    lines.append(
        f"Best candidate {best}: {money(uplift, currency)} per {period} over the best baseline "
        f"{summary['best_baseline']}, {verdict} the {money(summary['min_uplift'], currency)} "
        f"per {period} that matters (objective.min_uplift)."
    )
    final = summary.get("final")
    if final:
        valid, test = final["valid"], final["test"]
        lines.append(
            f"Final model {final['model']} ({final['role']}): "
            f"{money(valid['value_per_period'], currency)} per {period} on validation, "
            f"uplift {money(valid['uplift'], currency)} "
            f"({valid['confidence']:.0%} bounds {money(valid['uplift_ci_lower'], currency)} to "
            f"{money(valid['uplift_ci_upper'], currency)}); on test, once: "
            f"{money(test['value_per_period'], currency)} per {period}."
        )
        if summary.get("final_reason"):
            lines.append(f"Why: {summary['final_reason']}.")
    return "\n".join(lines)
