"""The report's charts: value bars as inline SVG (their figures stay text, readable and
searchable), curves as PNG drawn by matplotlib (Agg) and inlined as base64. Both are
byte-identical for identical inputs: no timestamps, no random ids, no version stamp."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import numpy as np

ROLE_COLOURS = {"baseline": "#8a8f98", "candidate": "#3b73b9", "tuned": "#7b4fb3"}
FINAL_COLOUR = "#1e8c4e"


def _e(value: Any) -> str:
    return html.escape(str(value))


def value_bars(
    rows: list[dict[str, Any]],
    money,
    lines: list[tuple[float, str]] = (),
    width: int = 900,
) -> str:
    """A horizontal bar per model: value per period from 0, its interval as a whisker.

    `rows`: {name, role, value_per_period, low, high, final (bool)}; `money(x)` formats a
    figure; `lines`: (value, label) drawn dashed across every bar (a bar to clear).
    """
    label_w, right_pad, row_h, top = 230, 140, 30, 26
    values = [v for r in rows for v in (r["value_per_period"], r["low"], r["high"])]
    values += [v for v, _ in lines] + [0.0]
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    lo, hi = lo - 0.03 * span, hi + 0.03 * span
    plot_w = width - label_w - right_pad

    def x(v: float) -> float:
        return round(label_w + (v - lo) / (hi - lo) * plot_w, 1)

    height = top + row_h * len(rows) + 24
    parts = [
        f'<svg class="bars" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        'aria-label="value per period of every model">',
        f'<line x1="{x(0)}" y1="{top - 6}" x2="{x(0)}" y2="{height - 18}" stroke="#444"/>',
        f'<text x="{x(0)}" y="{height - 4}" text-anchor="middle" class="axis">0</text>',
    ]
    for value, label in lines:
        parts.append(
            f'<line x1="{x(value)}" y1="{top - 6}" x2="{x(value)}" y2="{height - 18}" '
            'stroke="#c0392b" stroke-dasharray="5,4"/>'
            f'<text x="{x(value)}" y="{top - 10}" text-anchor="middle" class="axis">'
            f"{_e(label)} {_e(money(value))}</text>"
        )
    for i, row in enumerate(rows):
        y = top + i * row_h
        colour = FINAL_COLOUR if row.get("final") else ROLE_COLOURS.get(row["role"], "#3b73b9")
        v, low, high = row["value_per_period"], row["low"], row["high"]
        left, right = sorted((x(0), x(v)))
        name = row["name"] + (" (final)" if row.get("final") else "")
        parts += [
            f'<text x="{label_w - 8}" y="{y + 19}" text-anchor="end" class="name">'
            f"{_e(name)}</text>",
            f'<rect x="{left}" y="{y + 6}" width="{round(right - left, 1)}" height="{row_h - 12}" '
            f'fill="{colour}" opacity="0.85"/>',
            f'<line x1="{x(low)}" y1="{y + 15}" x2="{x(high)}" y2="{y + 15}" stroke="#111"/>',
            f'<line x1="{x(low)}" y1="{y + 9}" x2="{x(low)}" y2="{y + 21}" stroke="#111"/>',
            f'<line x1="{x(high)}" y1="{y + 9}" x2="{x(high)}" y2="{y + 21}" stroke="#111"/>',
            f'<text x="{width - right_pad + 8}" y="{y + 19}" class="fig">{_e(money(v))}</text>',
        ]
    parts.append("</svg>")
    return "".join(parts)


def png_img(figure) -> str:
    """The figure as an inline <img> (a PNG data URL); closes the figure."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    # No "Software" stamp: the page must not change when only matplotlib's version does.
    figure.savefig(buffer, format="png", dpi=80, metadata={"Software": None})
    plt.close(figure)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="chart" src="data:image/png;base64,{encoded}">'


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) index of each run of True in `mask`."""
    runs, start = [], None
    for i, flag in enumerate(mask):
        if flag and start is None:
            start = i
        if not flag and start is not None:
            runs.append((start, i - 1))
            start = None
    if start is not None:
        runs.append((start, len(mask) - 1))
    return runs


def value_curve(
    xs: np.ndarray,
    values: np.ndarray,
    feasible: np.ndarray,
    point: float,
    point_value: float,
    kind: str,
    title: str,
    unit: str,
    choice_interval: tuple[float, float] | None = None,
) -> str:
    """Value per period vs. threshold (or offset), the chosen point marked, the points where
    a constraint fails shaded red, the out-of-fold choice's interval shaded grey."""
    plt = pyplot()
    order = np.argsort(xs, kind="mergesort")
    xs, values, feasible = xs[order], values[order], feasible[order]
    figure, axis = plt.subplots(figsize=(9, 3.6))
    axis.plot(xs, values, color="#3b73b9", linewidth=1.6, label=f"value per period ({unit})")
    first = True
    for a, b in _runs(~feasible):
        left = xs[a] if a == 0 else (xs[a - 1] + xs[a]) / 2
        right = xs[b] if b == len(xs) - 1 else (xs[b] + xs[b + 1]) / 2
        axis.axvspan(
            left,
            right,
            color="#c0392b",
            alpha=0.15,
            linewidth=0,
            label="a constraint fails" if first else None,
        )
        first = False
    if choice_interval is not None:
        axis.axvspan(
            *choice_interval,
            color="#777",
            alpha=0.15,
            linewidth=0,
            label="90% of the out-of-fold choices",
        )
    axis.axvline(point, color="#1e8c4e", linestyle="--", linewidth=1.4)
    axis.plot([point], [point_value], "o", color="#1e8c4e", label=f"chosen {kind} {point:.3g}")
    axis.axhline(0, color="#444", linewidth=0.6)
    axis.set_xlabel(kind)
    axis.set_ylabel(unit)
    axis.set_title(title, fontsize=10)
    axis.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    axis.legend(fontsize=8, loc="best")
    figure.tight_layout()
    return png_img(figure)


def tuning_history(
    trials: np.ndarray,
    values: np.ndarray,
    best: np.ndarray,
    last_gain_trial: int | None,
    title: str,
    unit: str,
) -> str:
    """Each trial's cross-validated value, the best so far, and the last trial that added
    value enough (dashed)."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(9, 3.2))
    done = ~np.isnan(values)
    axis.plot(trials[done], values[done], "o", color="#3b73b9", markersize=4, label="trial")
    axis.step(trials, best, where="post", color="#1e8c4e", label="best so far")
    if last_gain_trial is not None:
        axis.axvline(
            last_gain_trial,
            color="#c0392b",
            linestyle="--",
            linewidth=1.2,
            label=f"last trial that added value (#{last_gain_trial})",
        )
    axis.set_xlabel("trial")
    axis.set_ylabel(unit)
    axis.set_title(title, fontsize=10)
    axis.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    axis.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    return png_img(figure)
