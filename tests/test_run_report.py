"""The business report (reports/run.html, issue 17 item 1): its figures come from the value
model and the run's records, it is byte-stable, and it renders in a real Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT
from valuegate.business import value_model
from valuegate.run_report import RunRecords, build_report
from valuegate.run_report.analysis import (
    metric_point_worth,
    segment_values,
    tuning_stop,
    value_intervals,
)
from valuegate.run_report.page import about

N = 200
POINT = 1 / 6  # the example's break-even probability: tn 300 / (300 + 1500)


def _figure(value: float) -> str:
    return f"{round(value):,d} EUR"


def synthetic_run(config, tuned: bool = True) -> RunRecords:
    """A finished small run's records on 200 synthetic validation rows: a dummy and a
    linear baseline, one candidate (tuned when `tuned`), the linear baseline final."""
    rng = np.random.default_rng(7)
    y = (rng.uniform(size=N) < 0.3).astype(np.int8)
    purpose = np.where(rng.uniform(size=N) < 0.25, "car", "furniture")
    duration = rng.integers(6, 60, size=N).astype(float)
    # Linear misses the bad "car" applicants: a segment that loses money.
    signal = np.where(purpose == "car", 0.0, 0.45)
    scores = {
        "dummy": np.full(N, 0.3),
        "linear": np.clip(y * signal + rng.uniform(0, 0.5, size=N), 0, 1),
        "xgboost": np.clip(y * 0.08 + rng.uniform(0, 0.6, size=N), 0, 1),
    }
    points = {"dummy": 0.15, "linear": POINT, "xgboost": POINT}
    model = value_model(config)
    values = {n: model.value_at_point(y, s, points[n]) for n, s in scores.items()}
    roles = {"dummy": "baseline", "linear": "baseline", "xgboost": "candidate"}
    models = {}
    for name, score in scores.items():
        rec = {
            "role": roles[name],
            "value_per_period": values[name],
            "uplift": values[name] - values["linear"],
            "constraints_met": True,
            "value_at_0_5": model.value_at_point(y, score, 0.5),
        }
        rec.update({"acts": "always"} if name == "dummy" else {"threshold": points[name]})
        models[name] = rec
    reason = (
        "xgboost does not beat linear by enough: its uplift is "
        f"{values['xgboost'] - values['linear']:,.0f} EUR/month, the lower bound is below the "
        "5,000 EUR/month that matters: tuning not allowed"
    )
    evaluation = {
        "rows": N,
        "best_baseline": "linear",
        "final_model": "linear",
        "final_reason": "linear (baseline) goes forward: no candidate passed the gate",
        "models": models,
        "final": {
            "model": "linear",
            "valid": {**models["linear"], "threshold": POINT},
            "test": {"rows": N, "value_per_period": 117000.0, "roc_auc": 0.78},
        },
    }
    gate = {
        "best_baseline": "linear",
        "passed": [],
        "candidates": {"xgboost": {"passed": False, "reason": reason}},
    }
    trials = {}
    tune = {"studies": {}, "skipped_because": [reason]}
    if tuned:
        trials["xgboost"] = pd.DataFrame(
            {
                "trial": [0, 1, 2, 3, 4, 5],
                "state": ["complete", "complete", "pruned", "complete", "complete", "complete"],
                "value_per_period": [50000.0, 58000.0, np.nan, 58500.0, 57000.0, 58900.0],
                "best_so_far": [50000.0, 58000.0, 58000.0, 58500.0, 58500.0, 58900.0],
            }
        )
        tune = {
            "studies": {
                "xgboost": {
                    "best_cv_value_per_period": 58900.0,
                    "trials_complete": 5,
                    "trials_pruned": 1,
                    "stop_reason": "no gain of 1,000 in the last 4 trials",
                    "best_params": {"max_depth": 3},
                }
            }
        }
    curve = model.curve(y, scores["linear"])
    fits = {
        name: {
            "estimator": name if name != "linear" else "linear",
            "params": {"n_estimators": 300} if name == "xgboost" else {},
            "operating_point": {"value": points[name], "interval": [0.11, 0.23]},
        }
        for name in scores
    }
    return RunRecords(
        config=config,
        evaluation=evaluation,
        gate=gate,
        tune=tune,
        trials=trials,
        assessment={
            "blocked": False,
            "findings": {"info": 2, "warn": 1, "block": 0, "accepted": 0, "remedied": 0},
            "figures": {"rows": {"train": 600, "valid": N, "test": N}},
            "findings_detail": [
                {"severity": "warn", "status": "open", "title": "duration is shifted in test"}
            ],
        },
        deploy={
            "model": "linear",
            "packaged": True,
            "refused": False,
            "reason": "linear beats no champion: packaged as v1",
            "good_enough_value_per_period": 90000.0,
            "good_enough_met": True,
            "champion_after": "v1",
        },
        registry={
            "champion": "v1",
            "history": ["v1"],
            "versions": [
                {
                    "version": "v1",
                    "model": "linear",
                    "status": "ok",
                    "created": "2026-11-30T07:29:09Z",
                    "test_value_per_period": 117000.0,
                }
            ],
        },
        y_valid=y,
        amount_valid=None,
        features_valid=pd.DataFrame({"duration_in_month": duration, "purpose": purpose}),
        predictions=scores,
        fits=fits,
        curve=pd.DataFrame(
            {"threshold": curve["threshold"], "value_per_period": curve["value_per_period"]}
        ),
        costs={
            name: {"model_bytes": size}
            for name, size in {"dummy": 19087, "linear": 217409, "xgboost": 619103}.items()
        },
    )


@pytest.fixture(scope="module")
def config():
    from valuegate.config import compose_config
    from valuegate.config.loading import validate

    return validate(compose_config(ROOT / "conf", ["data=german_credit"]))


@pytest.fixture(scope="module")
def records(config) -> RunRecords:
    return synthetic_run(config)


@pytest.fixture(scope="module")
def page(records) -> str:
    return build_report(records)


def text_of(html: str) -> str:
    """The page's visible text, tags dropped, whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_page_shows_every_models_value_the_decision_and_the_deployment(records, page):
    text = text_of(page)
    for name, rec in records.evaluation["models"].items():
        assert name in text
        assert _figure(rec["value_per_period"]) in text
    assert "117,000 EUR/month" in text  # the test value
    assert records.gate["candidates"]["xgboost"]["reason"] in text
    assert "linear (baseline) goes forward" in text
    assert "deployed as v1" in text
    assert 'href="assessment.html"' in page
    assert "duration is shifted in test" in text
    # the objective in words: the decision, each outcome's worth, the volume, the bars
    assert "reject the application" in text and "-1,500 EUR" in text
    assert "2,000 cases per month" in text and "5,000 EUR/month" in text
    # the cost of complexity: model sizes, deterministic
    assert "220 kB" in text and "620 kB" in text


