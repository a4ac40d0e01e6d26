"""Plain-text views of decision records, for the terminal."""

from __future__ import annotations

from typing import Any


def money(value: float, currency: str) -> str:
    """Thousands separators, no decimals; never "-0" (a value that rounds to 0 is 0)."""
    rounded = round(value) + 0
    sign = "-" if rounded < 0 else ""
    return f"{sign}{abs(rounded):,d} {currency}"


def signed_number(value: float) -> str:
    """+1,234 for magnitudes from 1,000 (never +1.23e+03), else 3 significant digits."""
    return f"{value:+,.0f}" if abs(value) >= 1000 else f"{value:+.3g}"


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
        if "acts" in rec:  # one score (a dummy): no threshold, it acts on every case or none
            point = "acts on every case" if rec["acts"] == "always" else "acts on no case"
        elif "threshold" in rec:
            point = f"threshold {rec['threshold']:.3f}"
        else:
            point = f"offset {signed_number(rec['offset'])}"
        if not rec["constraints_met"]:
            point += " (constraints not met)"
        lines.append(
            f"{name:<26}{rec['role']:<11}{money(rec['value_per_period'], currency):>18}"
            f"{money(rec['uplift'], currency):>16}  {point}"
        )
    best = summary["best_candidate"]
    if best is not None:
        rec = summary["models"][best]
        bar = f"the {money(summary['min_uplift'], currency)} per {period} that matters"
        low = money(rec.get("uplift_ci_lower", rec["uplift"]), currency)
        if rec.get("gate_passed"):
            verdict = f"it passed the gate (its lower bound {low} is at or above {bar})"
        elif not rec["constraints_met"]:
            verdict = "the gate refused it (it meets no operating point with the constraints)"
        elif summary["min_uplift"] > 0:
            verdict = f"the gate refused it (its lower bound {low} is below {bar})"
        else:
            verdict = f"the gate refused it (its lower bound {low} is not above zero)"
        lines.append(
            f"Best candidate {best}: {money(rec['uplift'], currency)} per {period} over the best "
            f"baseline {summary['best_baseline']}; {verdict}."
        )
    final = summary.get("final")
    if final:
        valid, test = final["valid"], final["test"]
        lines.append(
            f"Final model {final['model']} ({final['role']}): "
            f"{money(valid['value_per_period'], currency)} per {period} on validation, "
            f"uplift {money(valid['uplift'], currency)} "
            f"({valid['confidence']:.0%} bounds {money(valid['uplift_ci_lower'], currency)} to "
            f"{money(valid['uplift_ci_upper'], currency)}, adjusted for "
            f"{valid.get('interval_adjusted_for', 1)} model(s) it was picked from); on test, "
            "once: "
            f"{money(test['value_per_period'], currency)} per {period}."
        )
        if summary.get("final_reason"):
            lines.append(f"Why: {summary['final_reason']}.")
    return "\n".join(lines)
