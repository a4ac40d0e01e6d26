"""The backtest page (`reports/backtest.html`): one self-contained offline HTML file, money
first: the winner and why in words, the table of totals with intervals, value per period
per policy with bands and retrain markers, then each policy's periods. Charts are PNGs
drawn with the run report's helpers (`run_report.charts`) in its STYLE; the page holds
no timestamps, so the same record gives the same bytes."""

from __future__ import annotations

import html
from typing import Any

import numpy as np

from valuegate.deploy import money
from valuegate.run_report.charts import png_img, pyplot
from valuegate.run_report.page import STYLE

COLOURS = ["#3b73b9", "#1e8c4e", "#c0392b", "#7b4fb3", "#d68910", "#17a589", "#8a8f98"]


def _e(value: Any) -> str:
    return html.escape(str(value))


def _m(value: float | None, unit: str) -> str:
    if value is None or value != value:
        return "n/a"
    return f"{money(value)} {unit}".rstrip()


def value_chart(record: dict[str, Any]) -> str:
    """Value per objective.period per policy and period (realised, bootstrap band), a
    triangle where the policy retrained after the period (filled: promoted)."""
    plt = pyplot()
    periods = [str(p) for p in record["periods"]]
    x = np.arange(len(periods))
    names = list(record["policies"])
    width = 0.5 / max(len(names), 1)
    figure, axis = plt.subplots(figsize=(9, 4))
    for k, name in enumerate(names):
        colour = COLOURS[k % len(COLOURS)]
        steps = record["policies"][name]["periods"]
        shift = (k - (len(names) - 1) / 2) * width
        mid = np.array([s["value"]["value_per_period"] for s in steps])
        low = np.array([s["value"]["low"] for s in steps])
        high = np.array([s["value"]["high"] for s in steps])
        axis.errorbar(
            x + shift, mid, yerr=[mid - low, high - mid], fmt="o-", color=colour, capsize=3,
            markersize=5, label=name, linewidth=1.2,
        )  # fmt: skip
        for i, step in enumerate(steps):
            decision = step.get("decision")
            if decision and decision["retrain"]:
                promoted = bool(step.get("deploy", {}).get("promote"))
                axis.plot(
                    x[i] + shift, high[i], marker="^", markersize=9, color=colour,
                    markerfacecolor=colour if promoted else "white", linestyle="none",
                )  # fmt: skip
    axis.set_xticks(x, periods)
    axis.set_xlabel(f"period ({record['time_column']}); ^ retrain after it (filled: promoted)")
    axis.set_ylabel(f"{record['currency']} per {record['period']}")
    axis.yaxis.set_major_formatter("{x:,.0f}")
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=8, loc="best")
    figure.tight_layout()
    return png_img(figure)