def test_a_metric_point_is_worth_what_the_value_model_says(config):
    """At a point with tp 40, fn 20, fp 60, tn 80 of 200 rows: one recall point moves 0.6
    positives (of 60) per 200 rows from fn (-1,500) to tp (0); one precision point (40/100
    -> 41%) removes 100 - 40/0.41 alarms, each fp (0) -> tn (300)."""
    model = value_model(config)
    y = np.r_[np.ones(60), np.zeros(140)]
    scores = np.r_[np.ones(40), np.zeros(20), np.ones(60), np.zeros(80)]
    worth = metric_point_worth(model, y, scores, 0.5)
    per_period = 2000 / 200
    assert worth["recall_point"] == pytest.approx(0.01 * 60 * 1500 * per_period)
    fewer = 60 - (40 / 0.41 - 40)
    assert worth["precision_point"] == pytest.approx(fewer * 300 * per_period)
    assert (worth["tp"], worth["fp"], worth["fn"]) == (40, 60, 20)


def test_the_page_states_the_metric_point_worth(records, page):
    model = value_model(records.config)
    worth = metric_point_worth(model, records.y_valid, records.predictions["linear"], POINT)
    text = text_of(page)
    assert f"One more point of recall (now {worth['recall']:.1%})" in text
    assert f"about {_figure(about(worth['recall_point']))}/month" in text
    assert f"about {_figure(about(worth['precision_point']))}/month" in text


def test_segments_put_the_largest_loss_first_and_add_up(records):
    model = value_model(records.config)
    seg = segment_values(
        model, records.features_valid, records.y_valid, records.predictions["linear"], POINT
    )
    first = seg["segments"][0]
    assert (first["feature"], first["segment"]) == ("purpose", "car")  # the missed bad ones
    assert first["value_per_period"] < 0 and first["regret"] > 0
    values = [s["value_per_period"] for s in seg["segments"]]
    assert values == sorted(values)
    # only what is worth less than the average case; "furniture" is worth more
    assert all(s["per_case"] < seg["per_case"] for s in seg["segments"])
    assert ("purpose", "furniture") not in {(s["feature"], s["segment"]) for s in seg["segments"]}
    car = first["per_case"] * first["rows"]
    total = model.value_at_point(records.y_valid, records.predictions["linear"], POINT)
    furniture = total * N / 2000 - car  # the rest of the value, per case summed
    assert furniture / (N - first["rows"]) > seg["per_case"]
    assert first["value_per_period"] == pytest.approx(car / N * 2000)


def test_tuning_stop_counts_like_the_stop_rule(records, page):
    """A gain counts only when it adds min_improvement over the last gain: 58,500 and
    58,900 add less than 1,000 over 58,000, so trial 1 is where value stopped coming."""
    stop = tuning_stop(records.trials["xgboost"], 1000.0)
    assert stop["last_gain_trial"] == 1 and stop["after"] == 4
    assert "stopped adding value at trial #1" in text_of(page)


def test_intervals_refuse_predictions_the_evaluation_did_not_value(records):
    model = value_model(records.config)
    preds = {"linear": records.predictions["linear"]}
    with pytest.raises(ValueError, match="the evaluation recorded 1"):
        value_intervals(model, records.y_valid, preds, {"linear": POINT}, {"linear": 1.0})
    ok = value_intervals(
        model,
        records.y_valid,
        preds,
        {"linear": POINT},
        {"linear": records.evaluation["models"]["linear"]["value_per_period"]},
    )["linear"]
    assert ok["low"] < ok["value_per_period"] < ok["high"]


def test_the_page_is_byte_stable_small_and_offline(records, page):
    assert build_report(records) == page  # no timestamp, no random id
    assert len(page.encode()) < 2_000_000
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing fetched
    assert "<script" not in page
    assert "latency per row</th>" not in page  # timings are noise: a hand run's only


def test_a_timed_report_shows_fit_time_latency_and_parts(config):
    records = synthetic_run(config, tuned=False)
    records.timed = True
    for name, cost in records.costs.items():
        cost.update(fit_seconds=0.42, latency_ms_per_row=1.3, size=f"{name} parts")
    text = text_of(build_report(records))
    assert "0.42 s" in text and "1.3 ms" in text and "xgboost parts" in text


def test_a_run_without_tuning_says_why(config):
    page = build_report(synthetic_run(config, tuned=False))
    assert "Tuning did not run" in text_of(page)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
INSTALL = "apt-get install -y chromium (Debian/Ubuntu; .ci/run does this when it can)"


def _chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",  # CI containers run as root
        "--disable-gpu",
        "--hide-scrollbars",
        f"--user-data-dir={tmp / 'profile'}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason=f"Chromium is not installed: {INSTALL}")
def test_the_page_renders_in_chromium(page, tmp_path):
    path = tmp_path / "run.html"
    path.write_text(page)
    dom = _chromium("--dump-dom", path.as_uri(), tmp=tmp_path)
    assert dom.returncode == 0, dom.stderr
    text = text_of(dom.stdout)
    assert len(text) > 2000  # not blank
    assert "The model that goes forward is linear" in text
    assert "117,000 EUR/month" in text and "no candidate passed the gate" in text
    assert "svg" in dom.stdout and "data:image/png;base64" in dom.stdout
    shot = ROOT / "reports" / "run-screenshot.png"
    shot.parent.mkdir(exist_ok=True)
    done = _chromium(f"--screenshot={shot}", "--window-size=1100,2000", path.as_uri(), tmp=tmp_path)
    assert done.returncode == 0 and shot.is_file(), done.stderr
    # Not blank: a blank page is one colour.
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.std() > 0.05


def test_parts_and_timings_of_fitted_pipelines():
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from valuegate.run_report.timings import measure, parts

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    y = (x["a"] > 0).astype(int).to_numpy()
    linear = make_pipeline(LogisticRegression()).fit(x, y)
    assert parts(linear) == "3 coefficients"
    forest = make_pipeline(RandomForestClassifier(n_estimators=3, random_state=0)).fit(x, y)
    assert parts(forest).startswith("3 trees, ")
    cost = measure(forest, x, y, x)
    assert cost["fit_seconds"] > 0 and cost["latency_ms_per_row"] > 0


@pytest.mark.slow
def test_the_report_stage_and_command_on_a_real_run(ran_project, tmp_path):
    """`dvc repro` wrote reports/run.html from the run's own records (the shared full run
    of tests/conftest.py), and the command writes the same bytes. (--timings refits every
    model: left to the unit tests of run_report.timings.)"""
    import json

    from tests.conftest import run

    page = (ran_project / "reports" / "run.html").read_bytes()
    metrics = json.loads((ran_project / "metrics" / "evaluate.json").read_text())
    text = text_of(page.decode())
    for name, rec in metrics["models"].items():
        assert f"{name}" in text and _figure(rec["value_per_period"]) in text
    assert _figure(metrics["final"]["test_value_per_period"]) + "/month" in text
    again = tmp_path / "run.html"
    run(["valuegate", "report", "--output", str(again)], ran_project)
    assert again.read_bytes() == page


def test_a_regression_run_renders_with_offsets():
    """The diabetes preset: operating points are offsets, value is a cost, and a metric
    point is one unit less error beyond the tolerance."""
    from valuegate.config import compose_config
    from valuegate.config.loading import validate
    from valuegate.evaluation import regression_value_curve

    config = validate(compose_config(ROOT / "conf", ["+experiment=diabetes"]))
    model = value_model(config)
    rng = np.random.default_rng(3)
    y = rng.uniform(25, 350, size=N)
    preds = {"dummy": np.full(N, y.mean()), "linear": y + rng.normal(0, 40, size=N)}
    points = {"dummy": 0.0, "linear": 12.0}
    models = {
        n: {
            "role": "baseline",
            "value_per_period": model.value_at_point(y, p, points[n]),
            "offset": points[n],
            "constraints_met": True,
            "value_at_offset_0": model.value_at_point(y, p, 0.0),
        }
        for n, p in preds.items()
    }
    for rec in models.values():
        rec["uplift"] = rec["value_per_period"] - models["linear"]["value_per_period"]
    curve = regression_value_curve(model, y, preds["linear"])
    records = RunRecords(
        config=config,
        evaluation={
            "rows": N,
            "best_baseline": "linear",
            "final_model": "linear",
            "final_reason": "linear (baseline) goes forward",
            "models": models,
            "final": {
                "model": "linear",
                "valid": {**models["linear"], "uplift": 0.0},
                "test": {"rows": N, "value_per_period": -21000.0, "r2": 0.41},
            },
        },
        gate={"best_baseline": "linear", "passed": [], "candidates": {}},
        tune=None,
        trials={},
        assessment=None,
        deploy=None,
        registry={"champion": None, "history": [], "versions": []},
        y_valid=y,
        amount_valid=None,
        features_valid=pd.DataFrame({"bmi": rng.normal(26, 4, size=N)}),
        predictions=preds,
        fits={n: {"operating_point": {"value": points[n]}} for n in preds},
        curve=pd.DataFrame(curve),
    )
    text = text_of(build_report(records))
    worth = metric_point_worth(model, y, preds["linear"], 12.0)
    assert worth["one_unit_less_error"] > 0
    assert f"about {_figure(about(worth['one_unit_less_error']))}/month" in text
    assert "chosen offset 12" in text or "offset +12" in text
    assert "-21,000 EUR/month" in text and "R² 0.410" in text
