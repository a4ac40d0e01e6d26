"""`valuegate backtest`: retraining policies replayed in money (retrain/policy.py,
retrain/backtest.py, docs/retrain.md "Backtest")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from valuegate.config.loading import validate
from valuegate.config.schema import PolicyConfig
from valuegate.errors import ConfigError
from valuegate.retrain.policy import decide

ROOT = Path(__file__).resolve().parents[1]
UNIT = "USD/month"


def _record(at_risk=None, drifted=()):
    return {"value": {"at_risk": at_risk}, "drift": {"drifted": list(drifted)}}


def _risk(value, low, high):
    return {"value_per_period": value, "low": low, "high": high, "confidence": 0.95}


# --------------------------------------------------------------------------- policies


def test_policy_triggers_decide_from_the_monitoring_record():
    never = PolicyConfig(trigger="never")
    assert not decide(never, 0, _record(_risk(-9e9, -9e9, -9e9), ["x"]), UNIT).retrain

    every2 = PolicyConfig(trigger="every", n=2)
    assert [decide(every2, i, _record(), UNIT).retrain for i in range(4)] == [
        False,
        True,
        False,
        True,
    ]

    var = PolicyConfig(trigger="value_at_risk", threshold=1000)
    # sure of a loss beyond 1,000: the upper bound is below -1,000
    fired = decide(var, 0, _record(_risk(-5000, -8000, -2000)), UNIT)
    assert fired.retrain and "-2,000" in fired.why
    # a loss of 5,000 is likely but not sure (upper bound -500): no retrain on noise
    assert not decide(var, 0, _record(_risk(-5000, -9500, -500)), UNIT).retrain
    assert not decide(var, 0, _record(None), UNIT).retrain

    drift = PolicyConfig(trigger="drift", min_features=2)
    assert not decide(drift, 0, _record(drifted=["AGEP"]), UNIT).retrain
    both = decide(drift, 0, _record(drifted=["AGEP", "score"]), UNIT)
    assert both.retrain and "AGEP, score" in both.why


def test_a_policy_key_of_another_trigger_is_refused_by_name(compose):
    with pytest.raises(ConfigError) as caught:
        compose("+retrain.backtest.policies.never.n=2")
    assert "retrain.backtest.policies.never" in str(caught.value)
    assert "'n' is for trigger 'every'" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        compose("+retrain.backtest.policies.on_value_at_risk.treshold=5")
    assert "did you mean 'threshold'" in str(caught.value)


# --------------------------------------------------------------------------- the tally


def test_tally_pairs_policies_and_charges_retrains():
    from valuegate.retrain.backtest import tally

    rng = np.random.default_rng(0)
    rows = np.arange(400)
    old = rng.normal(10.0, 20.0, 400)  # value per case of the first model
    new = old + 2.0 + rng.normal(0, 1.0, 400)  # a retrained model: 2 per case better
    values = {(0, "a"): (rows, old), (1, "a"): (rows, old), (1, "b"): (rows, new)}
    paths = {"never": ["a", "a"], "every": ["a", "b"]}

    def run(cost):
        return tally(2, values, paths, {"never": 0, "every": 1}, cost, 12, 100, 500, 0.95, 1)

    out = run(cost=0)
    every, never = out["policies"]["every"], out["policies"]["never"]
    assert out["winner"] == "every"
    assert every["value"] == pytest.approx(12 * 100 * (old.mean() + new.mean()))
    # paired: the case-level noise (sd 20) cancels, the gain (2 +/- 1 per case) does not
    lead = never["versus_winner"]
    assert lead["difference"] == pytest.approx(12 * 100 * (new - old).mean())
    assert lead["low"] > 0
    assert lead["high"] - lead["low"] < 0.2 * (every["net_high"] - every["net_low"])
    # a retrain dearer than what it earns hands the win to never retraining
    out = run(cost=3000)
    assert out["winner"] == "never"
    assert out["policies"]["every"]["net"] == pytest.approx(every["value"] - 3000)


# ------------------------------------------------------- the replay on synthetic periods


def _table(drift: bool, n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Four yearly periods of n people; the chance of NOT being employed (the case acted
    on) follows x1 in every year (stationary) or x1 in 2015 and x2 from 2016 on (drift)."""
    rng = np.random.default_rng(seed)
    frames = []
    for k, year in enumerate((2015, 2016, 2017, 2018)):
        x1, x2 = rng.normal(size=n), rng.normal(size=n)
        signal = x2 if drift and k > 0 else x1
        not_employed = rng.random(n) < 1 / (1 + np.exp(-3 * signal))
        frames.append(
            pd.DataFrame(
                {
                    "id": np.arange(k * n, (k + 1) * n),
                    "year": year,
                    "x1": x1,
                    "x2": x2,
                    "c": rng.choice(["a", "b", "c"], size=n),
                    "employed": (~not_employed).astype(int),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _config(compose, cost: float):
    config = compose(
        "+experiment=employment",
        "data.features.numeric=[x1,x2]",
        "data.features.categorical=[c]",
        "objective.volume=1000",
        "objective.good_enough.value_per_period=null",
        "objective.good_enough.metrics=[]",
        "gate.cross_fit.folds=3",
        "deploy.seed_stability.seeds=0",
        f"retrain.cost.review={cost}",
    )
    raw = config.model_dump()
    # a challenger learns from the newest period only: under drift it learns the new rule
    raw["retrain"]["window"].update(rule="sliding", periods=1)
    raw["retrain"]["backtest"]["n_resamples"] = 200
    raw["retrain"]["backtest"]["policies"]["on_value_at_risk"]["threshold"] = 100
    return validate(raw)


def _small_trainer(config, raw):
    """One real model (the linear baseline: fitted, cross-fitted, calibrated, its point
    chosen out of fold by training.fit_model) on each window: the replay's logic without
    the whole pipeline's cost."""
    from valuegate.business import value_model
    from valuegate.data import target_vector
    from valuegate.evaluation import test_report
    from valuegate.pipeline import steps
    from valuegate.retrain.backtest import Trainer, served_from_fitted, with_window
    from valuegate.training import fit_model

    def train(until):
        windowed = with_window(config, until)
        splits, schema = steps.prepare(raw, windowed, "synthetic")
        spec = windowed.baseline["linear"]
        fitted = fit_model("linear", "baseline", spec, windowed, schema, splits)
        model = value_model(windowed)
        point = float(steps.as_recorded(fitted.info["operating_point"])["value"])
        test = splits["test"]
        scores = steps.split_scores(fitted, "test")
        record = test_report(
            windowed, model, {}, target_vector(test, windowed.data), scores, None, point
        )
        return served_from_fitted(
            windowed, splits, schema, fitted, point, record, f"until {until}", until
        )

    return Trainer(train)


@pytest.mark.parametrize("drift", [True, False], ids=["drifting", "stationary"])
def test_replay_winner_on_synthetic_periods(compose, drift):
    from valuegate.retrain.backtest import replay, split_periods

    config = _config(compose, cost=2000)
    raw = _table(drift)
    first, periods = split_periods(config, raw)
    assert first == 2015 and [p.label for p in periods] == [2016, 2017, 2018]
    trainer = _small_trainer(config, raw)
    record = replay(config, first, periods, trainer)
    policies = record["policies"]
    assert set(policies) == {"never", "every_period", "on_value_at_risk", "on_drift"}
    # every_period retrains after 2016 and 2017 (none after the last period); the
    # trainings are shared: 2015 (the first model), 2016, 2017, whoever asks
    assert policies["every_period"]["retrains"] == 2
    assert record["distinct_trainings"] == 3
    winner = policies[record["winner"]]
    if drift:
        # the first model learnt x1, which says nothing after 2015: retraining must win,
        # surely (the interval of its lead over never retraining excludes zero)
        assert winner["retrains"] > 0 and winner["promotions"] > 0
        assert policies["never"]["versus_winner"]["low"] > 0
        assert "Retraining paid" in record["verdict"]
    else:
        # nothing changes: a retrain buys nothing and costs 2,000 each time
        assert winner["retrains"] == 0
        assert policies["every_period"]["net"] < policies["never"]["net"]
        assert "Retraining did not pay" in record["verdict"]
    assert record["verdict"].startswith(f"{record['winner']} wins over 2016-2018")


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([], ["data.time_column is null", "data.time_column=year"]),
        (
            ["+experiment=employment", "retrain.backtest.periods=[2016,2020]"],
            ["retrain.backtest.periods: 2020 is not a period", "2015, 2016, 2017, 2018"],
        ),
        (
            ["+experiment=employment", "+retrain.backtest.policies.on_drift.treshold=5"],
            ["retrain.backtest.policies.on_drift", "did you mean 'threshold'"],
        ),
    ],
    ids=["no-time-column", "unknown-period", "bad-policy-key"],
)
def test_bad_input_is_one_clear_line_and_writes_nothing(tmp_path, monkeypatch, capsys, args, words):
    from valuegate.cli import main

    (tmp_path / "data").symlink_to(ROOT / "data")  # read only: the backtest writes no data
    monkeypatch.chdir(tmp_path)
    code = main(["backtest", "--conf-dir", str(ROOT / "conf"), *args])
    stderr = capsys.readouterr().err
    assert code == 2, stderr
    assert "Traceback" not in stderr
    assert stderr.startswith("valuegate: ")
    for word in words:
        assert word in stderr
    assert not (tmp_path / "reports").exists() and not (tmp_path / "metrics").exists()


# --------------------------------------------------------------------------- bench


# Run in a fresh process with OMP_WAIT_POLICY unset: records the policy in force when
# scikit-learn or xgboost is first imported (their shared libgomp reads it once, on load).
_SPY = """
import importlib.abc, json, os, runpy, sys
os.environ.pop("OMP_WAIT_POLICY", None)
seen = {}
class Spy(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name in ("sklearn", "xgboost") and name not in seen:
            seen[name] = os.environ.get("OMP_WAIT_POLICY")
sys.meta_path.insert(0, Spy())
runpy.run_path(sys.argv[1], run_name="bench")
print(json.dumps(seen))
"""


def test_the_backtest_bench_loads_openmp_after_valuegate_sets_passive_waiting():
    """bench/backtest.py once imported scikit-learn before valuegate: its OpenMP threads
    then spun instead of sleeping, on both sides of the comparison, and at load 6 five
    3,000-row xgboost fits took 9-36 CPU s instead of 1.8 (bench/README.md)."""
    out = subprocess.run(
        [sys.executable, "-c", _SPY, str(ROOT / "bench" / "backtest.py")],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert all(policy == "PASSIVE" for policy in seen.values()), seen


# --------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_valuegate_backtest_writes_the_table_the_metrics_and_the_page(project):
    _table(drift=True, n=300).to_parquet(project / "data" / "raw" / "periods.parquet")
    done = subprocess.run(
        [
            sys.executable, "-m", "valuegate.cli", "backtest",
            "+experiment=employment", "data.name=periods", "data.path=data/raw/periods.parquet",
            "data.features.numeric=[x1,x2]", "data.features.categorical=[c]",
            "objective.volume=1000", "objective.good_enough.value_per_period=null",
            "objective.good_enough.metrics=[]", "model=[xgboost]", "tune.n_trials=2",
            # the command's outputs are checked here, not the numbers: the cheapest settings
            "model.xgboost.params.n_estimators=40", "tune.n_folds=2", "assess.n_folds=2",
            "gate.cross_fit.folds=3", "gate.cross_fit.choice_resamples=50",
            "gate.n_resamples=200", "deploy.n_resamples=200", "deploy.seed_stability.seeds=0",
            "retrain.cost.review=500", "retrain.backtest.n_resamples=200",
        ],
        cwd=project, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((project / "reports" / "backtest.json").read_text())
    metrics = json.loads((project / "metrics" / "backtest.json").read_text())
    page = (project / "reports" / "backtest.html").read_text()
    names = ["never", "every_period", "on_value_at_risk", "on_drift"]
    assert list(metrics["policies"]) == names
    for name in names:
        entry = metrics["policies"][name]
        assert entry["net"] == pytest.approx(entry["value"] - entry["cost"], abs=1)
        assert entry["cost"] == 500 * entry["retrains"]
        assert f"<b>{name}</b>" in page
    assert record["distinct_trainings"] <= 3
    assert record["winner"] in names and f"{record['winner']} wins over 2016-2018" in page
    assert "data:image/png;base64," in page and "http" not in page.split("<body>")[1]
    assert record["winner"] in done.stdout and "net interval" in done.stdout
