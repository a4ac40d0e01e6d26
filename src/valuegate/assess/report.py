"""The assessment as one self-contained HTML page: plots are PNGs inlined as base64, no
script and no external file, so it reads offline. The summary comes first: what blocks,
what to look at, what is fine."""

from __future__ import annotations

import base64
import html
import io
import json
from typing import Any

from valuegate.assess.assessment import Assessment
from valuegate.assess.findings import FINDING_KINDS, Finding

CHECK_NAMES = {
    "schema": "Schema (columns and types)",
    "quality": "Missing values, constant, ID-like and high-cardinality columns",
    "duplicates": "Duplicate rows, rows and ids shared between splits",
    "leakage": "Target leakage",
    "label_noise": "Label noise",
    "balance": "Class balance",
    "shift": "Train vs. test shift",
    "timeline": "Time column",
}

STYLE = """
body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.box{border-radius:6px;padding:.6em 1em;margin:.6em 0}
.block{background:#fde8e8;border-left:6px solid #c0392b}
.warn{background:#fff6e0;border-left:6px solid #e67e22}
.fine{background:#e9f7ef;border-left:6px solid #27ae60}
.finding{border:1px solid #ddd;border-radius:6px;padding:.5em 1em;margin:.6em 0}
.sev{font-weight:bold;text-transform:uppercase;font-size:.8em;padding:.1em .5em;border-radius:3px}
.sev-block{background:#c0392b;color:#fff}.sev-warn{background:#e67e22;color:#fff}
.sev-info{background:#7f8c8d;color:#fff}
code{background:#f4f4f4;padding:.05em .3em;border-radius:3px}
table{border-collapse:collapse;font-size:.9em} td,th{border:1px solid #ddd;padding:.2em .5em}
img{max-width:100%} details{margin:.3em 0} .muted{color:#777}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return (
        '<img alt="plot" src="data:image/png;base64,'
        + base64.b64encode(buffer.getvalue()).decode("ascii")
        + '">'
    )


def _barh(values: dict[str, float], title: str, xlabel: str, lines=(), limit: int = 20) -> str:
    import matplotlib.pyplot as plt

    items = list(values.items())[:limit][::-1]
    figure, axis = plt.subplots(figsize=(7, 0.28 * len(items) + 1.2))
    axis.barh([k for k, _ in items], [v for _, v in items], color="#5b8db8")
    for value, color in lines:
        axis.axvline(value, color=color, linestyle="--", linewidth=1)
    axis.set_title(title, fontsize=10)
    axis.set_xlabel(xlabel)
    axis.tick_params(labelsize=8)
    return _png(figure)


def charts(assessment: Assessment) -> list[tuple[str, str]]:
    """(caption, <img>) per chart the checks left data for."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data, out = assessment.charts, []
    leak = data.get("single_feature")
    if leak and leak["scores"]:
        out.append(
            (
                f"Each feature alone: cross-validated {leak['metric']} (dashed: warn and block "
                "thresholds). A bar near the block line is a feature that gives the answer away.",
                _barh(
                    leak["scores"],
                    f"Single-feature {leak['metric']}",
                    leak["metric"],
                    [(leak["warn"], "#e67e22"), (leak["block"], "#c0392b")],
                ),
            )
        )
    shift = data.get("shift")
    if shift and shift["effects"]:
        out.append(
            (
                "How differently each feature is distributed in test vs. train (KS statistic "
                "for numbers, Cramér's V for categories; dashed: warn threshold). Train-vs-test "
                f"classifier ROC AUC: {shift['adversarial_auc']:.2f} (0.5 = alike).",
                _barh(
                    shift["effects"],
                    "Train vs. test shift",
                    "effect size",
                    [(shift["warn"], "#e67e22")],
                ),
            )
        )
    noise = data.get("label_noise")
    if noise and noise["self_confidence"]:
        figure, axis = plt.subplots(figsize=(7, 2.6))
        conf, flagged = noise["self_confidence"], noise["flagged"]
        axis.hist(
            [c for c, f in zip(conf, flagged, strict=True) if not f],
            bins=40,
            alpha=0.7,
            label="kept",
        )
        axis.hist(
            [c for c, f in zip(conf, flagged, strict=True) if f],
            bins=40,
            alpha=0.8,
            color="#c0392b",
            label="flagged",
        )
        axis.set_xlabel("out-of-fold probability of the given label")
        axis.set_title("Label noise: how plausible each training label is", fontsize=10)
        axis.legend(fontsize=8)
        out.append(("Rows far left carry a label the model finds implausible.", _png(figure)))
    missing = data.get("missing_share")
    if missing:
        out.append(
            ("Share of empty cells per column.", _barh(missing, "Missing values", "share of rows"))
        )
    balance = data.get("balance")
    if balance:
        shares = {s: balance["positives"][s] / balance["rows"][s] for s in balance["rows"]}
        out.append(("Positive share per split.", _barh(shares, "Positive class share", "share")))
    return out


