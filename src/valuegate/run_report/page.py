"""`reports/run.html`: the business report of a run, one self-contained offline page.

`build_report(records)` turns the run's records (read by the `report` stage) into the page:
money first, for a business owner. No script, no external file (charts are inline SVG or
base64 PNG), no timestamp: the same records give the same bytes.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from valuegate.business import value_model
from valuegate.config.schema import Config
from valuegate.report import money as _money
from valuegate.run_report import analysis, charts

STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1000px;margin:1.5em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:.1em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
.lead{font-size:1.15em}.muted{color:#666}.small{font-size:.88em}
.box{border-radius:6px;padding:.7em 1.1em;margin:.8em 0}
.good{background:#e9f7ef;border-left:6px solid #27ae60}
.bad{background:#fde8e8;border-left:6px solid #c0392b}
.note{background:#f3f6fb;border-left:6px solid #3b73b9}
.big{font-size:1.6em;font-weight:700;white-space:nowrap}
.kpis{display:flex;gap:1em;flex-wrap:wrap}.kpi{flex:1;min-width:180px;border:1px solid #ddd;
border-radius:6px;padding:.5em .9em}.kpi .label{color:#666;font-size:.85em}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}td.num{white-space:nowrap}
.neg{color:#b03a2e}.pos{color:#1e7a45}
svg.bars text{font-family:inherit;font-size:13px}svg.bars .fig{font-weight:600}
svg.bars .axis{font-size:11px;fill:#555}
img{max-width:100%} code{background:#f4f4f4;padding:.05em .3em;border-radius:3px}
"""


@dataclass
class RunRecords:
    """Everything the report shows, as the pipeline recorded it.

    `evaluation`: reports/evaluation.json; `gate`: reports/gate.json; `tune`:
    reports/tune.json (None when absent); `trials`: candidate -> plots/tune/<candidate>.csv;
    `assessment`: reports/assessment.json (None when absent); `deploy`: reports/deploy.json
    (None when absent); `registry`: {"champion", "history", "versions": [{version, model,
    estimator, role, point}]}; `y_valid` (n,), `amount_valid` (n,) or None, `features_valid`
    (n rows), `predictions`: name -> validation scores (n,), `fits`: name -> fit.json;
    `curve`: the final model's plots/evaluate/value_threshold (or value_offset) table;
    `costs`: name -> {model_bytes, fit_seconds?, latency_ms_per_row?, size?}.
    """

    config: Config
    evaluation: dict[str, Any]
    gate: dict[str, Any]
    tune: dict[str, Any] | None
    trials: dict[str, pd.DataFrame]
    assessment: dict[str, Any] | None
    deploy: dict[str, Any] | None
    registry: dict[str, Any]
    y_valid: np.ndarray
    amount_valid: np.ndarray | None
    features_valid: pd.DataFrame
    predictions: dict[str, np.ndarray]
    fits: dict[str, dict[str, Any]]
    curve: pd.DataFrame | None
    costs: dict[str, dict[str, Any]] = field(default_factory=dict)
    timed: bool = False  # costs hold measured timings (a hand run, never the DVC output)


def _e(value: Any) -> str:
    return html.escape(str(value))


def about(value: float) -> float:
    """Two significant figures: a marginal figure ("about X") claims no more."""
    return float(f"{value:.2g}") if value == value else value


class _Fmt:
    """Money and shares in the objective's currency and period."""

    def __init__(self, config: Config):
        self.currency = config.objective.currency
        self.period = config.objective.period

    def money(self, value: float | None) -> str:
        if value is None or value != value:
            return "n/a"
        return _money(value, self.currency)

    def rate(self, value: float | None) -> str:
        """Currency per period."""
        if value is None or value != value:
            return "n/a"
        return f"{_money(value, self.currency)}/{self.period}"

    @staticmethod
    def cls(value: float | None) -> str:
        return "neg" if value is not None and value < 0 else ""


