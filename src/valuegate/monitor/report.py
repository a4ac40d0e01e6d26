"""The monitoring page: one self-contained offline HTML file, money first, statistics second.
Charts are PNGs drawn with the run report's helpers (`run_report.charts`) and inlined; the
page holds no timestamps, so the same record gives the same bytes."""

from __future__ import annotations

import html
from typing import Any

import numpy as np

from valuegate.run_report.charts import png_img, pyplot
from valuegate.run_report.page import STYLE

ALERT_COLOUR = "#c0392b"


def _e(value: Any) -> str:
    return html.escape(str(value))


class _Money:
    def __init__(self, currency: str, period: str):
        self.currency, self.period = currency, period

    def __call__(self, value: float | None) -> str:
        if value is None or value != value:
            return "n/a"
        return f"{value:,.0f} {self.currency}/{self.period}"

    def band(self, record: dict[str, Any] | None) -> str:
        if not record:
            return "n/a"
        return (
            f"{self(record['value_per_period'])}<br><span class='small muted'>"
            f"{record['confidence']:.0%}: {self(record['low'])} to {self(record['high'])}</span>"
        )


def value_chart(windows: list[dict[str, Any]], deploy: dict[str, Any], unit: str) -> str:
    """Value per period per window: the estimate with its band, the realised value with its
    interval, the value at deploy (dashed, its band shaded), alert markers on top."""
    plt = pyplot()
    x = np.arange(len(windows))
    figure, axis = plt.subplots(figsize=(9, 3.8))
    axis.axhspan(deploy["low"], deploy["high"], color="#1e8c4e", alpha=0.08, linewidth=0)
    axis.axhline(
        deploy["value_per_period"],
        color="#1e8c4e",
        linestyle="--",
        linewidth=1.2,
        label="at deploy (test rows)",
    )
    est = [w["value"]["estimated"] for w in windows]
    if any(e is not None for e in est):
        keep = np.array([e is not None for e in est])
        mid = np.array([e["value_per_period"] if e else np.nan for e in est])
        low = np.array([e["low"] if e else np.nan for e in est])
        high = np.array([e["high"] if e else np.nan for e in est])
        axis.fill_between(x[keep], low[keep], high[keep], color="#3b73b9", alpha=0.18, linewidth=0)
        axis.plot(x[keep], mid[keep], "o-", color="#3b73b9", label="estimated (no labels)")
    real = [w["value"]["realised"] for w in windows]
    if any(r is not None for r in real):
        idx = np.array([i for i, r in enumerate(real) if r is not None])
        mid = np.array([real[i]["value_per_period"] for i in idx])
        err = np.array(
            [[mid[j] - real[i]["low"], real[i]["high"] - mid[j]] for j, i in enumerate(idx)]
        ).T
        axis.errorbar(
            idx + 0.08,
            mid,
            yerr=err,
            fmt="s",
            color="#111",
            capsize=3,
            markersize=5,
            label="realised (labels)",
        )
    alerted = [i for i, w in enumerate(windows) if w.get("alerts")]
    if alerted:
        top = axis.get_ylim()[1]
        axis.plot(
            alerted,
            [top] * len(alerted),
            "v",
            color=ALERT_COLOUR,
            markersize=10,
            label="alert",
            clip_on=False,
        )
    axis.set_xticks(x)
    axis.set_xticklabels(
        [w["window"] for w in windows], rotation=30 if len(x) > 6 else 0, fontsize=8
    )
    axis.set_ylabel(unit)
    axis.set_title("What the model is worth per window", fontsize=10)
    axis.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    axis.legend(fontsize=8, loc="best")
    figure.tight_layout()
    return png_img(figure)


def drift_chart(windows: list[dict[str, Any]]) -> str:
    """Jensen-Shannon distance per feature (rows) and window (columns); drifted cells
    (Holm-adjusted p <= alpha and distance >= the minimum) outlined in red."""
    plt = pyplot()
    names = [t["name"] for t in windows[0]["drift"]["tests"]]
    grid = np.array([[t["js_distance"] for t in w["drift"]["tests"]] for w in windows]).T
    drifted = np.array([[t["drifted"] for t in w["drift"]["tests"]] for w in windows]).T
    figure, axis = plt.subplots(figsize=(9, 0.9 + 0.28 * len(names)))
    image = axis.imshow(grid, aspect="auto", cmap="Blues", vmin=0, vmax=max(0.3, grid.max()))
    for i, j in zip(*np.nonzero(drifted), strict=True):
        axis.add_patch(
            plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor=ALERT_COLOUR, linewidth=2)
        )
    axis.set_yticks(np.arange(len(names)))
    axis.set_yticklabels(names, fontsize=8)
    axis.set_xticks(np.arange(len(windows)))
    axis.set_xticklabels(
        [w["window"] for w in windows], fontsize=8, rotation=30 if len(windows) > 6 else 0
    )
    figure.colorbar(image, ax=axis, label="Jensen-Shannon distance")
    axis.set_title("Drift per feature (red: alert)", fontsize=10)
    figure.tight_layout()
    return png_img(figure)


