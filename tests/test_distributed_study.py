"""Tuning workers on several machines share one Optuna study in PostgreSQL (issue 14
item 5), checked against a real PostgreSQL server the test starts (pgserver: PostgreSQL in
a wheel, no service to install), with the DVC remote recipe of docs/scale.md bringing the
second machine its data: machine A prepares and assesses a small table and pushes the
outputs to a DVC remote; machine B is a git clone of A that pulls them; one tuning worker
runs in each, on the same study.

Kept cheap (the suite's budget): a 600-row table, only the prepare and assess stages (the
workers call the tuning step, `tuning.tune_candidate`, as `valuegate tune --worker` does
after its gate check), a small search space and few trials."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from tests.conftest import copy_project, run, tool_env
from valuegate.config.loading import compose_config, write_params

pytestmark = [
    pytest.mark.slow,
    # pgserver asks platformdirs for a runtime dir; CI has no XDG_RUNTIME_DIR (harmless)
    pytest.mark.filterwarnings("ignore:XDG_RUNTIME_DIR is not set"),
]

TRIALS = 8
# A weak xgboost on XOR data (below), one thread, a one-parameter space.
SETTINGS = [
    "data.name=xor",
    "data.path=data/raw/xor.csv",
    "data.target=label",
    "data.positive_label=bad",
    "data.amount_column=null",
    "model=xgboost",
    "model.xgboost.params.n_estimators=30",
    "model.xgboost.params.max_depth=3",
    "model.xgboost.early_stopping=null",
    "model.xgboost.params.n_jobs=1",
    "~model.xgboost.search_space",
    "+model.xgboost.search_space={max_depth: {type: int, low: 2, high: 6}}",
    "tune.n_folds=3",
    "tune.patience=50",
    f"tune.n_trials={TRIALS}",
    "assess.n_folds=2",
]

# One tuning worker on this machine's copy of the project: what `valuegate tune --worker
# --worker-index N` runs once the gate let the candidate through (it reads params.yaml and
# the assessed training split; the study lives where tune.storage says). Numbered from 1:
# a worker 0 would close the trials it finds running, the other machine's among them.
WORKER = """
import sys
from valuegate.config import load_params
from valuegate.stages.common import check_data, read_splits
from valuegate.tuning import tune_candidate

config = load_params()
schema = check_data(config)
train = read_splits(names=("train",))["train"]
tune_candidate(config, schema, train, "xgboost", None, worker_index=int(sys.argv[1]))
"""


def write_xor(project: Path, rows: int = 600) -> None:
    """Bad iff two features share a sign (invisible to a linear model, easy for trees), with
    a fifth of the labels flipped: a clean XOR reads as a leak to the assess stage."""
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=rows), rng.normal(size=rows)
    bad = (a * b > 0) ^ (rng.random(rows) < 0.2)
    frame = pd.DataFrame(
        {"a": a, "b": b, "noise": rng.normal(size=rows), "label": np.where(bad, "bad", "good")}
    )
    frame.to_csv(project / "data" / "raw" / "xor.csv", index=False)


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL server (unix socket in a temp dir) and a fresh database.
    Not under pytest's temp dir: a concurrent pytest session may prune that (it keeps
    the last three) while the server still runs in it."""
    import pgserver

    data = Path(tempfile.mkdtemp(prefix="valuegate-pg-"))
    server = pgserver.get_server(data, cleanup_mode="stop")
    try:
        server.psql("CREATE DATABASE valuegate_studies;")
        yield server.get_uri("valuegate_studies")
    finally:
        server.cleanup()
        shutil.rmtree(data, ignore_errors=True)


def test_tuning_workers_on_two_machines_share_one_study_in_postgresql(
    tmp_path: Path, postgres: str
):
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    first = copy_project(tmp_path / "a")
    write_xor(first)
    # params.yaml as `valuegate compose` writes it (in this process: no start-up to pay)
    raw = compose_config(first / "conf", [*SETTINGS, f"tune.storage='{postgres}'"])
    write_params(raw, first / "params.yaml")
    run(["dvc", "repro", "assess"], first)
    # The recipe of docs/scale.md: a DVC remote both machines reach holds the outputs.
    remote = tmp_path / "remote"
    run(["dvc", "remote", "add", "-d", "shared", str(remote)], first)
    run(["dvc", "push"], first)
    assert any(p.is_file() for p in remote.rglob("*"))
    run([*git, "add", "-A"], first)
    run([*git, "commit", "-q", "-m", "assessed"], first)

    # Machine B: a clone (code, config, dvc.lock; no outputs, no cache) that pulls them.
    second = tmp_path / "b"
    run(["git", "clone", "-q", str(first), str(second)], tmp_path)
    assert not (second / "data" / "assessed").exists()
    run(["dvc", "pull", "--with-deps", "assess"], second)
    assert "up to date" in run(["dvc", "status", "assess"], second).stdout

    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(index)],
            cwd=project,
            env=tool_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index, project in enumerate((first, second), start=1)
    ]
    for worker in workers:
        _out, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err[-2000:]

    storage = optuna.storages.RDBStorage(postgres)
    (summary,) = storage.get_all_studies()  # one study, not one per machine
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == TRIALS  # the budget is the study's, not each worker's
    assert len({t.number for t in study.trials}) == len(study.trials)  # no number twice
    assert {t.user_attrs.get("worker") for t in finished} == {1, 2}  # both machines
    complete = [t.value for t in finished if t.state == TrialState.COMPLETE]
    assert np.isfinite(study.best_value) and study.best_value == max(complete)