def _point_words(record: dict[str, Any]) -> str:
    if record.get("acts") == "always":
        return "acts on every case"
    if record.get("acts") == "never":
        return "acts on no case"
    if "threshold" in record:
        return f"threshold {record['threshold']:.3f}"
    if "offset" in record:
        return f"offset {record['offset']:+.3g}"
    return "n/a"


def _objective_section(r: RunRecords, f: _Fmt) -> str:
    c, o = r.config, r.config.objective
    model = value_model(c)
    items = []
    if c.data.task == "binary":
        pos = c.data.positive_label
        outcomes = o.outcomes
        assert outcomes is not None  # the schema requires outcomes for a binary task
        words = {
            "tp": f"act ({o.decision}) on a case that is {pos!r}",
            "fp": f"act ({o.decision}) on a case that is not {pos!r}",
            "fn": f"do not act on a case that is {pos!r}",
            "tn": f"do not act on a case that is not {pos!r}",
        }
        for key, text in words.items():
            value = getattr(outcomes, key)
            worth = f.money(value.value)
            if value.per_amount:
                worth += f" + {value.per_amount:g} x {c.data.amount_column}"
            items.append(f"<li>{_e(text)}: <b>{_e(worth)}</b> per case</li>")
        even = model.break_even_probability()
        if even is not None:
            items.append(
                f"<li>so acting pays when the chance that a case is {_e(repr(pos))} is above "
                f"<b>{even:.1%}</b> (the break-even probability)</li>"
            )
    else:
        cost = o.cost
        assert cost is not None  # the schema requires a cost for a regression task
        items.append(
            f"<li>each unit predicted too low costs <b>{_e(f.money(cost.under))}</b>, too "
            f"high <b>{_e(f.money(cost.over))}</b>; errors within {cost.tolerance:g} cost "
            "nothing</li>"
        )
    good = o.good_enough
    target = []
    if good.value_per_period is not None:
        target.append(f.rate(good.value_per_period))
    target += list(good.metrics)
    constraints = ", ".join(o.constraints) or "none"
    return (
        "<h2>The objective</h2>"
        + (f"<p>{_e(o.description)}</p>" if o.description else "")
        + f"<p>The model decides whether to <b>{_e(o.decision)}</b> ({_e(c.data.task)} "
        f"prediction of <code>{_e(c.data.target)}</code>). What each outcome is worth:</p>"
        f"<ul>{''.join(items)}</ul>"
        f"<p>Volume: <b>{o.volume:,.0f}</b> cases per {_e(o.period)}. Good enough to deploy: "
        f"<b>{_e(' and '.join(target) or 'no target set')}</b>. The least uplift over the best "
        f"baseline that matters: <b>{_e(f.rate(o.min_uplift))}</b>. Constraints at the "
        f"operating point: {_e(constraints)}.</p>"
    )


def _assessment_section(r: RunRecords) -> str:
    a = r.assessment
    if a is None:
        return "<h2>The data</h2><p>No assessment record (reports/assessment.json).</p>"
    counts = a.get("findings", {})
    rows = (a.get("figures") or {}).get("rows", {})
    blocked = a.get("blocked", False)
    box = "bad" if blocked or counts.get("block", 0) else "good"
    shown = [d for d in a.get("findings_detail", []) if d.get("severity") in ("block", "warn")]
    listed = "".join(
        f"<li><b>{_e(d['severity'])}</b> ({_e(d.get('status', ''))}): {_e(d['title'])}</li>"
        for d in shown
    )
    split = ", ".join(f"{k} {v:,}" for k, v in rows.items())
    return (
        "<h2>The data</h2>"
        f'<div class="box {box}">The data assessment found {counts.get("block", 0)} blocking, '
        f"{counts.get('warn', 0)} warning and {counts.get('info', 0)} informational findings "
        f"({counts.get('accepted', 0)} accepted, {counts.get('remedied', 0)} remedied)"
        + (": <b>the run was blocked</b>" if blocked else "")
        + f". Rows: {_e(split)}. Details: "
        '<a href="assessment.html">assessment.html</a>.</div>'
        + (f"<ul>{listed}</ul>" if listed else "")
    )