def rollback_section(windows: list[dict[str, Any]], money: _Money) -> list[str]:
    """Per labelled window: what rolling back to the previous champion would have been
    worth (monitor/rollback.py); nothing when there is no previous champion."""
    rows = [(w["window"], w["rollback"]) for w in windows if w.get("rollback")]
    if not rows:
        return []
    first = rows[0][1]
    out = [
        f"<h2>Rollback: {_e(first['champion'])} against the champion it replaced, "
        f"{_e(first['previous'])}</h2>",
        "<table><tr><th>window</th><th class='num'>rows compared</th>"
        "<th class='num'>rolling back would have been worth</th><th>verdict</th></tr>",
    ]
    for label, r in rows:
        if "skipped" in r:
            out.append(
                f"<tr><td>{_e(label)}</td><td class='num'>{r.get('rows', 0):,}</td>"
                f"<td class='num'>n/a</td><td class='muted'>not compared: {_e(r['skipped'])}"
                "</td></tr>"
            )
            continue
        band = {
            "value_per_period": r["rollback_worth"],
            "low": r["rollback_low"],
            "high": r["rollback_high"],
            "confidence": r["confidence"],
        }
        verdict = (
            f"<b style='color:{ALERT_COLOUR}'>{_e(r['previous'])} was surely better: "
            "<code>valuegate models rollback</code></b>"
            if r["flag"]
            else f"keep {_e(r['champion'])}"
        )
        out.append(
            f"<tr><td>{_e(label)}</td><td class='num'>{r['rows']:,}</td>"
            f"<td class='num'>{money.band(band)}</td><td>{verdict}</td></tr>"
        )
    out.append(
        "</table><p class='small muted'>Both models on the same labelled rows (those neither "
        "was fitted or selected on, when the input can be matched to their row lineage), each "
        "at the operating point it ships with; the deploy gate's paired bootstrap. Rollback is "
        "flagged when the whole interval says the previous champion was worth more.</p>"
    )
    return out


