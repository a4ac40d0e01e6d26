"""The deploy gate: is the final model packaged, and does it replace the champion?

In order (the first that fails decides; `deploy_decision`):
    1. good enough: `objective.good_enough` on the test split (value and metrics);
    2. not too good to be true: the test ROC AUC / R2 is below `deploy.too_good`'s ceiling
       and not far above the assessment's honest estimate (`too_good`);
    3. against the registry's champion, only on test rows that NEITHER model has seen (a
       bundle records the hashes of the rows it was fitted and selected on: `row_lineage.py`),
       both models at the operating points they ship with (the champion at its manifest
       threshold / offset, the new model at its own, chosen on out-of-fold training
       scores): a paired bootstrap of the uplift at those fixed points
       (`fixed_point_uplifts`), tested at the level this attempt may spend of the test
       rows' budget (`budget_attempt`).

Too few unseen rows (`deploy.min_fresh_rows`), or a champion without lineage: no comparison.
The new model is then packaged (it met 1 and 2 on its own test split) but NOT promoted;
the record says why and how to promote it by hand.

The budget: every comparison on the same test rows is one more look at them, and a
challenger that is no better passes each look with probability alpha. Attempt k on the same
test rows (identified by `row_lineage.fingerprint`) is tested at `alpha_k = alpha * 2**-k`
(alpha = 1 - deploy.confidence), so the chance that ANY of an unlimited sequence of
no-better challengers is promoted stays below alpha (sum of alpha_k < alpha). A new test
split (fresh labelled data: a new fingerprint) has a full budget again.

Pure: arrays and records in, records out (the registry file I/O is in stages/package.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from valuegate.business import ValueModel
from valuegate.config.schema import Config, Constraint, TooGoodConfig
from valuegate.gate import bootstrap_at_points, case_values_at_points
from valuegate.row_lineage import unseen

HONEST_METRICS = {"binary": "roc_auc", "regression": "r2"}


def money(value: float) -> str:
    """Thousands separators, no decimals; never "-0" (round gives an int)."""
    return f"{round(value):,d}"


def missed_metrics(constraints: list[Constraint], record: dict[str, Any]) -> list[str]:
    """Each constraint the record misses, with its value: `["roc_auc 0.655 < 0.7"]`."""
    missed = []
    for constraint in constraints:
        value = record.get(constraint.metric)
        if value is None or value != value:
            missed.append(f"{constraint.metric} not measured (needs {constraint})")
        elif not constraint.holds(float(value)):
            op = "<" if constraint.op == ">=" else ">"
            shown = f"{float(value):.3g}"
            if float(shown) == constraint.bound:  # 0.6999 is not "0.7 < 0.7"
                shown = f"{float(value):.6g}"
            missed.append(f"{constraint.metric} {shown} {op} {constraint.bound:g}")
    return missed


# --------------------------------------------------------------------------- too good


def too_good(
    task: str,
    test_record: dict[str, Any],
    bounds: TooGoodConfig,
    honest: dict[str, Any] | None,
) -> dict[str, Any]:
    """Is the test metric (ROC AUC, binary; R2, regression) too good to be true?

    `honest`: the assessment's `honest_estimate` ({"metric", "value", ...}: a cross-
    validated quick model on the features the models train on), or None. Returns a record:
    `metric`, `value`, `ceiling`, `honest_estimate`, `bound_over_honest`, `blocked` and,
    when blocked, `reason` naming the metric, its value and the bound it exceeds.
    """
    metric = HONEST_METRICS[task]
    raw = test_record.get(metric)
    value = float(raw) if isinstance(raw, int | float) and raw == raw else None
    ceiling = getattr(bounds, metric)
    record: dict[str, Any] = {
        "metric": metric,
        "value": value,
        "ceiling": ceiling,
        "honest_estimate": None,
        "bound_over_honest": None,
        "blocked": False,
    }
    honest_value = None
    if honest is not None and honest.get("metric") == metric:
        candidate = honest.get("value")
        if isinstance(candidate, int | float) and math.isfinite(candidate):
            honest_value = float(candidate)
    record["honest_estimate"] = honest_value
    if honest_value is not None and bounds.margin_over_honest is not None:
        record["bound_over_honest"] = honest_value + bounds.margin_over_honest
    if value is None:
        return record
    if ceiling is not None and value > ceiling:
        record["blocked"] = True
        record["reason"] = f"test {metric} {value:.3f} > {ceiling:g} (deploy.too_good.{metric})"
    elif record["bound_over_honest"] is not None and value > record["bound_over_honest"]:
        record["blocked"] = True
        record["reason"] = (
            f"test {metric} {value:.3f} > {record['bound_over_honest']:.3f} = the assessment's "
            f"honest estimate {honest_value:.3f} + deploy.too_good.margin_over_honest "
            f"{bounds.margin_over_honest:g}"
        )
    return record


# --------------------------------------------------------------------------- the budget


def budget_attempt(
    ledger: dict[str, Any], fingerprint: str, key: dict[str, Any], alpha: float, rows: int
) -> dict[str, Any]:
    """The level this comparison may spend of the test rows' budget.

    `ledger`: the registry's record of earlier attempts, {"test_rows": {fingerprint:
    {"rows": n, "attempts": [{...key, "alpha": a}, ...]}}}. `key` identifies the attempt
    (model, predictions_sha256, champion): the same challenger against the same champion
    on the same rows is the same look (a rerun), so it gets its earlier level back instead
    of spending again. Returns {"test_rows_fingerprint", "rows", "attempt" (k, from 1),
    "alpha" (alpha * 2**-k), "confidence" (1 - that), "spent" (after this attempt),
    "left", "budget" (alpha), "repeat"}.
    """
    attempts = ledger.get("test_rows", {}).get(fingerprint, {}).get("attempts", [])
    spent_before = float(sum(a["alpha"] for a in attempts))
    for i, earlier in enumerate(attempts, start=1):
        if all(earlier.get(k) == v for k, v in key.items()):
            level = float(earlier["alpha"])
            return {
                "test_rows_fingerprint": fingerprint,
                "rows": rows,
                "attempt": i,
                "alpha": level,
                "confidence": 1.0 - level,
                "spent": spent_before,
                "left": max(0.0, alpha - spent_before),
                "budget": alpha,
                "repeat": True,
            }
    k = len(attempts) + 1
    # Never more than is left (after a change of deploy.confidence the earlier attempts may
    # have spent on another scale).
    level = min(alpha * 2.0**-k, max(0.0, alpha - spent_before))
    return {
        "test_rows_fingerprint": fingerprint,
        "rows": rows,
        "attempt": k,
        "alpha": level,
        "confidence": 1.0 - level,
        "spent": spent_before + level,
        "left": max(0.0, alpha - spent_before - level),
        "budget": alpha,
        "repeat": False,
    }


def spend(
    ledger: dict[str, Any], attempt: dict[str, Any], key: dict[str, Any], passed: bool
) -> dict[str, Any]:
    """The ledger with `attempt` recorded (a copy; a repeated attempt changes nothing)."""
    if attempt["repeat"]:
        return ledger
    out = {**ledger, "test_rows": dict(ledger.get("test_rows", {}))}
    fingerprint = attempt["test_rows_fingerprint"]
    entry = dict(out["test_rows"].get(fingerprint, {"rows": attempt["rows"], "attempts": []}))
    entry["attempts"] = [
        *entry.get("attempts", []),
        {**key, "alpha": attempt["alpha"], "passed": bool(passed)},
    ]
    out["test_rows"][fingerprint] = entry
    out["schedule"] = "attempt k on the same test rows is tested at alpha * 2**-k"
    return out


# --------------------------------------------------------------------------- the comparison


def fresh_rows(
    test_as_champion: np.ndarray,
    champion_seen: dict[str, np.ndarray],
    test_as_new: np.ndarray,
    new_seen: dict[str, np.ndarray],
) -> tuple[np.ndarray, dict[str, int]]:
    """Which test rows neither model has seen: (bool (n,), counts for the record).

    `test_as_champion` / `test_as_new`: the test rows' hashes (shape (n,)) as each model's
    lineage identifies rows (by id or by content, over its columns); `*_seen`: each model's
    row sets ({"train": ..., "valid": ...}: fitted on (and its operating point and
    calibration chosen on, out of fold); selected on). Valid rows count as seen: a model
    picked for its value on them is optimistic there. The new model's own splits are disjoint from
    this test split by construction, but a row repeated in the data (or an id) may sit in
    both: such copies are not fresh either."""
    by_champion = {name: ~unseen(test_as_champion, rows) for name, rows in champion_seen.items()}
    by_new = {name: ~unseen(test_as_new, rows) for name, rows in new_seen.items()}
    seen = np.zeros(len(test_as_champion), dtype=bool)
    for mask in [*by_champion.values(), *by_new.values()]:
        seen |= mask
    counts = {
        "test_rows": len(seen),
        "fresh": int((~seen).sum()),
        **{f"champion_{name}": int(m.sum()) for name, m in by_champion.items()},
        **{f"new_model_{name}": int(m.sum()) for name, m in by_new.items()},
    }
    return ~seen, counts


def fewest_class_rows(task: str, y: np.ndarray, fresh: np.ndarray | None) -> float:
    """Binary tasks: the rows of the rarer class among the fresh rows (`y` (n,) of 0/1,
    `fresh` bool (n,)); regression or no fresh mask: infinity (no such condition)."""
    if task != "binary" or fresh is None:
        return math.inf
    positives = int(np.asarray(y)[fresh].sum())
    return min(positives, int(fresh.sum()) - positives)


@dataclass(frozen=True)
class ChampionEvidence:
    """What the comparison knows of the champion, on the n test rows.

    scores: (n,) the champion's scores through its bundle's scoring path (calibrated when
        the bundle is); point: its manifest threshold (binary) or offset (regression);
    fresh: bool (n,), test rows neither model has seen, or None when the champion records
        no lineage; lineage: counts and notes for the record (JSON-ready)."""

    name: str
    scores: np.ndarray
    point: float
    fresh: np.ndarray | None
    lineage: dict[str, Any]


def fixed_point_uplifts(
    model: ValueModel,
    y: np.ndarray,
    new_scores: np.ndarray,
    new_point: float,
    champion_scores: np.ndarray,
    champion_point: float,
    amount: np.ndarray | None,
    n_resamples: int,
    seed: int,
) -> tuple[float, np.ndarray]:
    """(observed uplift, bootstrap uplifts (n_resamples,)), currency per period.

    Both models decide at their FIXED operating points (nothing is re-chosen on these rows):
    each row's value at its model's point (`gate.case_values_at_points`, business.py's
    `case_values_at`), then the gate's paired bootstrap of value per period at fixed points
    (`gate.bootstrap_at_points`: the same resampled rows for both). Inputs: shape (n,)."""
    values = case_values_at_points(
        model,
        y,
        {"new": new_scores, "champion": champion_scores},
        {"new": new_point, "champion": champion_point},
        amount,
    )
    boot = bootstrap_at_points(values, model.volume, n_resamples, seed)
    observed = float((values["new"].mean() - values["champion"].mean()) * model.volume)
    return observed, boot["new"] - boot["champion"]


def compare(
    observed: float,
    uplifts: np.ndarray,
    alpha: float,
    min_uplift: float,
) -> dict[str, Any]:
    """The verdict at one-sided level `alpha`.

    The bound is the normal bootstrap interval (observed -/+ z * the bootstrap's standard
    deviation): the uplift at fixed points is a mean over rows, close to normal, and a
    percentile would need ~20/alpha resamples at the small levels late attempts get
    (alpha * 2**-k). Passes when the lower bound is at least `min_uplift` and above zero.

    Skewed money (a rare large loss, e.g. a constant-decision champion against a scored
    challenger) makes the studentised uplift skewed the other way: the normal bound then
    promoted 7.4% of no-better challengers at 150 rows where attempt 1 allows 2.5%
    (tests/test_promotion_soundness.py). The side with the heavy tail is widened by the
    Cornish-Fisher term of a studentised mean, z -> z + |g| (2 z^2 + 1) / 6 with g the
    bootstrap uplifts' skewness (the mean's skewness); never narrowed (2.4% there).
    """
    z = NormalDist().inv_cdf(1.0 - alpha) if alpha > 0 else math.inf
    sd = float(np.std(uplifts, ddof=1)) if len(uplifts) > 1 else 0.0
    skew = 0.0
    if sd > 0 and alpha > 0:
        centred = np.asarray(uplifts, dtype=float) - float(np.mean(uplifts))
        skew = float(np.mean(centred**3) / np.mean(centred**2) ** 1.5)
    widen = (2.0 * z * z + 1.0) / 6.0 if alpha > 0 else 0.0
    lower = observed - (z + max(0.0, -skew) * widen) * sd if sd > 0 else observed
    upper = observed + (z + max(0.0, skew) * widen) * sd if sd > 0 else observed
    if alpha <= 0:
        lower, upper = -math.inf, math.inf
    return {
        "observed_uplift": observed,
        "ci_lower": lower,
        "ci_upper": upper,
        "bootstrap_sd": sd,
        "confidence": 1.0 - alpha,
        "n_resamples": len(uplifts),
        "prob_positive": float(np.mean(uplifts > 0)),
        "min_uplift": min_uplift,
        "passed": bool(lower >= min_uplift and lower > 0.0),
    }


def _interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """Two-sided percentile interval of bootstrap samples at `confidence`."""
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(samples, [tail, 1.0 - tail])
    return float(low), float(high)


def decision_churn(
    model: ValueModel,
    y: np.ndarray,
    new_scores: np.ndarray,
    new_point: float,
    champion_scores: np.ndarray,
    champion_point: float,
    amount: np.ndarray | None,
    n_resamples: int,
    seed: int,
    confidence: float,
) -> dict[str, Any]:
    """Which decisions flip between the champion and the new model, and what the flips
    are worth, on the comparison rows (inputs shape (n,), both models at their fixed
    points).

    `flipped_share`: the share of cases decided differently, split by direction
    (`new_acts`: the new model acts where the champion did not; `new_holds`: the reverse);
    each direction's `value_per_period`: the new model's minus the champion's case values
    on those rows, summed and scaled to currency per period (over all n rows, so the two
    directions add up to the whole uplift: where both decide alike they are worth the
    same), with a two-sided paired-bootstrap interval at `confidence`. Regression (an
    offset, no act / not-act decision): `applies` False."""
    if model.point_kind != "threshold":
        return {"applies": False, "note": "regression: every case gets a number, none flips"}
    new = np.asarray(model.decide(new_scores, new_point)["decision"], dtype=bool)
    old = np.asarray(model.decide(champion_scores, champion_point)["decision"], dtype=bool)
    values = case_values_at_points(
        model,
        y,
        {"new": new_scores, "champion": champion_scores},
        {"new": new_point, "champion": champion_point},
        amount,
    )
    gain = values["new"] - values["champion"]
    masks = {"new_acts": new & ~old, "new_holds": ~new & old}
    n = len(y)
    boot = bootstrap_at_points(
        {name: np.where(mask, gain, 0.0) for name, mask in masks.items()},
        model.volume,
        n_resamples,
        seed,
    )
    flipped = masks["new_acts"] | masks["new_holds"]
    record: dict[str, Any] = {
        "applies": True,
        "rows": n,
        "flipped": int(flipped.sum()),
        "flipped_share": float(flipped.mean()) if n else 0.0,
        "confidence": confidence,
    }
    for name, mask in masks.items():
        low, high = _interval(boot[name], confidence)
        record[name] = {
            "rows": int(mask.sum()),
            "share": float(mask.mean()) if n else 0.0,
            "value_per_period": float(gain[mask].sum() / n * model.volume) if n else 0.0,
            "ci_lower": low,
            "ci_upper": high,
        }
    low, high = _interval(boot["new_acts"] + boot["new_holds"], confidence)
    record["value_per_period"] = (
        record["new_acts"]["value_per_period"] + record["new_holds"]["value_per_period"]
    )
    record["ci_lower"], record["ci_upper"] = low, high
    return record


def seed_stability(
    model: ValueModel,
    y: np.ndarray,
    amount: np.ndarray | None,
    shipped: tuple[np.ndarray, float],
    refits: list[dict[str, Any]],
    observed_uplift: float,
) -> dict[str, Any]:
    """How much the new model's value moves with the seed alone, on the comparison rows.

    `shipped`: (scores (n,), point) of the model as it ships; `refits`: the same config
    refitted with other seeds, each {"seed", "scores" (n,), "point" (its own, out of
    fold)}. Returns each seed's value per period, the `spread` (max - min over the shipped
    model and the refits, currency per period) and `noise`: the observed uplift over the
    champion is not larger than that spread."""
    values = {"shipped": model.value_at_point(y, shipped[0], shipped[1], amount)}
    for refit in refits:
        values[f"seed {refit['seed']}"] = model.value_at_point(
            y, refit["scores"], refit["point"], amount
        )
    spread = float(max(values.values()) - min(values.values()))
    return {
        "seeds": [refit["seed"] for refit in refits],
        "value_per_period": {k: float(v) for k, v in values.items()},
        "spread": spread,
        "observed_uplift": observed_uplift,
        "noise": bool(observed_uplift <= spread),
    }


def deploy_decision(
    config: Config,
    model: ValueModel,
    final: str,
    test_record: dict[str, Any],
    y_test: np.ndarray,
    new_scores: np.ndarray,
    amount: np.ndarray | None,
    new_point: float,
    champion: ChampionEvidence | None = None,
    attempt: dict[str, Any] | None = None,
    honest: dict[str, Any] | None = None,
    seed_refits: Callable[[], list[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """The deploy decision record.

    `test_record`: the final model's test figures at its shipped operating point
    (reports/evaluation.json `final.test`); `y_test`, `new_scores`, `amount`: shape (n,)
    over the test split; `new_point`: the threshold / offset the new model ships with;
    `champion`: None when the registry has none (or none comparable); `attempt`: from
    `budget_attempt` (needed with a champion); `honest`: the assessment's honest estimate;
    `seed_refits`: called only when the champion is compared, returns the final model
    refitted with other seeds ({"seed", "scores" (n,) over the test split, "point"}) for
    `seed_stability` (None or deploy.seed_stability.seeds 0: not measured).

    With a comparison the record also holds `churn` (`decision_churn`) and, when measured,
    `seed_stability`: an uplift within the seeds' spread is noise and is not promoted.

    Keys: `packaged` (a bundle is written), `promote` (it may become the champion),
    `refused` (the gate said no: `deploy.strict` fails the run), `reason` (one sentence,
    with the numbers), and the figures behind it.
    """
    deploy = config.deploy
    objective = config.objective
    unit = f"{objective.currency}/{objective.period}"
    target = objective.good_enough.value_per_period
    value = float(test_record["value_per_period"])
    value_ok = target is None or value >= target
    missed = missed_metrics(config.good_enough_metrics, test_record)
    record: dict[str, Any] = {
        "model": final,
        "test_value_per_period": value,
        "good_enough_value_per_period": target,
        "good_enough_metrics": list(objective.good_enough.metrics),
        "good_enough_met": bool(value_ok and not missed),
        "champion": None if champion is None else champion.name,
    }

    def refuse(reason: str) -> dict[str, Any]:
        record.update(packaged=False, promote=False, refused=True, reason=reason)
        return record

    if not value_ok:
        return refuse(
            f"{final} is worth {money(value)} {unit} on the test split, below the "
            f"{money(target)} {unit} that objective.good_enough requires: not packaged"
        )
    if missed:
        return refuse(
            f"{final} misses objective.good_enough.metrics on the test split: "
            f"{'; '.join(missed)}: not packaged"
        )
    guard = too_good(config.data.task, test_record, deploy.too_good, honest)
    record["too_good"] = guard
    if guard["blocked"]:
        return refuse(
            f"{final} is too good to be true: {guard['reason']}; a leak is likelier than a "
            "model this good (see reports/assessment.html): not packaged"
        )
    if champion is None:
        record.update(packaged=True, promote=True, refused=False)
        record["reason"] = (
            f"{final} is worth {money(value)} {unit} on test, meets objective.good_enough "
            "and the registry has no champion yet: packaged"
        )
        return record

    record["fresh_rows"] = dict(champion.lineage)
    fresh = champion.fresh
    n_fresh = 0 if fresh is None else int(fresh.sum())
    fewest = fewest_class_rows(config.data.task, y_test, fresh)
    if fresh is None or n_fresh < deploy.min_fresh_rows or fewest < deploy.min_fresh_per_class:
        if fresh is None:
            why = champion.lineage.get("note", "it records no rows")
        elif n_fresh < deploy.min_fresh_rows:
            why = (
                f"only {n_fresh:,} of the {len(y_test):,} test rows were seen by neither model "
                f"(deploy.min_fresh_rows: {deploy.min_fresh_rows:,})"
            )
        else:
            why = (
                f"the {n_fresh:,} test rows seen by neither model hold only {fewest} of one "
                f"class (deploy.min_fresh_per_class: {deploy.min_fresh_per_class})"
            )
        record.update(packaged=True, promote=False, refused=True)
        record["reason"] = (
            f"{final} cannot be compared fairly with champion {champion.name}: {why}. "
            f"Packaged but not promoted; `valuegate models promote <version>` makes it the "
            "champion if you accept that (or label fresh data for a new test split)"
        )
        return record

    assert attempt is not None, "a comparison needs its budget attempt"
    if attempt["alpha"] <= 0:
        # Earlier attempts spent the whole budget (e.g. deploy.confidence was raised since):
        # no comparison on these rows can be trusted at any level.
        record["budget"] = attempt
        return refuse(
            f"the test rows' budget is spent ({attempt['spent']:.3g} of "
            f"{attempt['budget']:.3g} used by {attempt['attempt'] - 1} earlier attempts): "
            f"{final} is not compared with champion {champion.name} on them; label fresh data "
            "for a new test split: not packaged"
        )
    observed, uplifts = fixed_point_uplifts(
        model,
        y_test[fresh],
        new_scores[fresh],
        new_point,
        champion.scores[fresh],
        champion.point,
        None if amount is None else amount[fresh],
        deploy.n_resamples,
        config.seed,
    )
    verdict = compare(observed, uplifts, attempt["alpha"], deploy.min_uplift)
    verdict.update(
        champion=champion.name,
        rows=n_fresh,
        new_point=new_point,
        champion_point=champion.point,
    )
    record["versus_champion"] = verdict
    record["budget"] = attempt
    passed = verdict["passed"]
    y_fresh = y_test[fresh]
    amount_fresh = None if amount is None else amount[fresh]
    record["churn"] = decision_churn(
        model,
        y_fresh,
        new_scores[fresh],
        new_point,
        champion.scores[fresh],
        champion.point,
        amount_fresh,
        deploy.n_resamples,
        config.seed,
        deploy.confidence,
    )
    stability = None
    if seed_refits is not None and deploy.seed_stability.seeds > 0:
        refits = [{**r, "scores": np.asarray(r["scores"])[fresh]} for r in seed_refits()]
        stability = seed_stability(
            model, y_fresh, amount_fresh, (new_scores[fresh], new_point), refits, observed
        )
        record["seed_stability"] = stability
    noise = passed and stability is not None and stability["noise"]
    if noise:
        passed = False
    record.update(packaged=passed, promote=passed, refused=not passed)
    bar = f"the {money(deploy.min_uplift)} {unit} needed" if deploy.min_uplift > 0 else "zero"
    level = f"{verdict['confidence']:.4g}"
    budget = (
        f"attempt {attempt['attempt']} on these test rows, {attempt['left']:.3g} of the "
        f"{attempt['budget']:.3g} budget left"
    )
    churn = record["churn"]
    flips = (
        f"; decisions flip on {churn['flipped_share']:.1%} of the cases"
        if churn.get("applies")
        else ""
    )
    if stability is not None:
        flips += (
            f"; seed spread {money(stability['spread'])} {unit} over "
            f"{len(stability['seeds']) + 1} seeds"
        )
    if noise:
        assert stability is not None
        record["reason"] = (
            f"{final} beats champion {champion.name} by {money(observed)} {unit} on the "
            f"{n_fresh} test rows neither model has seen ({level} lower bound "
            f"{money(verdict['ci_lower'])} >= {bar}; {budget}), but that uplift is within "
            f"the {money(stability['spread'])} {unit} the same config moves by across "
            f"{len(stability['seeds']) + 1} seeds (deploy.seed_stability): noise, not "
            "packaged"
        )
    elif passed:
        record["reason"] = (
            f"{final} beats champion {champion.name} by {money(observed)} {unit} on the "
            f"{n_fresh} test rows neither model has seen, at their shipped operating points "
            f"({level} lower bound {money(verdict['ci_lower'])} >= {bar}; {budget}{flips}): "
            "packaged"
        )
    else:
        record["reason"] = (
            f"{final} does not beat champion {champion.name} by enough: uplift "
            f"{money(observed)} {unit} on the {n_fresh} test rows neither model has seen, at "
            f"their shipped operating points; {level} lower bound "
            f"{money(verdict['ci_lower'])} is not above {bar} ({budget}{flips}): not packaged"
        )
    return record