def _models_section(r: RunRecords, f: _Fmt, intervals: dict[str, dict[str, float]]) -> str:
    ev, c = r.evaluation, r.config
    final = ev["final_model"]
    confidence = c.gate.confidence
    rows = [
        {
            "name": name,
            "role": rec["role"],
            "value_per_period": intervals[name]["value_per_period"],
            "low": intervals[name]["low"],
            "high": intervals[name]["high"],
            "final": name == final,
        }
        for name, rec in ev["models"].items()
    ]
    best_baseline = ev["best_baseline"]
    bar = ev["models"][best_baseline]["value_per_period"] + c.objective.min_uplift
    lines = [(bar, "to beat:")]
    svg = charts.value_bars(rows, f.money, lines)
    table = []
    for name, rec in ev["models"].items():
        iv = intervals[name]
        verdict = ""
        gate_rec = r.gate.get("candidates", {}).get(name)
        if gate_rec is not None:
            verdict = "passed the gate" if gate_rec["passed"] else "refused by the gate"
        elif rec["role"] == "tuned":
            verdict = "tuned"
        elif name == best_baseline:
            verdict = "best baseline"
        table.append(
            f"<tr><td>{_e(name)}{' <b>(final)</b>' if name == final else ''}</td>"
            f"<td>{_e(rec['role'])}</td>"
            f'<td class="num {f.cls(rec["value_per_period"])}">'
            f"{_e(f.money(rec['value_per_period']))}</td>"
            f'<td class="num">{_e(f.money(iv["low"]))} to {_e(f.money(iv["high"]))}</td>'
            f'<td class="num {f.cls(rec.get("uplift"))}">{_e(f.money(rec.get("uplift")))}</td>'
            f"<td>{_e(_point_words(rec))}"
            f"{'' if rec.get('constraints_met', True) else ' (constraints not met)'}</td>"
            f"<td>{_e(verdict)}</td></tr>"
        )
    return (
        f"<h2>Every model, in {_e(f.currency)} per {_e(f.period)}</h2>"
        f"<p>Value per {_e(f.period)} on the validation split ({ev['rows']:,} rows), each model at "
        f"the operating point fixed out of fold when it was fitted. Whiskers: the "
        f"{confidence:.0%} interval of a paired bootstrap of the validation rows "
        f"({c.gate.n_resamples:,} resamples). Dashed: the best baseline ({_e(best_baseline)}) "
        f"plus the {_e(f.rate(c.objective.min_uplift))} that matters. Grey: baselines, blue: "
        "candidates, purple: tuned models, green: the final model.</p>"
        + svg
        + '<table><tr><th>model</th><th>role</th><th class="num">value/'
        + _e(f.period)
        + f'</th><th class="num">{confidence:.0%} interval</th><th class="num">uplift over '
        + _e(best_baseline)
        + "</th><th>operating point</th><th>verdict</th></tr>"
        + "".join(table)
        + "</table>"
    )


def _gate_section(r: RunRecords, f: _Fmt) -> str:
    ev, gate = r.evaluation, r.gate
    passed = gate.get("passed") or []
    box = "good" if passed else "note"
    head = (
        f"{len(passed)} of {len(gate.get('candidates', {}))} candidates passed the gate: "
        + ", ".join(passed)
        if passed
        else f"No candidate beat the best baseline ({gate.get('best_baseline')}) by enough."
    )
    reasons = "".join(
        f"<li>{_e(rec['reason'])}.</li>" for rec in gate.get("candidates", {}).values()
    )
    return (
        "<h2>The gate's decision</h2>"
        f'<div class="box {box}"><b>{_e(head)}</b><br>{_e(ev.get("final_reason", ""))}.</div>'
        f"<ul>{reasons}</ul>"
    )