def build_page(record: dict[str, Any]) -> str:
    """The page (HTML text) from the backtest record (`reports/backtest.json`)."""
    currency, period = record["currency"], record["period"]
    per = f"{currency}/{period}"
    policies = record["policies"]
    winner = record["winner"]
    conf = f"{record['confidence']:.0%}"
    span = f"{record['periods'][0]}-{record['periods'][-1]}"
    title = f"valuegate backtest: retraining policies on {record['data']}, {span}"
    runner = record["runner_up"]
    clear = runner is None or policies[runner]["versus_winner"]["low"] > 0
    body = [
        f"<h1>{_e(title)}</h1>",
        f"<p class='muted'>The first model learns from the data up to "
        f"{_e(record['first_model_until'])}; each of {len(record['periods'])} periods "
        f"({', '.join(f'{p}: {n:,} rows' for p, n in record['rows'].items())}) is scored by "
        f"the model a policy serves, which earns the value realised from the period's labels. "
        f"Money over the replay: value per {_e(period)} x {record['period_length']:g} "
        f"{_e(period)}(s) per period, minus {_e(_m(record['cost_per_retrain'], currency))} "
        f"per retrain (retrain.cost).</p>",
        f"<div class='box {'good' if clear else 'note'}'><p class='lead'>"
        f"{_e(record['verdict'])}</p></div>",
        "<h2>Totals</h2><table><tr><th>policy</th><th>trigger</th><th class='num'>retrains"
        "</th><th class='num'>promoted</th><th class='num'>value earned</th><th class='num'>"
        f"retrain cost</th><th class='num'>net</th><th class='num'>net, {conf} interval</th>"
        f"<th class='num'>behind {_e(winner)}, {conf} interval</th></tr>",
    ]
    for name, p in policies.items():
        lead = p["versus_winner"]
        trigger = ", ".join(f"{k} {v}" for k, v in p["trigger"].items() if k != "trigger")
        behind = (
            "winner"
            if name == winner
            else f"{_m(lead['difference'], currency)} ({_m(lead['low'], currency)} to "
            f"{_m(lead['high'], currency)})"
        )
        body.append(
            f"<tr><td><b>{_e(name)}</b></td><td>{_e(p['trigger']['trigger'])}"
            f"{(' (' + _e(trigger) + ')') if trigger else ''}</td>"
            f"<td class='num'>{p['retrains']}</td><td class='num'>{p['promotions']}</td>"
            f"<td class='num'>{_e(_m(p['value'], currency))}</td>"
            f"<td class='num'>{_e(_m(p['cost'], currency))}</td>"
            f"<td class='num'><b>{_e(_m(p['net'], currency))}</b></td>"
            f"<td class='num'>{_e(_m(p['net_low'], currency))} to "
            f"{_e(_m(p['net_high'], currency))}</td><td class='num'>{_e(behind)}</td></tr>"
        )
    body.append("</table>")
    body.append(f"<h2>Value per period</h2>{value_chart(record)}")
    body.append(
        f"<p class='small muted'>Realised value per {_e(period)} of the serving model on each "
        f"period's labelled rows, with its {conf} bootstrap band (the rows resampled, the same "
        "resamples for every model of a period, so policies are compared pairwise).</p>"
    )
    for name, p in policies.items():
        body.append(
            f"<h2>{_e(name)}</h2><table><tr><th>period</th><th>served by</th>"
            f"<th class='num'>realised ({_e(per)})</th><th class='num'>estimated</th>"
            "<th class='num'>value at risk</th><th>drift alerts</th><th>decision</th>"
            "<th>deploy gate</th></tr>"
        )
        for step in p["periods"]:
            mon = step["monitor"]
            decision = step.get("decision")
            deploy = step.get("deploy")
            band = step["value"]
            body.append(
                f"<tr><td>{_e(step['period'])}</td><td>{_e(step['served_by'])}</td>"
                f"<td class='num'>{_e(_m(band['value_per_period'], ''))}<br><span class='small "
                f"muted'>{_e(_m(band['low'], ''))} to {_e(_m(band['high'], ''))}</span></td>"
                f"<td class='num'>{_e(_m((mon['estimated'] or {}).get('value_per_period'), ''))}"
                f"</td><td class='num'>"
                f"{_e(_m((mon['at_risk'] or {}).get('value_per_period'), ''))}</td>"
                f"<td class='small'>{_e(', '.join(mon['drifted']) or '-')}</td>"
                f"<td class='small'>{_e(decision['why']) if decision else 'end of replay'}</td>"
                f"<td class='small'>{_e(deploy['reason']) if deploy else '-'}</td></tr>"
            )
        body.append("</table>")
    body.append(
        "<h2>Trainings</h2><table><tr><th>model</th><th>final model</th>"
        "<th>rows (train / valid / test)</th><th class='num'>test value</th></tr>"
    )
    for key, about in record["trainings"].items():
        rows = about.get("rows", {})
        body.append(
            f"<tr><td>{_e(key)}</td><td>{_e(about.get('final_model'))}</td>"
            f"<td>{rows.get('train', 0):,} / {rows.get('valid', 0):,} / {rows.get('test', 0):,}"
            f"</td><td class='num'>{_e(_m(about.get('test_value_per_period'), per))}</td></tr>"
        )
    body.append("</table>")
    for key, why in record.get("trainings_refused", {}).items():
        body.append(f"<p class='small'>{_e(key)}: no model ({_e(why)}).</p>")
    body.append(
        "<h2>How to read this</h2><p class='small'>"
        f"{record['distinct_trainings']} distinct training(s) served every policy: policies "
        "that retrain after the same period share one challenger (the same config and window "
        "give the same model). A retrain runs the whole pipeline on the data known at the "
        "end of that period (retrain.window); the deploy gate compares the challenger with "
        "the serving model on that period's held-out rows neither has seen and promotes it "
        "only when the lower bound of the uplift clears deploy.min_uplift. No decision "
        "follows the last period: a retrain then would only earn after the replay. "
        "<b>Value at risk</b> and <b>drift</b> are monitoring's own figures "
        "(docs/monitoring.md); a value_at_risk policy fires when the upper bound of the value "
        "at risk is below minus its threshold (we are sure the model lost that much).</p>"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )
