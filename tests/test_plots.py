"""`dvc plots show`: one overlaid chart per curve, nothing that errors for the task, and a
page that renders offline (Vega inlined by the project's HTML template)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT, run
from valuegate.plots import PANELS, curves_table


def _binary_plots():
    return {
        "value_threshold": {
            "dummy": {"threshold": [0.9, 0.1], "value_per_period": [0.0, -5.0]},
            "xgboost": {"threshold": [0.9, 0.5, 0.1], "value_per_period": [0.0, 7.0, -3.0]},
        },
        "roc": {"xgboost": {"fpr": [0.0, 0.0, 1.0], "tpr": [0.0, 0.5, 1.0]}},
        "calibration": {
            "xgboost": {"mean_predicted": [0.2], "fraction_positive": [0.1], "count": [5]}
        },
    }


def test_curves_table_stacks_every_model_with_named_panels():
    table = curves_table(_binary_plots(), "EUR/month")
    assert list(table.columns) == ["panel", "panel_index", "model", "step", "x", "y"]
    value = table[table.panel == "value per period (EUR/month) vs. decision threshold"]
    assert sorted(value.model.unique()) == ["dummy", "xgboost"]
    assert value[value.model == "xgboost"].y.tolist() == [0.0, 7.0, -3.0]
    assert value.panel_index.unique().tolist() == [0]  # the money first
    # ROC is not a function of x: two points at fpr 0, kept in curve order by `step`
    roc = table[table.panel.str.startswith("ROC")]
    assert roc.step.tolist() == [0, 1, 2] and roc.y.tolist() == [0.0, 0.5, 1.0]
    assert table.panel.nunique() == 3  # only the curves that exist: no PR here


def test_curves_table_regression_has_only_the_offset_curve():
    curve = {"offset": [-1.0, 0.0, 1.0], "value_per_period": [1, 3, 2]}
    plots = {"value_offset": {"linear": curve}}
    table = curves_table(plots, "USD/week")
    assert table.panel.unique().tolist() == ["value per period (USD/week) vs. prediction offset"]
    assert curves_table({}, "EUR/month").empty


def test_every_panel_reads_columns_the_evaluation_writes():
    from valuegate.evaluation import curves

    written = {k: set(v) for k, v in curves([0, 1, 1, 0], [0.1, 0.8, 0.6, 0.3]).items()}
    for kind, (_title, x, y) in PANELS.items():
        if kind in written:
            assert {x, y} <= written[kind], kind


def test_dvc_yaml_draws_each_plot_once_with_the_projects_templates():
    import yaml

    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    top = [next(iter(item)) for item in spec["plots"]]
    assert top == ["plots/evaluate/curves.csv", "plots/tune"]
    for stage in spec["stages"].values():
        assert "plots" not in stage.get("do", stage)  # declared twice = drawn twice
    for item in spec["plots"]:
        (props,) = item.values()
        assert (ROOT / ".dvc" / "plots" / f"{props['template']}.json").is_file()
    assert "html_template = plots/page.html" in (ROOT / ".dvc" / "config").read_text()


@pytest.mark.slow
def test_dvc_plots_show_renders_offline(ran_project: Path, tmp_path: Path):
    project = tmp_path / "project"
    shutil.copytree(ran_project, project, symlinks=True)
    shown = json.loads(run(["dvc", "plots", "show", "--json"], project).stdout)
    assert not shown.get("errors"), shown.get("errors")  # e.g. no value_offset in a binary run
    # one chart of every model, plus one per tuned candidate
    assert "plots/evaluate/curves.csv" in shown["data"]
    assert all(k.startswith("plots/tune/") for k in shown["data"] if not k.endswith("curves.csv"))
    run(["dvc", "plots", "show"], project)
    page = (project / "dvc_plots" / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\bsrc\s*=", page), "a script loaded from elsewhere"
    for library in ("vega@5", "vega-lite@5", "vega-embed@6"):
        assert f'data-library="{library}' in page
    assert "vegaEmbed(" in page
    assert "value per period (EUR/month) vs. decision threshold" in page
    for model in ("dummy", "linear", "xgboost"):
        assert f'"model": "{model}"' in page