def _tuning_section(r: RunRecords, f: _Fmt) -> str:
    tune = r.tune
    if tune is None:
        return "<h2>Tuning</h2><p>No tuning record (reports/tune.json).</p>"
    studies = tune.get("studies") or {}
    if not studies:
        # The gate's reasons are listed just above: repeat only what they do not say.
        said = {rec.get("reason") for rec in r.gate.get("candidates", {}).values()}
        reasons = "".join(
            f"<li>{_e(x)}</li>" for x in tune.get("skipped_because", []) if x not in said
        )
        return (
            "<h2>Tuning</h2><p>Tuning did not run: the gate passed no candidate (see its "
            "reasons above; tuning a model that does not beat the baseline would fit noise).</p>"
            + (f"<ul>{reasons}</ul>" if reasons else "")
        )
    unit = f"{f.currency}/{f.period}"
    out = ["<h2>Tuning</h2>"]
    min_improvement = r.config.tune.min_improvement
    for name, study in studies.items():
        table = r.trials.get(name)
        out.append(
            f"<p><b>{_e(name)}</b>: best cross-validated value "
            f"<b>{_e(f.rate(study['best_cv_value_per_period']))}</b> after "
            f"{study['trials_complete']} complete and {study['trials_pruned']} pruned trials; "
            f"stopped because: {_e(study['stop_reason'])}. Best params: "
            f"<code>{_e(study['best_params'])}</code>.</p>"
        )
        if table is None or table.empty:
            continue
        stop = analysis.tuning_stop(table, min_improvement)
        if stop["last_gain_trial"] is not None:
            out.append(
                f"<p>It stopped adding value at trial <b>#{stop['last_gain_trial']}</b> "
                f"({_e(f.rate(stop['gain_value']))}): the {stop['after']} finished trials after "
                f"it did not add {_e(f.rate(min_improvement))}.</p>"
            )
        out.append(
            charts.tuning_history(
                table["trial"].to_numpy(float),
                table["value_per_period"].to_numpy(float),
                table["best_so_far"].to_numpy(float),
                stop["last_gain_trial"],
                f"Tuning {name}: cross-validated value per period by trial",
                unit,
            )
        )
    return "".join(out)


def _curve_section(r: RunRecords, f: _Fmt) -> str:
    ev, c = r.evaluation, r.config
    final = ev["final_model"]
    record = ev["final"]["valid"]
    model = value_model(c)
    kind = model.point_kind
    point = float(record[kind])
    if r.curve is None or r.curve.empty:
        return f"<h2>Value vs. {kind}</h2><p>No curve recorded for {_e(final)}.</p>"
    xs = r.curve[kind].to_numpy(float)
    values = r.curve["value_per_period"].to_numpy(float)
    feasible = analysis.constraint_region(
        model, r.y_valid, r.predictions[final], xs, c.constraints, r.amount_valid
    )
    op = r.fits.get(final, {}).get("operating_point", {})
    interval = op.get("interval")
    img = charts.value_curve(
        xs,
        values,
        feasible,
        point,
        float(record["value_per_period"]),
        kind,
        f"{final}: value per period vs. {kind} (validation)",
        f"{f.currency}/{f.period}",
        tuple(interval) if interval and kind == "threshold" and not record.get("acts") else None,
    )
    at_default = record.get("value_at_0_5", record.get("value_at_offset_0"))
    constraints = ", ".join(c.objective.constraints)
    region = (
        f"Shaded red: where a constraint ({_e(constraints)}) fails."
        if constraints
        else "No constraint is set, so every point is allowed."
    )
    return (
        f"<h2>Value vs. {kind} for the final model</h2>"
        f"<p>{_e(final)} at its chosen {kind} {point:.3g} is worth "
        f"<b>{_e(f.rate(record['value_per_period']))}</b> on validation; at the default "
        f"({model.default_point:g}) it would be worth {_e(f.rate(at_default))}. "
        f"{region} The point was chosen on out-of-fold training scores, so the curve's "
        "peak on validation need not sit exactly on it.</p>" + img
    )