KEY_FIGURES = {
    "duplicate_rows": ("Repeated rows within a split", "{:,}"),
    "cross_split_duplicates": ("Valid/test rows also in an earlier split", "{:,}"),
    "conflicting_label_rows": ("Rows with identical features but the other label", "{:,}"),
    "missing_cells_share": ("Empty feature cells", "{:.1%}"),
    "max_single_feature_auc": ("Best single feature, cross-validated ROC AUC", "{:.3f}"),
    "max_single_feature_r2": ("Best single feature, cross-validated R2", "{:.3f}"),
    "quick_model_auc": ("Quick model on every feature, cross-validated ROC AUC", "{:.3f}"),
    "quick_model_r2": ("Quick model on every feature, cross-validated R2", "{:.3f}"),
    "cross_split_ids": ("Valid/test rows whose id is in an earlier split", "{:,}"),
    "label_noise_share": ("Training rows with an implausible label", "{:.1%}"),
    "positive_share": ("Positive class share", "{:.1%}"),
    "adversarial_auc": ("Train-vs-test classifier ROC AUC (0.5 = alike)", "{:.3f}"),
    "max_shift_effect": ("Largest per-feature shift (KS / Cramér's V)", "{:.3f}"),
}


def _signed(text: str) -> str:
    """No negative zero ('-0.000'): a figure that rounds to zero is zero."""
    return text[1:] if text.startswith("-") and not any(c in "123456789" for c in text) else text


def _key_figures(assessment: Assessment) -> str:
    rows = []
    honest = assessment.honest_estimate
    if honest:
        name = "ROC AUC" if honest["metric"] == "roc_auc" else "R2"
        rows.append(
            f"<tr><td><b>Honest estimate</b>: cross-validated {name} of a quick model on the "
            f"{len(honest['features'])} features the models will see</td>"
            f"<td><b>{honest['value']:.3f}</b></td></tr>"
        )
    rows += [
        f"<tr><td>{_e(label)}</td><td>{_e(_signed(fmt.format(assessment.figures[key])))}</td></tr>"
        for key, (label, fmt) in KEY_FIGURES.items()
        if assessment.figures.get(key) is not None
    ]
    return "<h2>Key figures</h2><table>" + "".join(rows) + "</table>" if rows else ""


def _leak_rounds(assessment: Assessment) -> str:
    """One line per round of the quick model: what it reached and what was set aside."""
    rounds = assessment.figures.get("leakage_rounds") or []
    if not rounds:
        return ""
    metric = "auc" if "auc" in rounds[0] else "r2"
    rows = []
    for r in rounds:
        value = r.get(metric)
        without = ", ".join(
            f"{_e(c)} {v:.3f}" for c, v in (r.get("without") or {}).items() if v is not None
        )
        rows.append(
            f"<tr><td>{r['round']}</td><td>{r['features']}</td>"
            f"<td>{'-' if value is None else f'{value:.3f}'}</td>"
            f"<td>{_e(', '.join(r['set_aside_before']) or '-')}</td>"
            f"<td>{_e(without) or '-'}</td><td>{_e(r.get('culprit') or '-')}</td></tr>"
        )
    return (
        "<h2>Leak rounds</h2><p>A quick model on every feature not yet set aside (plus the "
        "differences of time-column pairs); while it reaches the block level, the feature "
        "whose removal takes the leak away at the least cost (or a group of redundant "
        "features, removed together) is the culprit, set aside, and the rest checked again; "
        "then the leak's weaker stand-ins (docs/assess.md).</p>"
        "<table><tr><th>round</th><th>features</th><th>"
        + ("ROC AUC" if metric == "auc" else "R2")
        + "</th><th>set aside before</th><th>without each top feature</th><th>culprit</th>"
        "</tr>" + "".join(rows) + "</table>"
    )


def _finding(finding: Finding) -> str:
    status = "" if finding.status == "open" else f" <span class='muted'>({_e(finding.note)})</span>"
    rows = "".join(
        f"<li>{_e(split)}: {_e(', '.join(map(str, ids[:20])))}</li>"
        for split, ids in finding.example_rows.items()
    )
    evidence = html.escape(json.dumps(finding.evidence, default=str, indent=1))
    return (
        f"<div class='finding'><span class='sev sev-{finding.severity}'>{finding.severity}</span> "
        f"<code>{_e(finding.id)}</code>{status}<p>{_e(finding.title)}</p>"
        f"<p><b>What to do:</b> {_e(finding.action)}</p>"
        + (
            f"<p><b>Example rows</b> (id or row number in the split):</p><ul>{rows}</ul>"
            if rows
            else ""
        )
        + f"<details><summary>Evidence</summary><pre>{evidence}</pre></details></div>"
    )


