"""`valuegate train -m`: Hydra's sweep expansion, one directory per run, a summary."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from tests.conftest import ROOT
from valuegate.cli import main
from valuegate.sweep import expand


def test_expansion_is_hydras_cartesian_product():
    runs = expand(["model=xgboost,random_forest", "objective.volume=1000,2000,3000"])
    assert len(runs) == 6
    assert ["model=random_forest", "objective.volume=3000"] in runs


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
    low = ok.loc["model=xgboost model.xgboost.params.n_estimators=30 objective.volume=1000"]
    high = ok.loc["model=xgboost model.xgboost.params.n_estimators=30 objective.volume=3000"]
    assert high["value_per_period"] == 3 * low["value_per_period"]  # same model, 3x volume
    params = yaml.safe_load((sweep / "0" / "params.yaml").read_text())
    assert params["model"]["xgboost"]["params"]["n_estimators"] == 30
    evaluation = json.loads((sweep / "0" / "evaluation.json").read_text())
    assert set(evaluation["models"]) == {"dummy", "linear", "xgboost"}
    assert "Sweep of 4 runs" in capsys.readouterr().out