def _worth_section(r: RunRecords, f: _Fmt) -> str:
    ev, c = r.evaluation, r.config
    final = ev["final_model"]
    model = value_model(c)
    kind = model.point_kind
    point = float(ev["final"]["valid"][kind])
    w = analysis.metric_point_worth(model, r.y_valid, r.predictions[final], point, r.amount_valid)
    if w["kind"] == "regression":
        body = (
            f"<p>Every error beyond the tolerance one unit smaller would be worth "
            f"about <b>{_e(f.rate(about(w['one_unit_less_error'])))}</b> "
            f"({w['rows_outside_tolerance']:,} of "
            f"{w['rows']:,} validation cases are outside the tolerance).</p>"
        )
    else:
        body = (
            f"<ul><li>One more point of <b>recall</b> (now {w['recall']:.1%}) is worth about "
            f"<b>{_e(f.rate(about(w['recall_point'])))}</b>: {w['positives_per_point']:,.1f} more "
            f"{_e(repr(c.data.positive_label))} cases acted on per {_e(f.period)}, each worth "
            f"{_e(f.money(w['per_caught_case']))} more than leaving it.</li>"
            + (
                f"<li>One more point of <b>precision</b> (now {w['precision']:.1%}) at the same "
                f"recall is worth about <b>{_e(f.rate(about(w['precision_point'])))}</b>: "
                f"{w['fewer_alarms_per_point']:,.1f} fewer false alarms per {_e(f.period)}, "
                f"each worth {_e(f.money(w['per_spared_case']))}.</li>"
                if w["precision_point"] == w["precision_point"]  # NaN: no case acted on
                else "<li>A point of precision means nothing here: the model acts on no "
                "positive case, or its precision is above 99% already.</li>"
            )
            + "</ul>"
        )
    return (
        "<h2>What a metric point is worth here</h2>"
        f"<p>For {_e(final)} at its operating point, from the value model and the validation "
        "rows (not a rule of thumb):</p>" + body
    )


def _segments_section(r: RunRecords, f: _Fmt) -> str:
    ev, c = r.evaluation, r.config
    final = ev["final_model"]
    model = value_model(c)
    point = float(ev["final"]["valid"][model.point_kind])
    seg = analysis.segment_values(
        model, r.features_valid, r.y_valid, r.predictions[final], point, r.amount_valid
    )
    if not seg["segments"]:
        return "<h2>Where the model loses money</h2><p>No segment is large enough.</p>"
    has_regret = seg["segments"][0]["regret"] is not None
    rows = "".join(
        f"<tr><td>{_e(s['feature'])}</td><td>{_e(s['segment'])}</td>"
        f'<td class="num">{s["rows"]:,} ({s["share"]:.0%})</td>'
        f'<td class="num {f.cls(s["per_case"])}">{_e(f.money(s["per_case"]))}</td>'
        f'<td class="num {f.cls(s["value_per_period"])}">{_e(f.money(s["value_per_period"]))}</td>'
        + (f'<td class="num">{_e(f.money(s["regret"]))}</td>' if has_regret else "")
        + "</tr>"
        for s in seg["segments"]
    )
    return (
        "<h2>Where the model loses money</h2>"
        f"<p>{_e(final)}'s value on validation by segment of the features whose segments "
        f"differ most ({_e(', '.join(seg['features']))}): the segments whose cases are worth "
        f"less than the average case ({_e(f.money(seg['per_case']))}), the lowest first. A "
        f"segment's share of the value per {_e(f.period)} adds up, over all of one feature's "
        f"segments, to the model's total. Segments under {seg['min_rows']} rows are left "
        "out.</p>"
        '<table><tr><th>feature</th><th>segment</th><th class="num">rows</th>'
        '<th class="num">per case</th><th class="num">share of value/'
        + _e(f.period)
        + "</th>"
        + (
            '<th class="num">lost to wrong decisions/' + _e(f.period) + "</th>"
            if has_regret
            else ""
        )
        + f"</tr>{rows}</table>"
    )


def _short(value: float) -> str:
    """Two significant figures, never in e-notation: 0.089, 1.3, 13, 180, 2,700."""
    return f"{float(f'{value:.2g}'):,.10g}"