def render_html(assessment: Assessment, title: str, accept_file: str) -> str:
    blockers = assessment.blocking
    blocking_ids = {f.id for f in blockers}
    look = [
        f
        for f in assessment.findings
        if f.status == "open" and f.severity == "warn" and f.id not in blocking_ids
    ]
    noted = [f for f in assessment.findings if f not in blockers and f not in look]
    troubled = {f.check for f in blockers + look}
    # "Fine" only for checks that ran, found nothing to look at and were not skipped (a
    # regression task has no label noise check; a missing column stops the rest).
    skipped = {f.check for f in assessment.findings if f.id.endswith(":skipped")}
    not_run = [c for c in CHECK_NAMES if c not in assessment.seconds or c in skipped]
    clean = [CHECK_NAMES[c] for c in CHECK_NAMES if c not in troubled and c not in not_run]
    handled = [f for f in assessment.findings if f.status in ("accepted", "remedied")]

    def ran(check: str) -> str:
        return "skipped" if check in skipped else "yes" if check in assessment.seconds else "no"

    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>",
        f"<style>{STYLE}</style></head><body><h1>{_e(title)}</h1>",
    ]
    rows = assessment.figures.get("rows", {})
    parts.append(
        "<p class='muted'>"
        + ", ".join(f"{_e(s)} {n:,} rows" for s, n in rows.items())
        + f"; {assessment.figures.get('features', 0)} features. Blocking severities: "
        + _e(", ".join(assessment.block_on))
        + ".</p>"
    )
    if blockers:
        parts.append(
            "<div class='box block'><b>Blocks the run ("
            + str(len(blockers))
            + "):</b><ul>"
            + "".join(f"<li><code>{_e(f.id)}</code>: {_e(f.title)}</li>" for f in blockers)
            + f"</ul>Fix each, or accept it with a reason under <code>accept:</code> in "
            f'<code>{_e(accept_file)}</code>, e.g. <code>- {{id: "{_e(blockers[0].id)}", '
            'reason: "..."}</code>.</div>'
        )
    else:
        parts.append("<div class='box fine'><b>Nothing blocks the run.</b></div>")
    if look:
        parts.append(
            "<div class='box warn'><b>Worth a look ("
            + str(len(look))
            + "):</b><ul>"
            + "".join(f"<li><code>{_e(f.id)}</code>: {_e(f.title)}</li>" for f in look)
            + "</ul></div>"
        )
    parts.append(
        "<div class='box fine'><b>Fine:</b> "
        + _e("; ".join(clean) or "none of the checks")
        + (
            f". Also {len(noted)} informational, accepted or remedied findings below."
            if noted
            else "."
        )
        + "</div>"
    )
    if handled:
        parts.append(
            "<div class='box'><b>Accepted or remedied ("
            + str(len(handled))
            + "):</b><ul>"
            + "".join(f"<li><code>{_e(f.id)}</code>: {_e(f.note or '')}</li>" for f in handled)
            + "</ul></div>"
        )
    if not_run:
        parts.append(
            "<div class='box'><b>Not checked:</b> "
            + _e("; ".join(CHECK_NAMES[c] for c in not_run))
            + " (see the findings below for why).</div>"
        )
    parts.append(_key_figures(assessment))
    parts.append(_leak_rounds(assessment))
    if assessment.remedies:
        parts.append(
            "<h2>Remedies applied</h2><ul>"
            + "".join(
                f"<li><code>{_e(r['finding'])}</code>: {_e(r['remedy'])}</li>"
                for r in assessment.remedies
            )
            + "</ul>"
        )
    if assessment.unused_accepts:
        parts.append(
            "<p class='muted'>Accepted ids that matched no finding this run: "
            + _e(", ".join(assessment.unused_accepts))
            + ".</p>"
        )
    parts.append("<h2>Findings</h2>")
    parts += [_finding(f) for f in assessment.findings] or ["<p>No findings.</p>"]
    parts.append("<h2>Pictures</h2>")
    for caption, image in charts(assessment):
        parts.append(f"<figure>{image}<figcaption>{_e(caption)}</figcaption></figure>")
    parts.append("<h2>Sampling</h2>")
    parts.append(
        "<ul>" + "".join(f"<li>{_e(s)}</li>" for s in assessment.sampling) + "</ul>"
        if assessment.sampling
        else "<p>Every statistic used every row (the data is smaller than assess.sample_rows).</p>"
    )
    parts.append(
        "<p class='muted'>Counts of duplicates, missing values and columns always use every "
        "row.</p>"
    )
    parts.append(
        "<h2>Checks run</h2><table><tr><th>check</th><th>finding ids</th><th>ran</th></tr>"
        + "".join(
            f"<tr><td>{_e(CHECK_NAMES[c])}</td><td>"
            + _e(", ".join(k for k, (fam, _) in FINDING_KINDS.items() if fam == c))
            # No seconds here: the report is git-tracked and must not change between two
            # runs of the same data (timings go to logs/assess-timings.json).
            + f"</td><td>{ran(c)}</td></tr>"
            for c in CHECK_NAMES
        )
        + "</table></body></html>"
    )
    return "\n".join(parts)
