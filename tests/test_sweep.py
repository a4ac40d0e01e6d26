"""`valuegate train -m`: Hydra's sweep grammar, one directory per run, the whole pipeline
(assess, gate, tuning) per run, a summary with the gate's decision."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import ROOT
from valuegate.cli import main
from valuegate.errors import ConfigError
from valuegate.sweep import expand, format_summary, gate_columns, multirun


def test_expansion_is_hydras_cartesian_product():
    runs = expand(["model=xgboost,random_forest", "objective.volume=1000,2000,3000"])
    assert len(runs) == 6
    assert runs[0] == ["model=xgboost", "objective.volume=1000"]  # Hydra's order: last fastest
    assert ["model=random_forest", "objective.volume=3000"] in runs


def test_expansion_takes_hydras_grammar_and_a_repeated_key_once():
    runs = expand(["seed=range(1,3)", "gate.n_resamples=300", "seed=7,8"])
    # a key given twice keeps its first place and its last values (as Hydra's sweeper)
    assert runs == [["seed=7", "gate.n_resamples=300"], ["seed=8", "gate.n_resamples=300"]]
    assert expand(["seed=range(1,3)"]) == [["seed=1"], ["seed=2"]]


def test_expansion_refuses_what_has_no_finite_runs_in_one_line():
    with pytest.raises(ConfigError, match="interval"):
        expand(["gate.confidence=interval(0.9,0.99)"])
    with pytest.raises(ConfigError, match="cannot parse sweep overrides"):
        expand(["model=[xgboost"])


def gate_record(passing: str | None) -> dict:
    candidates = {
        "xgboost": {"ci_lower": -2000.0, "passed": False},
        "random_forest": {"ci_lower": 7000.0 if passing else -500.0, "passed": bool(passing)},
    }
    return {"candidates": candidates, "best_passing": passing}


def test_the_summary_row_carries_the_gates_decision():
    assert gate_columns(gate_record("random_forest")) == {
        "gate": "passed",
        "gate_candidate": "random_forest",
        "uplift_ci_lower": 7000.0,
    }
    # refused: the candidate closest to passing (highest lower bound)
    assert gate_columns(gate_record(None)) == {
        "gate": "refused",
        "gate_candidate": "random_forest",
        "uplift_ci_lower": -500.0,
    }
    assert gate_columns(None)["gate"] == ""  # blocked or invalid: the gate never ran


FAST = [
    "gate.n_resamples=200",
    "gate.cross_fit.folds=3",
    "gate.cross_fit.choice_resamples=50",
    "assess.n_folds=3",
]


def test_multirun_writes_each_run_and_a_summary(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    code = main(
        [
            "train",
            "-m",
            "--conf-dir",
            str(ROOT / "conf"),
            "--output",
            str(tmp_path),
            "model=xgboost,random_forest",
            "model.xgboost.params.n_estimators=30",
            "objective.volume=1000,3000",
            *FAST,
        ]
    )
    assert code == 0
    (sweep,) = list(tmp_path.glob("*/*"))
    table = pd.read_csv(sweep / "summary.csv")
    assert len(table) == 4
    # random_forest runs cannot take an xgboost override: reported, not fatal
    invalid = table[table["status"] != "ok"]
    assert set(invalid["overrides"].str.split().str[0]) == {"model=random_forest"}
    ok = table[table["status"] == "ok"].set_index("overrides")
    fast = " ".join(FAST)
    low = ok.loc[f"model=xgboost model.xgboost.params.n_estimators=30 objective.volume=1000 {fast}"]
    high = ok.loc[
        f"model=xgboost model.xgboost.params.n_estimators=30 objective.volume=3000 {fast}"
    ]
    assert high["value_per_period"] == 3 * low["value_per_period"]  # same model, 3x volume
    params = yaml.safe_load((sweep / "0" / "params.yaml").read_text())
    assert params["model"]["xgboost"]["params"]["n_estimators"] == 30
    # the run's records, at the paths the stages write them
    evaluation = json.loads((sweep / "0" / "reports" / "evaluation.json").read_text())
    assert set(evaluation["models"]) == {"dummy", "linear", "xgboost"}
    assert json.loads((sweep / "0" / "reports" / "assessment.json").read_text())["blocked"] is False
    gate = json.loads((sweep / "0" / "reports" / "gate.json").read_text())
    # the gate's decision is in the summary, with its numbers
    assert table.loc[0, "gate"] == ("passed" if gate["best_passing"] else "refused")
    assert table.loc[0, "gate_candidate"] == "xgboost"
    assert table.loc[0, "uplift_ci_lower"] == pytest.approx(
        gate["candidates"]["xgboost"]["ci_lower"]
    )
    out = capsys.readouterr().out
    assert "Sweep of 4 runs" in out
    assert f"gate {table.loc[0, 'gate']} (xgboost, uplift lower bound" in out


def xor_table(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """A target a linear model cannot learn (the sign of x1 * x2, 5% of labels flipped) and
    `leak`, the target itself plus a little noise: a column known only after the outcome."""
    rng = np.random.default_rng(seed)
    x1, x2, x3 = rng.uniform(-1, 1, size=(3, n))
    bad = (x1 * x2 > 0) ^ (rng.random(n) < 0.05)
    return pd.DataFrame(
        {
            "x1": x1,
            "x2": x2,
            "x3": x3,
            "leak": bad + rng.normal(0, 0.05, size=n),
            "status": np.where(bad, "bad", "good"),
        }
    )


XOR_DATA = """\
name: xor
path: {path}
format: csv
task: binary
target: status
positive_label: bad
id_column: null
time_column: null
amount_column: null
features: {{numeric: null, categorical: null, drop: []}}
split: {{method: stratified, train: 0.6, valid: 0.2, test: 0.2}}
sample_rows: null
"""


@pytest.mark.slow
def test_a_sweep_reports_blocked_data_gates_and_tunes_where_the_gate_passes(
    tmp_path: Path, monkeypatch
):
    """Two runs on a leaky table: with the leak dropped the pipeline runs through (the
    trees beat the linear baseline on an interaction: the gate passes, tuning runs); with
    it, the assessment blocks and the run is reported as blocked, not valued."""
    conf = Path(shutil.copytree(ROOT / "conf", tmp_path / "conf"))
    xor_table().to_csv(tmp_path / "xor.csv", index=False)
    (conf / "data" / "xor.yaml").write_text(XOR_DATA.format(path=tmp_path / "xor.csv"))
    monkeypatch.chdir(tmp_path)
    overrides = [
        "data=xor",
        "model=random_forest",
        "model.random_forest.params.n_estimators=50",
        "data.features.drop=[leak],[]",
        "tune.n_trials=2",
        *FAST,
    ]
    sweep = multirun(conf, overrides, tmp_path / "multirun")
    table = pd.read_csv(sweep / "summary.csv").set_index("run")
    clean, leaky = table.loc[0], table.loc[1]
    assert clean["status"] == "ok"
    assert clean["gate"] == "passed" and clean["gate_candidate"] == "random_forest"
    assert clean["uplift_ci_lower"] > 0
    assert clean["tuned"] == "random_forest_tuned"
    tune = json.loads((sweep / "0" / "reports" / "tune.json").read_text())
    assert tune["tuning_allowed"] and "random_forest" in tune["studies"]
    evaluation = json.loads((sweep / "0" / "reports" / "evaluation.json").read_text())
    assert "random_forest_tuned" in evaluation["models"]

    assert leaky["status"].startswith("blocked:")
    assert str(sweep / "1" / "reports" / "assessment.html") in leaky["status"]
    assert pd.isna(leaky["gate"]) and pd.isna(leaky["best_candidate"])  # never valued
    assessment = json.loads((sweep / "1" / "reports" / "assessment.json").read_text())
    assert assessment["blocked"] is True
    assert any(finding.endswith(":leak") for finding in assessment["blocking"])
    assert not (sweep / "1" / "reports" / "evaluation.json").exists()
    assert (sweep / "1" / "reports" / "assessment.html").is_file()  # why it was blocked
    lines = format_summary(sweep).splitlines()
    assert "gate passed (random_forest" in lines[1] and "tuned random_forest_tuned" in lines[1]
    assert "blocked" in lines[2]