def _size(n_bytes: int | None) -> str:
    if n_bytes is None:
        return "n/a"
    # Two significant figures: a size that differs in the last byte reads the same.
    for unit, scale in (("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            return f"{float(f'{n_bytes / scale:.2g}'):g} {unit}"
    return f"{n_bytes} B"


def _cost_section(r: RunRecords, f: _Fmt) -> str:
    ev = r.evaluation
    rows = []
    for name, rec in ev["models"].items():
        cost = r.costs.get(name, {})
        fit = r.fits.get(name, {})
        params = fit.get("params") or {}
        shown = ", ".join(f"{k}={v}" for k, v in params.items()) or "defaults"
        value = rec["value_per_period"]
        timing = ""
        if r.timed:
            fit_s, latency = cost.get("fit_seconds"), cost.get("latency_ms_per_row")
            timing = (
                f'<td class="num">{_e(cost.get("size", "n/a"))}</td>'
                f'<td class="num">{"n/a" if fit_s is None else f"{_short(fit_s)} s"}</td>'
                f'<td class="num">{"n/a" if latency is None else f"{_short(latency)} ms"}</td>'
            )
        rows.append(
            f"<tr><td>{_e(name)}</td><td>{_e(fit.get('estimator', ''))} "
            f'<span class="muted small">{_e(shown)}</span></td>'
            f'<td class="num {f.cls(value)}">{_e(f.money(value))}</td>'
            f'<td class="num {f.cls(rec.get("uplift"))}">{_e(f.money(rec.get("uplift")))}</td>'
            f'<td class="num">{_e(_size(cost.get("model_bytes")))}</td>{timing}</tr>'
        )
    timing_head = (
        '<th class="num">parts</th><th class="num">fit time</th>'
        '<th class="num">latency per row</th>'
        if r.timed
        else ""
    )
    note = (
        "Fit time: the model refit once on the training split; latency: the mean time to "
        "score one row, rows scored one at a time, on this machine, now."
        if r.timed
        else "Fit time and latency per row are machine and run noise, so this page (a tracked "
        "DVC output, byte-identical between runs) leaves them out: <code>valuegate report "
        "--timings</code> measures them into <code>logs/run-timed.html</code> (untracked)."
    )
    return (
        "<h2>Cost of complexity</h2>"
        "<p>Is the extra value of a complex model worth what it costs to run? Model file: the "
        "saved pipeline (model.skops)"
        + ("; parts: trees and nodes, or coefficients" if r.timed else "")
        + ".</p>"
        '<table><tr><th>model</th><th>estimator</th><th class="num">value/'
        + _e(f.period)
        + '</th><th class="num">uplift</th><th class="num">model file</th>'
        + timing_head
        + "</tr>"
        + "".join(rows)
        + f'</table><p class="small muted">{note}</p>'
    )


def _deploy_section(r: RunRecords, f: _Fmt) -> str:
    ev = r.evaluation
    test = ev["final"]["test"]
    d = r.deploy
    out = [
        "<h2>Test result and deployment</h2>",
        f"<p>The final model {_e(ev['final_model'])}, valued once on the test split "
        f"({test['rows']:,} rows) at its fixed operating point: "
        f"<b>{_e(f.rate(test['value_per_period']))}</b>"
        + (f", ROC AUC {test['roc_auc']:.3f}" if "roc_auc" in test else "")
        + (f", R² {test['r2']:.3f}" if "r2" in test else "")
        + ".</p>",
    ]
    if d is None:
        out.append("<p>No deploy record (reports/deploy.json): the package stage has not run.</p>")
    else:
        ok = d.get("packaged") or d.get("already_packaged")
        box = "bad" if d.get("refused") else "good" if ok else "note"
        out.append(
            f'<div class="box {box}"><b>Deploy decision:</b> {_e(d.get("reason", ""))}. '
            f"Good enough ({_e(f.rate(d.get('good_enough_value_per_period')))}): "
            f"{'met' if d.get('good_enough_met') else 'not met'}. Champion now: "
            f"<b>{_e(d.get('champion_after') or 'none')}</b>.</div>"
        )
    versions = r.registry.get("versions", [])
    if versions:
        champion = r.registry.get("champion")
        rows = "".join(
            f"<tr><td>{_e(v['version'])}{' <b>(champion)</b>' if v['version'] == champion else ''}"
            f"</td><td>{_e(v.get('model', ''))}</td><td>{_e(v.get('status', ''))}</td>"
            f'<td class="num">{_e(f.rate(v.get("test_value_per_period")))}</td>'
            f"<td>{_e(v.get('created', ''))}</td></tr>"
            for v in versions
        )
        history = " -> ".join(r.registry.get("history", [])) or "none"
        out.append(
            "<p>The registry (champion history: " + _e(history) + "):</p>"
            "<table><tr><th>version</th><th>model</th><th>status</th>"
            f'<th class="num">test value when packaged</th><th>created</th></tr>{rows}</table>'
        )
    else:
        out.append("<p>The registry holds no version yet.</p>")
    return "".join(out)


def _headline(r: RunRecords, f: _Fmt, intervals: dict[str, dict[str, float]]) -> str:
    ev = r.evaluation
    final = ev["final_model"]
    valid, test = ev["final"]["valid"], ev["final"]["test"]
    d = r.deploy or {}
    deployed = d.get("champion_after")
    decision = (
        "refused for deployment"
        if d.get("refused")
        else f"deployed as {deployed}"
        if deployed and (d.get("packaged") or d.get("already_packaged"))
        else "not deployed"
    )
    box = "bad" if d.get("refused") or valid["value_per_period"] < 0 else "good"
    iv = intervals[final]
    confidence = r.config.gate.confidence
    return (
        f'<div class="box {box} lead">The model that goes forward is <b>{_e(final)}</b> '
        f"({_e(ev['models'][final]['role'])}): worth <b>{_e(f.rate(valid['value_per_period']))}"
        f"</b> on validation ({confidence:.0%} interval {_e(f.money(iv['low']))} to "
        f"{_e(f.money(iv['high']))}) and <b>{_e(f.rate(test['value_per_period']))}</b> on test; "
        f"{_e(decision)}.</div>"
        '<div class="kpis">'
        f'<div class="kpi"><div class="label">validation value</div><div class="big">'
        f"{_e(f.money(valid['value_per_period']))}</div>per {_e(f.period)}</div>"
        f'<div class="kpi"><div class="label">test value</div><div class="big">'
        f"{_e(f.money(test['value_per_period']))}</div>per {_e(f.period)}</div>"
        f'<div class="kpi"><div class="label">uplift over the best baseline</div><div class="big">'
        f"{_e(f.money(valid.get('uplift')))}</div>per {_e(f.period)}</div>"
        f'<div class="kpi"><div class="label">deployment</div><div class="big">'
        f"{_e(deployed or '-')}</div>{_e(decision)}</div></div>"
    )


def build_report(r: RunRecords) -> str:
    """The whole page (HTML text) from the run's records."""
    f = _Fmt(r.config)
    ev = r.evaluation
    model = value_model(r.config)
    points = {name: float(r.fits[name]["operating_point"]["value"]) for name in ev["models"]}
    intervals = analysis.value_intervals(
        model,
        r.y_valid,
        {name: r.predictions[name] for name in ev["models"]},
        points,
        {name: rec["value_per_period"] for name, rec in ev["models"].items()},
        r.amount_valid,
        confidence=r.config.gate.confidence,
        n_resamples=r.config.gate.n_resamples,
        seed=r.config.seed,
    )
    title = f"valuegate run report: {r.config.data.name}"
    body = [
        f"<h1>{_e(title)}</h1>",
        f'<p class="muted">Objective {_e(r.config.objective.name)}; money in '
        f"{_e(f.currency)} per {_e(f.period)}.</p>",
        _headline(r, f, intervals),
        _objective_section(r, f),
        _assessment_section(r),
        _models_section(r, f, intervals),
        _gate_section(r, f),
        _tuning_section(r, f),
        _curve_section(r, f),
        _worth_section(r, f),
        _segments_section(r, f),
        _cost_section(r, f),
        _deploy_section(r, f),
    ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )
