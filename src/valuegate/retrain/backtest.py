"""The backtest: retraining policies replayed period by period, in money (docs/retrain.md,
"Backtest").

For each policy (`retrain.backtest.policies`), over the labelled production periods in
time order: the serving model scores the period and monitoring values it (monitor/: the
value realised from the labels, the estimate without them, the value at risk, drift);
the policy decides from that record (retrain/policy.py); a retrain runs the whole pipeline
(`pipeline.run` with `retrain.window.until` = the period just ended: what was known then)
and the deploy gate (`deploy.deploy_decision`: the challenger against the serving model on
the rows of that period neither trained on, paired bootstrap, the gate's rule) promotes
the challenger only when it passes; the promoted model serves the next period. No
decision follows the last period: a retrain then would earn only after the replay.

Money: a period's value is the serving model's realised value per objective.period on its
labelled rows (business.py's `case_values_at`, at its shipped operating point) times
`period_length` (objective.periods in one replayed period: 12 for yearly periods valued
per month); a policy's net = the sum over periods - its retrains x (retrain.cost.compute +
retrain.cost.review). Intervals: a bootstrap over each period's rows (gate's
`bootstrap_at_points`), the same resampled rows for every model that serves the period,
so differences between policies are paired.

Trainings are shared: a policy that retrains after period P trains the same challenger as
any other that does (the same config and window give the same model), so the backtest
costs the distinct trainings (at most one per period), not policies x periods.

Layers: `tally` and `verdict` are pure (arrays and records in, records out); `replay`
takes the periods' rows and a `train(until) -> Served` function, `pipeline_trainer` is
that function for the real pipeline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from valuegate.config.schema import Config
from valuegate.errors import DataError
from valuegate.retrain.window import plain_period as _plain

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- served models


@dataclass
class Served:
    """A model that can serve: what scoring, monitoring and the deploy gate need of it.

    key: names the training ("until 2016"); name: the final model's name; score: checked
    rows (`bundle.check_chunk`'s clean frame) -> calibrated scores (n,); point: its
    shipped operating point; fields: its input fields (as a bundle records them);
    profile: monitoring's reference profile (monitor/profile.py); lineage_columns / seen:
    how its rows are identified and the row hashes it trained and was selected on
    ({"train", "valid"}); test, test_scores (n,), test_record: its test split (the
    newest period's held-out rows), its scores there and its test figures at `point`;
    honest: the assessment's honest estimate (the too-good guard); about: JSON-ready facts
    for the report (window, final model, why); refits: deploy.seed_stability's refits of
    it with other seeds (pipeline/package.py `seed_refits`, run once, on first use)."""

    key: str
    until: Any
    name: str
    score: Callable[[pd.DataFrame], np.ndarray]
    point: float
    fields: list[dict[str, Any]]
    profile: dict[str, Any]
    lineage_columns: list[str]
    seen: dict[str, np.ndarray]
    test: pd.DataFrame
    test_scores: np.ndarray
    test_record: dict[str, Any]
    honest: dict[str, Any] | None = None
    about: dict[str, Any] = field(default_factory=dict)
    refits: Callable[[], list[dict[str, Any]]] | None = None


def served_from_result(result: Any, key: str, until: Any) -> Served:
    """A `Served` from a finished `pipeline.run` (through evaluate): its final model."""
    from valuegate.business import value_model

    config = result.config
    splits, schema = result.data
    evaluation = result.evaluation
    final = evaluation["final"]["model"]
    point = float(evaluation["final"]["valid"][value_model(config).point_kind])
    honest = result.assessed.assessment.honest_estimate if result.assessed else None
    return served_from_fitted(
        config, splits, schema, result.models[final], point, evaluation["final"]["test"],
        key, until, honest, evaluation.get("final_reason"),
    )  # fmt: skip


def served_from_fitted(
    config: Config,
    splits: dict[str, pd.DataFrame],
    schema: Any,
    fitted: Any,
    point: float,
    test_record: dict[str, Any],
    key: str,
    until: Any,
    honest: dict[str, Any] | None = None,
    why: str | None = None,
) -> Served:
    """A `Served` from one fitted model (`training.FittedModel`, scored on valid and test)
    on the splits it was fitted on, shipped at `point`, with its test figures."""
    from valuegate.bundle.validation import input_schema, probe_pipeline
    from valuegate.business import value_model
    from valuegate.calibration import apply_calibration
    from valuegate.models import predict_scores
    from valuegate.monitor.profile import profile_from_splits
    from valuegate.pipeline.common import split_scores
    from valuegate.pipeline.package import final_model, seed_refits
    from valuegate.row_lineage import lineage_columns, row_hashes, row_set

    model = value_model(config)
    # The fields a bundle of this model would record (nullable / unseen as the fitted
    # pipeline accepts them), so monitoring checks rows as the deployed model would.
    fields = probe_pipeline(
        fitted.pipeline, input_schema(schema, splits["train"]), splits["train"], schema.task
    )
    scores = {s: split_scores(fitted, s) for s in ("valid", "test")}
    profile = profile_from_splits(
        fields, model, point, splits, scores, config.data, schema.amount_column
    )
    categorical = set(schema.categorical)

    def score(clean: pd.DataFrame) -> np.ndarray:
        # the bundle's scoring path without a compiled encoder (bundle/store.py)
        features = clean[schema.features].copy()
        for name in categorical:
            features[name] = features[name].astype(object)
        raw = predict_scores(fitted.pipeline, features, schema.task)
        return apply_calibration(fitted.info.get("calibration"), raw)

    columns = lineage_columns(splits["train"], schema.id_column)
    seen = {s: row_set(row_hashes(splits[s], columns)) for s in ("train", "valid")}
    refit = seed_refits(config, schema, splits, final_model(fitted, source="in memory"))
    refits: list[list[dict[str, Any]]] = []

    def refits_once() -> list[dict[str, Any]]:
        # a challenger may meet several serving models: its seeds are fitted once
        if not refits:
            refits.append(refit())
        return refits[0]

    return Served(
        key=key,
        until=until,
        name=fitted.name,
        score=score,
        point=point,
        fields=fields,
        profile=profile,
        lineage_columns=columns,
        seen=seen,
        test=splits["test"],
        test_scores=scores["test"],
        test_record=test_record,
        honest=honest,
        about={
            "until": _plain(until),
            "final_model": fitted.name,
            "final_reason": why,
            "window": dict(getattr(schema, "window", {}) or {}),
            "rows": dict(schema.rows),
            "test_value_per_period": test_record["value_per_period"],
        },
        refits=refits_once if config.deploy.seed_stability.seeds > 0 else None,
    )


def with_window(config: Config, until: Any) -> Config:
    """`config` with retrain.window.until = `until` (validated like any config)."""
    from valuegate.config.loading import validate

    raw = config.model_dump()
    raw["retrain"]["window"]["until"] = _plain(until)
    return validate(raw, source=f"the backtest's run with retrain.window.until={until!r}")


@dataclass
class Trainer:
    """`train(until)` -> the model the pipeline gives on what was known at the end of
    `until`, or the reason it gives none (the assessment blocked the window's data: such a
    challenger is never promoted). Memoised: one training per window, whichever policy
    asks; `runs` counts the trainings done."""

    fn: Callable[[Any], Served]
    done: dict[str, Served | str] = field(default_factory=dict)
    runs: int = 0

    def __call__(self, until: Any) -> Served | str:
        key = f"until {_plain(until)}"
        if key not in self.done:
            self.runs += 1
            log.info("backtest: training on what was known at the end of %s", _plain(until))
            try:
                self.done[key] = self.fn(until)
            except _RefusedError as exc:
                self.done[key] = str(exc)
        return self.done[key]


class _RefusedError(Exception):
    """A training that yields no model to promote (the sentence says why)."""


def pipeline_trainer(
    config: Config, raw: pd.DataFrame, source_sha256: str, keep: dict[str, Any] | None = None
) -> Trainer:
    """The real pipeline (`pipeline.run`, prepare through evaluate, tuning included) on
    retrain.window.until = the period; no second training path. `keep`: a dict that gets
    each run's `PipelineResult` by period (the bench reads what was fitted)."""
    from valuegate.pipeline import run

    def train(until: Any) -> Served:
        windowed = with_window(config, until)
        result = run(windowed, raw, source_sha256, through="evaluate", raise_blocked=False)
        if keep is not None:
            keep[str(_plain(until))] = result
        if result.evaluation is None:  # blocked data, or gate.strict and no candidate passed
            first = str(result.error).splitlines()[0] if result.error else ""
            raise _RefusedError(
                f"the run on the data up to {until} stopped ({result.stopped}): {first}"
            )
        return served_from_result(result, f"until {_plain(until)}", until)

    return Trainer(train)


# --------------------------------------------------------------------------- periods


@dataclass
class Period:
    """One replayed period: its label, its rows (every column) and labels y (n,) (1/0 or
    the target; NaN where a label is missing)."""

    label: Any
    frame: pd.DataFrame
    y: np.ndarray


def split_periods(config: Config, raw: pd.DataFrame) -> tuple[Any, list[Period]]:
    """(the period before the first replayed one: the first model learns up to it, the
    replayed periods in time order). DataError names data.time_column or
    retrain.backtest.periods when the data cannot be replayed."""
    from valuegate.data import validate_frame
    from valuegate.monitor.windows import label_vector
    from valuegate.retrain.window import periods

    column = config.data.time_column
    if column is None:
        raise DataError(
            "data.time_column is null: a backtest replays the periods of a time column; name "
            "it in data.time_column (conf/data/), e.g. data.time_column=year."
        )
    validate_frame(raw, config.data)
    labels, index = periods(raw[column], column)
    wanted = config.retrain.backtest.periods
    shown = [_plain(v) for v in labels]
    if wanted is None:
        chosen = list(range(1, len(labels)))
    else:
        chosen = []
        for value in wanted:
            match = [i for i, label in enumerate(shown) if str(label) == str(value)]
            if not match:
                raise DataError(
                    f"retrain.backtest.periods: {value!r} is not a period of data.time_column "
                    f"{column!r}. Allowed: {', '.join(map(str, shown[:30]))}."
                )
            chosen.append(match[0])
        if chosen != sorted(chosen) or len(set(chosen)) != len(chosen):
            raise DataError(
                f"retrain.backtest.periods: {list(wanted)} are not in time order; give them "
                f"as data.time_column {column!r} orders them: {', '.join(map(str, shown))}."
            )
    if not chosen or chosen[0] == 0:
        raise DataError(
            f"retrain.backtest.periods: the first model learns from the periods before the "
            f"first replayed one, and data.time_column {column!r} holds none before "
            f"{shown[chosen[0]] if chosen else shown[0]} (periods: "
            f"{', '.join(map(str, shown[:30]))}): replay later periods."
        )
    positive = config.data.positive_label
    out = []
    for i in chosen:
        frame = raw.loc[index == i].reset_index(drop=True)
        y = label_vector(frame[config.data.target], config.data.task, positive)
        out.append(Period(shown[i], frame, y))
    return shown[chosen[0] - 1], out


# --------------------------------------------------------------------------- one step


@dataclass
class Valued:
    """A served model on one period: monitoring's window record (with `alerts`), and the
    per-row value (currency, at its point) of the rows it could score and that carry a
    label, by position in the period (`rows`)."""

    record: dict[str, Any]
    rows: np.ndarray
    values: np.ndarray


def value_period(config: Config, served: Served, period: Period) -> Valued:
    """Monitor `served` on `period` (monitor.run.window_record: drift, realised, estimated,
    value at risk; window_alerts) and its per-row value for the tally."""
    from valuegate.bundle import check_chunk
    from valuegate.business import value_model
    from valuegate.monitor.run import window_alerts, window_record
    from valuegate.monitor.windows import Window

    model = value_model(config)
    frame = period.frame
    checked = check_chunk(frame, served.fields)
    good = ~checked.bad
    if not good.any():
        raise DataError(
            f"period {period.label}: the model {served.key} refuses every one of its "
            f"{len(frame)} rows ({'; '.join(why for _, why in checked.errors[:3])})."
        )
    scores = np.full(len(frame), np.nan)
    scores[good] = served.score(checked.clean.loc[good])
    settings = config.monitor
    amount_column = config.data.amount_column
    knobs = {
        "alpha": settings.alerts.alpha,
        "min_distance": settings.alerts.min_distance,
        "confidence": settings.confidence,
        "amount_column": amount_column,
        "new_category_share": settings.alerts.new_category_share,
    }
    window = Window(str(period.label), np.arange(len(frame)), period.label, period.label)
    record = window_record(
        window, frame, scores, period.y, served.fields, served.profile, model, None, knobs
    )
    unit = (config.objective.currency, config.objective.period)
    record["alerts"] = window_alerts(record, settings.alerts.value_drop, *unit)
    rows = np.flatnonzero(good & ~np.isnan(period.y))
    amount = frame[amount_column].to_numpy(float)[rows] if amount_column else None
    values = model.case_values_at(period.y[rows], scores[rows], served.point, amount)
    return Valued(record, rows, np.asarray(values, dtype=float))


def deploy_gate(config: Config, challenger: Served, champion: Served) -> dict[str, Any]:
    """The deploy gate (`deploy.deploy_decision`) for `challenger` against the serving
    `champion`, on the challenger's test rows (the newest period's held-out rows) that
    neither trained on (row lineage), both at their shipped points. Each backtest world
    looks at these rows once: the first attempt of the test rows' budget. With
    deploy.seed_stability.seeds, an uplift within the challenger's seed spread is noise
    and is not promoted (the gate's own rule)."""
    from valuegate.bundle import check_chunk
    from valuegate.business import value_model
    from valuegate.data import target_vector
    from valuegate.deploy import ChampionEvidence, budget_attempt, deploy_decision, fresh_rows
    from valuegate.row_lineage import fingerprint, row_hashes

    model = value_model(config)
    test = challenger.test
    y_test = target_vector(test, config.data)
    amount_column = config.data.amount_column
    amount = test[amount_column].to_numpy(float) if amount_column else None
    checked = check_chunk(test, champion.fields)
    if checked.bad.any():
        return {
            "promote": False,
            "refused": True,
            "reason": f"the serving model {champion.key} refuses test rows of "
            f"{challenger.key} ({checked.errors[:2]}): not promoted",
        }
    champion_scores = champion.score(checked.clean)
    own = row_hashes(test, challenger.lineage_columns)
    fresh, counts = fresh_rows(
        row_hashes(test, champion.lineage_columns), champion.seen, own, challenger.seen
    )
    evidence = ChampionEvidence(champion.key, champion_scores, champion.point, fresh, counts)
    key = {"model": challenger.key, "champion": champion.key}
    attempt = budget_attempt({}, fingerprint(own), key, 1.0 - config.deploy.confidence, len(test))
    record = deploy_decision(
        config, model, challenger.name, challenger.test_record, y_test, challenger.test_scores,
        amount, challenger.point, champion=evidence, attempt=attempt, honest=challenger.honest,
        seed_refits=challenger.refits,
    )  # fmt: skip
    return record


# --------------------------------------------------------------------------- the replay


def replay(
    config: Config,
    first_until: Any,
    periods: list[Period],
    train: Trainer,
    bar: Any = None,
) -> dict[str, Any]:
    """Every policy over `periods` (module docstring); returns the backtest record.

    `first_until`: the period the first model learns up to; `train`: a `Trainer`; `bar`:
    a progress bar (`update()` per policy and period) or None."""
    from valuegate.retrain.policy import decide

    settings = config.retrain.backtest
    objective = config.objective
    unit = f"{objective.currency}/{objective.period}"
    first = train(first_until)
    if isinstance(first, str):
        raise DataError(f"the first model (data up to {first_until}) cannot serve: {first}")
    served_by: dict[str, Served] = {first.key: first}
    valued: dict[tuple[str, int], Valued] = {}
    gates: dict[tuple[str, str], dict[str, Any]] = {}
    policies: dict[str, dict[str, Any]] = {}
    paths: dict[str, list[str]] = {}
    for name, policy in settings.policies.items():
        serving = first
        steps, path, retrains, promotions = [], [], 0, 0
        for i, period in enumerate(periods):
            cell = (serving.key, i)
            if cell not in valued:
                valued[cell] = value_period(config, serving, period)
            record = valued[cell].record
            path.append(serving.key)
            step: dict[str, Any] = {"period": period.label, "served_by": serving.key}
            step["monitor"] = _monitor_summary(record)
            if i + 1 < len(periods):
                decision = decide(policy, i, record, unit)
                step["decision"] = {"retrain": decision.retrain, "why": decision.why}
                if decision.retrain:
                    retrains += 1
                    challenger = train(period.label)
                    if isinstance(challenger, str):
                        step["deploy"] = {"promote": False, "reason": challenger}
                    else:
                        served_by[challenger.key] = challenger
                        pair = (challenger.key, serving.key)
                        if pair not in gates:
                            gates[pair] = deploy_gate(config, challenger, serving)
                        gate = gates[pair]
                        step["challenger"] = challenger.key
                        step["deploy"] = _gate_summary(gate)
                        if gate.get("promote"):
                            promotions += 1
                            serving = challenger
            else:
                step["decision"] = None  # the replay ends: nothing follows to earn from
            steps.append(step)
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"{name} {period.label}")
        policies[name] = {
            "trigger": policy.model_dump(exclude_none=True),
            "periods": steps,
            "retrains": retrains,
            "promotions": promotions,
        }
        paths[name] = path
    cost = config.retrain.cost.compute + config.retrain.cost.review
    values = {
        (i, key): (v.rows, v.values) for (key, i), v in valued.items()
    }  # (period index, model) -> rows, per-row value
    numbers = tally(
        len(periods),
        values,
        paths,
        {n: p["retrains"] for n, p in policies.items()},
        cost,
        settings.period_length,
        objective.volume,
        settings.n_resamples,
        settings.confidence,
        config.seed,
    )
    for name, entry in policies.items():
        figures = numbers["policies"][name]
        for step, per in zip(entry["periods"], figures.pop("per_period"), strict=True):
            step["value"] = per
        entry.update(figures)
    record = {
        "data": config.data.name,
        "time_column": config.data.time_column,
        "currency": objective.currency,
        "period": objective.period,
        "period_length": settings.period_length,
        "first_model_until": _plain(first_until),
        "periods": [p.label for p in periods],
        "rows": {str(p.label): len(p.frame) for p in periods},
        "cost_per_retrain": cost,
        "cost": config.retrain.cost.model_dump(),
        "confidence": settings.confidence,
        "n_resamples": settings.n_resamples,
        "trainings": {k: s.about for k, s in sorted(served_by.items())},
        "trainings_refused": {k: v for k, v in train.done.items() if isinstance(v, str)},
        "distinct_trainings": train.runs,
        "policies": policies,
        "winner": numbers["winner"],
        "same_as_winner": numbers["same_as_winner"],
        "runner_up": numbers["runner_up"],
    }
    record["verdict"] = verdict(record)
    return record


def _monitor_summary(record: dict[str, Any]) -> dict[str, Any]:
    """What the backtest record keeps of monitoring's window record."""
    value = record["value"]

    def band(entry: dict[str, Any] | None) -> dict[str, Any] | None:
        if entry is None:
            return None
        return {k: entry[k] for k in ("value_per_period", "low", "high") if k in entry}

    return {
        "rows": record["rows"],
        "realised": band(value["realised"]),
        "estimated": band(value["estimated"]),
        "at_risk": band(value["at_risk"]),
        "drifted": list(record["drift"]["drifted"]),
        "alerts": [a["kind"] for a in record.get("alerts", [])],
        "rows_refused": record["schema"]["rows_refused"],
    }


def _gate_summary(gate: dict[str, Any]) -> dict[str, Any]:
    out = {"promote": bool(gate.get("promote")), "reason": gate.get("reason")}
    versus = gate.get("versus_champion")
    if versus:
        out["uplift"] = {
            k: versus[k] for k in ("observed_uplift", "ci_lower", "ci_upper", "confidence", "rows")
        }
    churn = gate.get("churn")
    if churn and churn.get("applies"):
        out["churn"] = {k: churn[k] for k in ("flipped_share", "value_per_period")}
    stability = gate.get("seed_stability")
    if stability:
        out["seed_spread"] = {k: stability[k] for k in ("spread", "noise")}
    return out


# --------------------------------------------------------------------------- the tally


def tally(
    n_periods: int,
    values: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]],
    paths: dict[str, list[str]],
    retrains: dict[str, int],
    cost_per_retrain: float,
    period_length: float,
    volume: float,
    n_resamples: int,
    confidence: float,
    seed: int,
) -> dict[str, Any]:
    """Each policy's money with intervals. Pure.

    values[(period index, model key)]: (positions of the rows valued (m,), each row's value
    in currency (m,)) for every model that serves that period; paths[policy]: the model
    serving each period (len n_periods); retrains[policy]: its retrain count. A period's
    value per objective.period is the mean row value x `volume`; its money is that x
    `period_length`. Intervals (two-sided, `confidence`) are percentiles of a bootstrap
    over each period's rows (`gate.bootstrap_at_points`: the same resampled rows for every
    model of a period, a seed per period), so two policies' difference is paired wherever
    they share rows; a policy's net = value - retrains x cost_per_retrain (a constant).

    Returns {"policies": {name: value, value_low/high, cost, net, net_low/high, per_period
    [{value_per_period, low, high, earned}], versus_winner {difference, low, high}},
    "winner", "runner_up"}."""
    from valuegate.gate import bootstrap_at_points

    tail = (1.0 - confidence) / 2.0
    boot: dict[tuple[int, str], np.ndarray] = {}
    observed: dict[tuple[int, str], float] = {}
    for i in range(n_periods):
        keys = sorted({path[i] for path in paths.values()})
        # rows every model of the period valued (all of them unless one refused some)
        common = values[(i, keys[0])][0]
        for key in keys[1:]:
            common = np.intersect1d(common, values[(i, key)][0])
        if len(common) == 0:
            raise DataError(f"period {i + 1} of the replay holds no labelled rows to value")
        cases = {}
        for key in keys:
            rows, per_row = values[(i, key)]
            cases[key] = per_row[np.searchsorted(rows, common)]
            observed[(i, key)] = float(cases[key].mean() * volume)
        # one seed per period: independent periods, paired models within a period
        period_seed = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
        for key, draws in bootstrap_at_points(cases, volume, n_resamples, period_seed).items():
            boot[(i, key)] = draws
    nets: dict[str, np.ndarray] = {}
    out: dict[str, dict[str, Any]] = {}
    for name, path in paths.items():
        per_period = []
        total = np.zeros(n_resamples)
        value = 0.0
        for i, key in enumerate(path):
            draws = boot[(i, key)]
            total += draws * period_length
            value += observed[(i, key)] * period_length
            per_period.append(
                {
                    "value_per_period": observed[(i, key)],
                    "low": float(np.quantile(draws, tail)),
                    "high": float(np.quantile(draws, 1.0 - tail)),
                    "earned": observed[(i, key)] * period_length,
                }
            )
        cost = retrains[name] * cost_per_retrain
        nets[name] = total - cost
        out[name] = {
            "value": value,
            "value_low": float(np.quantile(total, tail)),
            "value_high": float(np.quantile(total, 1.0 - tail)),
            "cost": cost,
            "net": value - cost,
            "net_low": float(np.quantile(total, tail)) - cost,
            "net_high": float(np.quantile(total, 1.0 - tail)) - cost,
            "per_period": per_period,
        }
    # highest net wins; a tie goes to fewer retrains (cheaper to run), then to the name
    ranked = sorted(out, key=lambda n: (-round(out[n]["net"], 6), retrains[n], n))
    winner = ranked[0]
    for name in out:
        diff = nets[winner] - nets[name]
        out[name]["versus_winner"] = {
            "difference": out[winner]["net"] - out[name]["net"],
            "low": float(np.quantile(diff, tail)),
            "high": float(np.quantile(diff, 1.0 - tail)),
        }
    # Policies that served the same models and paid the same are the winner's twins, not
    # its rivals: the lead is measured over the best policy that did something else.
    same = [n for n in ranked[1:] if paths[n] == paths[winner] and retrains[n] == retrains[winner]]
    rivals = [n for n in ranked[1:] if n not in same]
    return {
        "policies": out,
        "winner": winner,
        "same_as_winner": same,
        "runner_up": rivals[0] if rivals else None,
    }