def build_page(record: dict[str, Any]) -> str:
    """The page (HTML text) from the monitoring record (`reports/monitor.json`)."""
    money = _Money(record["currency"], record["period"])
    windows = record["windows"]
    deploy = record["reference"]["value_at_deploy"]
    alerts = record["alerts"]
    title = f"valuegate monitoring: {record['model']['version']} ({record['model']['name']})"
    last = windows[-1]
    now = last["value"]["at_risk"]
    headline_cls = "bad" if alerts else "good"
    if now is not None:
        worth = (
            f"In the last window ({_e(last['window'])}) the model is worth "
            f"<span class='big'>{_e(money(now['now_value_per_period']))}</span> "
            f"({_e(now['now'])}), against {_e(money(deploy['value_per_period']))} at deploy: "
            f"value at risk {_e(money(now['value_per_period']))} ({now['confidence']:.0%} "
            f"interval {_e(money(now['low']))} to {_e(money(now['high']))})."
        )
    else:
        worth = "No value figure: a regression model's cost needs labels, and none arrived."
    body = [
        f"<h1>{_e(title)}</h1>",
        f"<p class='muted'>Input {_e(record['input'])}: {record['summary']['rows']:,} rows in "
        f"{len(windows)} window(s) ({_e(record['windows_by'])}); money in "
        f"{_e(record['currency'])} per {_e(record['period'])}.</p>",
        f"<div class='box {headline_cls}'><p class='lead'>{worth}</p>"
        + (
            f"<p><b>{len(alerts)} alert(s)</b>: "
            + "; ".join(_e(a["message"]) for a in alerts[:5])
            + (" ..." if len(alerts) > 5 else "")
            + "</p>"
            if alerts
            else "<p>No alert: no feature drifted beyond chance (Holm-corrected), no schema "
            "change, no sure loss of value.</p>"
        )
        + "</div>",
        "<h2>Value per window</h2>",
        value_chart(windows, deploy, f"{record['currency']}/{record['period']}"),
        "<table><tr><th>window</th><th class='num'>rows</th><th class='num'>labelled</th>"
        "<th class='num'>estimated (no labels)</th><th class='num'>realised (labels)</th>"
        "<th class='num'>value at risk vs. deploy</th><th>alerts</th></tr>",
    ]
    for w in windows:
        v = w["value"]
        kinds = ", ".join(sorted({a["kind"] for a in w.get("alerts", [])})) or "-"
        body.append(
            f"<tr><td>{_e(w['window'])}</td><td class='num'>{w['rows']:,}</td>"
            f"<td class='num'>{v['labels']['share']:.0%}</td>"
            f"<td class='num'>{money.band(v['estimated'])}</td>"
            f"<td class='num'>{money.band(v['realised'])}</td>"
            f"<td class='num'>{money.band(v['at_risk'])}</td><td>{_e(kinds)}</td></tr>"
        )
    body.append("</table>")
    warnings = sorted(
        {m for w in windows for m in (w["value"]["estimated"] or {}).get("warnings", [])}
    )
    if warnings:
        body.append(
            "<div class='box bad'><b>The estimate without labels may be unreliable:</b><ul>"
            + "".join(f"<li>{_e(m)}</li>" for m in warnings)
            + "</ul></div>"
        )
    body += rollback_section(windows, money)
    summary = record["summary"]
    if summary["estimate_checked_windows"]:
        body.append(
            f"<p class='small'>Where every row was labelled ({summary['estimate_checked_windows']} "
            f"window(s)) the estimate's interval covered the realised value in "
            f"{summary['estimate_coverage']:.0%} of them; mean absolute error "
            f"{_e(money(summary['estimate_mean_abs_error']))}.</p>"
        )
    body += ["<h2>What changed: drift per feature</h2>", drift_chart(windows)]
    body.append(
        "<table><tr><th>window</th><th>feature</th><th class='num'>JS distance</th>"
        "<th class='num'>PSI</th><th class='num'>Cramér's V</th><th class='num'>p (Holm)</th>"
        "<th class='num'>missing ref / now</th></tr>"
    )
    for w in windows:
        ranked = sorted(w["drift"]["tests"], key=lambda t: -t["js_distance"])[:5]
        for t in ranked:
            mark = " style='color:#b03a2e;font-weight:600'" if t["drifted"] else ""
            miss = (
                f"{t['missing_reference']:.1%} / {t['missing_now']:.1%}"
                if t["missing_reference"] is not None and t["missing_now"] is not None
                else "n/a"
            )
            body.append(
                f"<tr{mark}><td>{_e(w['window'])}</td><td>{_e(t['name'])}</td>"
                f"<td class='num'>{t['js_distance']:.3f}</td><td class='num'>{t['psi']:.3f}</td>"
                f"<td class='num'>{t['cramers_v']:.3f}</td>"
                f"<td class='num'>{t['p_adjusted']:.2g}</td><td class='num'>{miss}</td></tr>"
            )
    body.append("</table><p class='small muted'>The five largest distances per window.</p>")
    schema_rows = [
        (w["window"], w["schema"])
        for w in windows
        if w["schema"]["rows_refused"]
        or w["schema"]["unseen_categories"]
        or w["schema"]["missing_not_in_training"]
    ]
    body.append("<h2>Schema</h2>")
    if record["schema"]["extra_columns"]:
        body.append(
            "<p>Columns the model does not read: "
            f"{_e(', '.join(record['schema']['extra_columns']))}.</p>"
        )
    if schema_rows:
        body.append(
            "<table><tr><th>window</th><th>rows refused (by column)</th><th>unseen categories</th>"
            "<th>missing where training had none</th></tr>"
        )
        for label, s in schema_rows:
            body.append(
                f"<tr><td>{_e(label)}</td><td>{_e(s['refused_by_column'] or '-')}</td>"
                f"<td>{_e(s['unseen_categories'] or '-')}</td>"
                f"<td>{_e(s['missing_not_in_training'] or '-')}</td></tr>"
            )
        body.append("</table>")
    else:
        body.append("<p>Every row fits the model's input schema.</p>")
    settings = record["settings"]
    body.append(
        "<h2>How to read this</h2><p class='small'>"
        "<b>Estimated</b>: the expected value of the window's decisions from the calibrated "
        "scores (no labels needed); its band is where the realised value should fall if the "
        "scores still mean what they meant at deploy. <b>Realised</b>: the same value model "
        "on the rows whose labels arrived. <b>Value at risk</b>: now (realised when at least "
        "half the window is labelled, else estimated) minus the value at deploy (the test "
        "rows the deploy gate accepted), with its interval. <b>Drift</b>: a two-sample "
        "chi-square test per feature and of the score on the reference profile's bins (the "
        "reference is a sample too), Holm-corrected over the window's "
        f"{len(windows[0]['drift']['tests'])} tests at alpha {settings['alpha']}; an alert "
        f"also needs a Jensen-Shannon distance of at least {settings['min_distance']}.</p>"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )


def skipped_page(reason: str) -> str:
    """The page when nothing could be monitored (no deployed model)."""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>valuegate monitoring</title><style>{STYLE}</style></head><body>"
        f"<h1>valuegate monitoring</h1><div class='box note'><p>Nothing monitored: "
        f"{_e(reason)}.</p></div></body></html>\n"
    )
