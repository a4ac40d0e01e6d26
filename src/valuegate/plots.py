"""What `dvc plots show` draws: one long table of every model's validation curves.

The evaluate stage keeps one CSV per plot kind per model (`plots/evaluate/<kind>/<model>.csv`,
read by the run report and the tests); DVC draws one plot per *file*, so those files would
give one chart per model, each under the same title. `curves_table` stacks them into
`plots/evaluate/curves.csv` (columns panel, panel_index, model, step, x, y), which the
top-level `plots:` section of dvc.yaml draws once with the project's template
`.dvc/plots/valuegate_curves.json`: one panel per curve, every model overlaid in its own
colour, the legend naming the models.
Only the curves the task has are written, so no plot errors for a binary or a regression run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

CURVES_FILE = "curves.csv"
"""Under plots/evaluate/: the one file dvc.yaml declares as a plot."""

# kind -> (panel title, x column, y column); the panel title names both axes (the facet
# template has no per-panel axis titles). "{unit}" is the objective's currency/period.
PANELS: dict[str, tuple[str, str, str]] = {
    "value_threshold": (
        "value per period ({unit}) vs. decision threshold",
        "threshold",
        "value_per_period",
    ),
    "value_offset": (
        "value per period ({unit}) vs. prediction offset",
        "offset",
        "value_per_period",
    ),
    "roc": ("ROC: true positive rate vs. false positive rate", "fpr", "tpr"),
    "pr": ("precision vs. recall", "recall", "precision"),
    "calibration": (
        "calibration: fraction positive vs. mean predicted probability",
        "mean_predicted",
        "fraction_positive",
    ),
}


def curves_table(
    plots: Mapping[str, Mapping[str, Mapping[str, Sequence[float]]]], unit: str
) -> pd.DataFrame:
    """`plots` (kind -> model -> column -> values, as `evaluation.evaluate_models` returns)
    -> one long table: `panel` (the curve, named with its axes), `panel_index` (the panels'
    order on the page: the value curve first), `model`, `step` (the point's order along its
    curve: ROC and PR curves are not functions of x), `x`, `y`.
    `unit` is the money unit shown in the value panel's name, e.g. "EUR/month".
    Kinds without a panel are left out; models keep their input order."""
    frames = []
    for index, kind in enumerate(k for k in PANELS if k in plots):
        per_model = plots[kind]
        title, x, y = PANELS[kind]
        for model, columns in per_model.items():
            n = len(columns[x])
            frames.append(
                pd.DataFrame(
                    {
                        "panel": [title.format(unit=unit)] * n,
                        "panel_index": [index] * n,
                        "model": [model] * n,
                        "step": range(n),
                        "x": columns[x],
                        "y": columns[y],
                    }
                )
            )
    if not frames:
        return pd.DataFrame(columns=["panel", "panel_index", "model", "step", "x", "y"])
    return pd.concat(frames, ignore_index=True)