# --------------------------------------------------------------------------- in words


def verdict(record: dict[str, Any]) -> str:
    """The winner and why, in words, from the record's numbers (honest whatever wins)."""
    from valuegate.deploy import money

    currency = record["currency"]
    policies = record["policies"]
    winner = record["winner"]
    w = policies[winner]
    span = f"{record['periods'][0]}-{record['periods'][-1]}"
    conf = f"{record['confidence']:.0%}"
    text = (
        f"{winner} wins over {span}: net {money(w['net'])} {currency} "
        f"({money(w['value'])} {currency} earned, {w['retrains']} retrain(s) costing "
        f"{money(w['cost'])} {currency}, {w['promotions']} promoted)."
    )
    twins = record.get("same_as_winner", [])
    if twins:
        text += (
            f" {', '.join(twins)} did exactly the same (the same models served, the same "
            "retrains): a tie."
        )
    runner = record["runner_up"]
    if runner is None:
        return text + " No policy did anything else."
    r = policies[runner]
    lead = r["versus_winner"]
    text += (
        f" Its lead over {runner} is {money(lead['difference'])} {currency} ({conf} interval "
        f"{money(lead['low'])} {currency} to {money(lead['high'])} {currency})"
    )
    if lead["low"] <= 0:
        text += (
            ": the interval includes zero, so on these rows the two cannot be told apart; "
            "the difference is within the noise."
        )
    else:
        text += ": a real difference at that confidence."
    # why: what retraining bought against what it cost
    retrainers = [n for n, p in policies.items() if p["retrains"] > 0]
    idle = [n for n, p in policies.items() if p["retrains"] == 0]
    if w["retrains"] == 0:
        parts = []
        for name in retrainers:
            p = policies[name]
            gained = p["value"] - w["value"]
            parts.append(
                f"{name} retrained {p['retrains']} time(s) ({p['promotions']} promoted) and "
                f"earned {money(gained)} {currency} {'more' if gained >= 0 else 'less'} than "
                f"{winner}, against {money(p['cost'])} {currency} of retrain cost"
            )
        if parts:
            text += " Retraining did not pay on this data: " + "; ".join(parts) + "."
    elif idle:
        base = idle[0]
        gained = w["value"] - policies[base]["value"]
        sure = policies[base]["versus_winner"]["low"] > 0
        text += (
            (" Retraining paid: " if sure else " On the point estimates retraining paid, ")
            + f"{winner}'s {w['promotions']} promoted challenger(s) earned "
            f"{money(gained)} {currency} more than {base} (which never retrains), against "
            f"{money(w['cost'])} {currency} of retrain cost"
            + ("." if sure else ", but that gain is within the noise of the periods' rows.")
        )
    if all(p["promotions"] == 0 for p in policies.values()) and retrainers:
        text += (
            " No challenger passed the deploy gate, so every policy served the first model "
            "throughout: the policies differ only by what their retrains cost."
        )
    return text
