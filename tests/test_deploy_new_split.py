"""End to end with real DVC: a new split (another seed) compares the champion only on the
test rows it never saw (issue 12). Its own file, apart from tests/test_deploy_pipeline.py:
with `--dist loadfile` a file is one worker's unit, and each of the two is one full run
after the shared one, so the two workers can take one each."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.conftest import run
from tests.test_deploy_pipeline import deploy_record, scratch_copy
from valuegate.bundle import load_bundle
from valuegate.row_lineage import read_rows, row_hashes

pytestmark = pytest.mark.slow


def test_a_new_split_compares_the_champion_only_on_rows_it_never_saw(ran_project, tmp_path):
    """issue 12: change the seed (a new split), rerun, and the deploy record shows the
    champion compared only on test rows it never trained on (nor was chosen on)."""
    # The first run packaged v1, the champion (the shared full run, on an empty registry).
    project = scratch_copy(ran_project, tmp_path)
    # No good_enough bar: the new split's model must reach the comparison whatever it earns.
    bar = ["-S", "objective.good_enough.value_per_period=null",
           "-S", "objective.good_enough.metrics=[]"]  # fmt: skip
    first = deploy_record(project)
    assert first["packaged"] and first["champion_after"] == "v1", first["reason"]
    registry = project / "models" / "registry" / "german_credit"
    champion = load_bundle(registry / "v1")

    # Another seed: ~60% of the new test split is rows v1 trained on, ~20% rows it was
    # chosen on; 10 fresh rows suffice here (the example has only 200 test rows). A new
    # seed refits every model: one candidate and 3 cross-fit folds are enough for what is
    # checked here (which rows each model saw), at about half the fits.
    run(["dvc", "exp", "run", *bar, "-S", "seed=7", "-S", "deploy.min_fresh_rows=10",
         "-S", "deploy.min_fresh_per_class=3", "-S", "model=[xgboost]",
         "-S", "gate.cross_fit.folds=3"], project)  # fmt: skip
    record = deploy_record(project)
    fresh = record["fresh_rows"]
    test = pd.read_parquet(project / "data" / "assessed" / "test.parquet")
    hashes = row_hashes(test, champion.manifest["row_lineage"]["columns"])
    trained = np.isin(hashes, read_rows(champion.path, champion.manifest, "train"))
    chosen = np.isin(hashes, read_rows(champion.path, champion.manifest, "valid"))
    assert fresh["test_rows"] == len(test) == 200
    assert fresh["champion_train"] == trained.sum() > 0
    assert fresh["champion_valid"] == chosen.sum() > 0
    assert 0 < fresh["fresh"] == (~trained & ~chosen).sum() < len(test)
    versus = record["versus_champion"]
    assert versus["rows"] == fresh["fresh"], record["reason"]
    assert f"on the {fresh['fresh']} test rows neither model has seen" in record["reason"]
    # each model at the operating point it ships with
    assert versus["champion_point"] == champion.manifest["decision"]["value"]
    evaluation = json.loads((project / "reports" / "evaluation.json").read_text())
    assert versus["new_point"] == evaluation["final"]["valid"]["threshold"]
    # the first look at these test rows spends half of the budget
    assert record["budget"]["attempt"] == 1 and record["budget"]["alpha"] == pytest.approx(0.025)
    budget = json.loads((registry / "budget.json").read_text())
    assert list(budget["test_rows"]) == [record["budget"]["test_rows_fingerprint"]]
