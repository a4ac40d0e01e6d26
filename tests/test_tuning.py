"""Tuning mechanics: stop-on-value, trial caps, shared and resumed studies, clear errors."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from tests.conftest import tool_env
from valuegate.config.schema import ModelSpec
from valuegate.errors import ArtifactError, ConfigError
from valuegate.tuning import (
    StopOnValue,
    check_search_space,
    create_study,
    one_thread_per_worker,
    open_storage,
    run_study,
    study_name,
)

WORKER = Path(__file__).with_name("tuning_worker.py")


def study_with(values: list[float]) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    for value in values:
        study.add_trial(create_trial(value=value, params={}, distributions={}))
    return study


def test_stop_rule_counts_trials_since_the_last_improvement_that_matters():
    stopper = StopOnValue(min_improvement=1000, patience=4)
    # 1100 improves on 100 by >= 1000; 1200 ... 2050 improve, but by less than 1000 each
    trials = study_with([100, 150, 1100, 1200, 1500, 1900, 2050]).trials
    assert stopper.stale_for(trials) == 4
    assert StopOnValue(min_improvement=0, patience=4).stale_for(trials) == 0


def test_study_stops_when_value_stops_improving():
    study = optuna.create_study(direction="maximize")
    stopper = StopOnValue(min_improvement=10, patience=5)
    reason = run_study(study, lambda t: t.suggest_float("x", 0, 1), 100, None, stopper)
    assert reason == "stop_on_value" and stopper.fired
    assert len(study.trials) == 6  # the first sets the best; five more add < 10


def test_study_stops_at_the_trial_cap():
    study = optuna.create_study(direction="maximize")
    stopper = StopOnValue(min_improvement=0, patience=100)
    assert run_study(study, lambda t: t.number * 1.0, 7, None, stopper) == "n_trials"
    assert len(study.trials) == 7


def test_pruned_trials_count_as_finished():
    def objective(trial: optuna.Trial) -> float:
        if trial.number % 2:
            raise optuna.TrialPruned()
        return float(trial.number)

    study = optuna.create_study(direction="maximize")
    run_study(study, objective, 6, None, StopOnValue(0, 100))
    states = [t.state for t in study.trials]
    assert states.count(TrialState.PRUNED) == 3 and states.count(TrialState.COMPLETE) == 3


def workers(
    journal: Path, n_trials: int, count: int, pause: float, *flags: str
) -> list[subprocess.Popen]:
    return [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(journal), str(n_trials), str(i), str(pause), *flags],
            env=tool_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(count)
    ]


def load(journal: Path) -> optuna.Study:
    return optuna.load_study(study_name="shared", storage=open_storage(None, journal))


def test_two_workers_share_one_study_without_losing_or_repeating_trials(tmp_path: Path):
    journal = tmp_path / "study.journal"
    procs = workers(journal, 24, 2, 0.05)
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    study = load(journal)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 24
    assert len({t.number for t in complete}) == 24
    assert {t.user_attrs["worker"] for t in complete} == {0, 1}  # both did work
    real_failures = [
        t for t in study.trials if t.state == TrialState.FAIL and not t.user_attrs.get("surplus")
    ]
    assert not real_failures


def test_sigkill_mid_study_then_rerun_keeps_every_completed_trial(tmp_path: Path):
    journal = tmp_path / "study.journal"
    (proc,) = workers(journal, 15, 1, 0.4)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if journal.exists():
            done = [t for t in load(journal).trials if t.state == TrialState.COMPLETE]
            if len(done) >= 4:
                break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {t.number: t.value for t in load(journal).trials if t.state == TrialState.COMPLETE}
    assert len(before) >= 4
    (again,) = workers(journal, 15, 1, 0.0, "--resume")
    _out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    after = load(journal).trials
    complete = {t.number: t.value for t in after if t.state == TrialState.COMPLETE}
    assert len(complete) == 15
    assert all(complete[n] == v for n, v in before.items())  # nothing lost or redone
    assert sum(t.state == TrialState.RUNNING for t in after) == 0  # the killed one was closed


def test_corrupt_storage_file_is_named(tmp_path: Path):
    bad = tmp_path / "optuna.journal"
    bad.write_bytes(b"\x00\x01 this is not a journal \xff\n{not json\n")
    with pytest.raises(ArtifactError) as info:
        open_storage(None, bad)
    assert str(bad) in str(info.value) and "not a readable Optuna journal" in str(info.value)


def test_foreign_storage_url_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"tune\.storage: cannot open 'nosuchdb://nowhere/x'"):
        open_storage("nosuchdb://nowhere/x", tmp_path / "j")
    # At once, not after retries (they are for workers racing to create a new database's
    # tables; none mends a URL of an unknown database kind). Timed the second time: the
    # first pays SQLAlchemy's one-off search of installed plugins (~1 s); retries took 3 s.
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"tune\.storage"):
        open_storage("nosuchdb://nowhere/x", tmp_path / "j")
    assert time.monotonic() - started < 1.0


def test_empty_search_space_is_refused():
    spec = ModelSpec(estimator="xgboost", params={}, search_space={})
    with pytest.raises(ConfigError, match=r"model\.xgboost\.search_space is empty"):
        check_search_space("model.xgboost", spec, "binary")


def test_search_space_key_the_estimator_does_not_accept():
    spec = ModelSpec.model_validate(
        {
            "estimator": "random_forest",
            "search_space": {"max_dept": {"type": "int", "low": 2, "high": 9}},
        }
    )
    with pytest.raises(ConfigError) as info:
        check_search_space("model.random_forest", spec, "binary")
    message = str(info.value)
    assert "model.random_forest.search_space.max_dept" in message
    assert "did you mean 'max_depth'?" in message


def test_study_name_changes_with_what_makes_trials_comparable():
    a = study_name("xgboost", {"space": {"max_depth": [2, 8]}, "seed": 1})
    assert a == study_name("xgboost", {"seed": 1, "space": {"max_depth": [2, 8]}})
    assert a != study_name("xgboost", {"space": {"max_depth": [2, 9]}, "seed": 1})


def test_forced_studies_are_marked(tmp_path: Path):
    study = create_study("s", open_storage(None, tmp_path / "j"), 0, True, forced=True)
    assert study.user_attrs["forced"] is True


def test_a_lock_left_by_a_killed_writer_expires(tmp_path: Path, monkeypatch):
    """SIGKILL during a journal write leaves Optuna's lock symlink behind; the next run
    must break it after the grace period instead of waiting forever. (A 3 s grace period,
    Optuna's least without a warning, instead of the stages' 30 s: the same code path.)"""
    monkeypatch.chdir(tmp_path)
    journal = Path("tuning") / "optuna.journal"  # relative, as the stage passes it
    storage = open_storage(None, journal, lock_grace_seconds=3)
    journal_abs = str(journal.resolve())
    Path(journal_abs + ".lock").symlink_to(journal_abs)  # what a killed holder leaves
    started = time.monotonic()
    study = create_study("after-kill", storage, 0, False, False)
    waited = time.monotonic() - started
    assert study.study_name == "after-kill"
    assert 3 <= waited < 30  # it waited out the grace period it was given, no longer
    assert not Path(journal_abs + ".lock").exists()


@pytest.mark.parametrize("go", [True, False])
def test_a_waiting_worker_runs_only_when_released(go: bool):
    from valuegate.stages.tune import release_workers

    code = "from valuegate.stages.tune import await_release; await_release(); print('opened')"
    worker = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    release_workers([worker], go=go)
    out = worker.stdout.read()
    assert worker.wait(timeout=60) == 0
    assert (out.strip() == b"opened") is go


def test_each_of_several_workers_keeps_to_one_native_thread():
    import xgboost  # noqa: F401  (loads the OpenMP runtime that spins when idle)
    from threadpoolctl import threadpool_info

    def openmp_threads() -> set[int]:
        return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "openmp"}

    assert openmp_threads(), "no OpenMP runtime loaded"
    default = openmp_threads()
    with one_thread_per_worker(1):
        assert openmp_threads() == default
    with one_thread_per_worker(2):
        assert openmp_threads() == {1}
    assert openmp_threads() == default


@pytest.mark.parametrize("pruning", [True, False])
def test_fold_values_are_reported_only_to_a_study_that_prunes(pruning: bool):
    import numpy as np
    import pandas as pd

    from valuegate.business import BinaryValueModel
    from valuegate.folds import make_folds
    from valuegate.tuning import TuningProblem

    rng = np.random.default_rng(0)
    features = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    y = (features["a"] + rng.normal(scale=0.5, size=300) > 0).astype(int).to_numpy()
    spec = ModelSpec.model_validate(
        {
            "estimator": "random_forest",
            "params": {"n_estimators": 5},
            "search_space": {"max_depth": {"type": "int", "low": 2, "high": 4}},
        }
    )
    value = {"tp": (10.0, 0.0), "fp": (-1.0, 0.0), "fn": (-5.0, 0.0), "tn": (0.0, 0.0)}
    problem = TuningProblem(
        key="model.random_forest",
        spec=spec,
        task="binary",
        numeric=["a", "b"],
        categorical=[],
        X=features,
        y=y,
        amount=None,
        value_model=BinaryValueModel(values=value, volume=100),
        constraints=[],
        folds=make_folds(y, "binary", 3, 0),
        seed=0,
        estimator_overrides={},
    )
    study = create_study("reports", None, 0, pruning=pruning, forced=False)
    run_study(study, problem.objective, 2, None, StopOnValue(0, 10**9))
    reported = [len(t.intermediate_values) for t in study.get_trials()]
    assert reported == ([3, 3] if pruning else [0, 0])


def drifting_table(rows: int = 4000, seed: int = 3):
    """Rows in time order whose share of bad cases moves from week to week (a regime the
    features do not show); `era`, a clock, lets a model look it up from neighbouring rows,
    which only works for rows between training rows, never for the next period."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    week = np.arange(rows) // 50
    regime = rng.normal(scale=2.0, size=week.max() + 1)[week]
    bad = rng.random(rows) < 1 / (1 + np.exp(-(x + regime - 1.0)))
    return pd.DataFrame(
        {
            "when": pd.date_range("2020-01-01", periods=rows, freq="h").astype(str),
            "x": x,
            "era": np.arange(rows) / rows,
            "label": np.where(bad, "bad", "good"),
        }
    )


def test_time_split_tunes_on_forward_chaining_folds_that_do_not_overstate(compose):
    """Shuffled K-fold lets a model learn the drift from rows on both sides of each test
    row and overstates what it earns on the next period; forward-chaining folds do not."""
    import numpy as np
    import pandas as pd

    from valuegate.data import prepare
    from valuegate.folds import make_folds
    from valuegate.tuning import build_problem

    config = compose(
        "data.path=x.csv",
        "data.target=label",
        "data.time_column=when",
        "data.amount_column=null",
        "data.split.method=time",
        "data.split.train=0.75",
        "data.split.valid=0.125",
        "data.split.test=0.125",
        "model=random_forest",
        "model.random_forest.params.n_estimators=40",
    )
    splits, schema = prepare(drifting_table(), config.data, config.seed, "")
    train, valid = splits["train"], splits["valid"]
    problem = build_problem(config, schema, train, "random_forest")
    assert problem.fold_kind == "time"
    for train_idx, test_idx in problem.folds:
        assert train_idx.max() < test_idx.min()  # no test row precedes its training rows
    spec = problem.params_for({})

    def cv_value(folds) -> float:
        return float(np.mean([problem.fold_value(spec, fold) for fold in folds]))

    forward = cv_value(problem.folds)
    shuffled = cv_value(make_folds(problem.y, "binary", config.tune.n_folds, config.seed))
    # What the model earns on the period after its training rows (the validation split).
    both = build_problem(
        config, schema, pd.concat([train, valid], ignore_index=True), "random_forest"
    )
    future = both.fold_value(spec, (np.arange(len(train)), len(train) + np.arange(len(valid))))
    # Measured: shuffled 118,800, forward-chaining 42,240, next period 0 EUR/month.
    assert shuffled - future > 2 * abs(forward - future)
    assert shuffled > forward


def test_repeated_ids_tune_on_grouped_folds(compose):
    import numpy as np

    from valuegate.data import prepare
    from valuegate.tuning import build_problem

    frame = drifting_table(600).drop(columns="when")
    frame["customer"] = np.arange(600) // 3  # three rows per customer
    config = compose(
        "data.path=x.csv",
        "data.target=label",
        "data.id_column=customer",
        "data.amount_column=null",
        "model=random_forest",
    )
    splits, schema = prepare(frame, config.data, config.seed, "")
    problem = build_problem(config, schema, splits["train"], "random_forest")
    assert problem.fold_kind == "group"
    ids = splits["train"]["customer"].to_numpy()
    for train_idx, test_idx in problem.folds:
        assert not set(ids[train_idx]) & set(ids[test_idx])


def test_the_tuning_record_says_what_stopping_on_value_means():
    """Issue 12: the rule fires on noise; the record must not read as 'optimum found'."""
    import pandas as pd

    from valuegate.tuning import StudyResult, stop_rule_meaning

    text = stop_rule_meaning(1000, 15, "EUR/month")
    assert "no trial improved the best cross-validated value by at least 1,000 EUR/month" in text
    assert "in 15 consecutive trials" in text
    assert "does not mean tuning found the optimum" in text
    result = StudyResult(
        "x", "s", False, "stop_on_value: ...", 1.0, {}, 1, 0, 0, 2.0, pd.DataFrame()
    )
    result.stop_rule, result.folds = text, {"kind": "time", "n_folds": 5, "how": "..."}
    summary = result.summary()
    assert summary["stop_rule"] == text and summary["folds"]["kind"] == "time"


def noise_problem(seed: int = 0, n: int = 400):
    """A candidate fitted on pure-noise features: whatever it flags is worth nothing more
    than chance, so flagging nobody (value 0) is all it can truly earn."""
    import numpy as np
    import pandas as pd

    from valuegate.business import BinaryValueModel
    from valuegate.folds import make_folds
    from valuegate.tuning import TuningProblem

    rng = np.random.default_rng(seed)
    features = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    y = (rng.random(n) < 0.3).astype(int)
    spec = ModelSpec.model_validate(
        {
            "estimator": "random_forest",
            "params": {"n_estimators": 20, "min_samples_leaf": 1, "n_jobs": 1},
            "search_space": {"max_depth": {"type": "int", "low": 2, "high": 4}},
        }
    )
    # Break-even probability 0.375 above the 0.3 base rate: acting on chance loses.
    value = {"tp": (100.0, 0.0), "fp": (-60.0, 0.0), "fn": (0.0, 0.0), "tn": (0.0, 0.0)}
    return TuningProblem(
        key="model.random_forest",
        spec=spec,
        task="binary",
        numeric=["a", "b"],
        categorical=[],
        X=features,
        y=y,
        amount=None,
        value_model=BinaryValueModel(values=value, volume=1000),
        constraints=[],
        folds=make_folds(y, "binary", 5, 0),
        seed=0,
        estimator_overrides={},
    )


def test_a_trial_is_valued_at_one_point_chosen_on_its_pooled_out_of_fold_scores():
    """A point chosen per fold fits each fold's noise: on a pure-noise candidate (truly
    worth 0) it reports 2,300 per period; one point chosen on the pooled out-of-fold
    scores, as the pipeline fixes it (training.fit_model), reports 500."""
    import numpy as np

    problem = noise_problem()
    spec = problem.params_for({"max_depth": 4})
    parts = [problem.fold_scores(spec, fold) for fold in problem.folds]
    per_fold = float(np.mean([problem.pooled_value([part]) for part in parts]))
    positions = np.concatenate([p[0] for p in parts])
    pooled = problem.value_model.choose_point(
        problem.y[positions], np.concatenate([p[1] for p in parts])
    ).value_per_period

    study = create_study("pooled", None, 0, pruning=False, forced=False)
    study.enqueue_trial({"max_depth": 4})
    run_study(study, problem.objective, 1, None, StopOnValue(0, 10**9))
    assert study.best_value == pytest.approx(pooled)
    assert per_fold > 3 * max(pooled, 0.0) and per_fold > 500  # the old, per-fold value


# ----------------------------------------------------------------- early stopping (18.2)


def test_early_stopping_holds_out_the_last_rows_in_time_order_else_a_stratified_sample():
    import numpy as np

    from valuegate.estimators import inner_split

    y = np.r_[np.zeros(150, int), np.tile([0, 1], 25)]  # positives only among the last rows
    fit_idx, val_idx = inner_split(y, 0.2, time_ordered=True, stratify=True, seed=0)
    assert list(val_idx) == list(range(160, 200)) and list(fit_idx) == list(range(160))
    fit_idx, val_idx = inner_split(y, 0.2, time_ordered=False, stratify=True, seed=0)
    assert len(val_idx) == 40 and y[val_idx].mean() == pytest.approx(y.mean())
    assert not set(fit_idx) & set(val_idx) and len(fit_idx) + len(val_idx) == 200
    # Too few rows to stop on, or a class missing from the validation part: no split.
    assert inner_split(y[:60], 0.2, False, True, 0) is None
    assert inner_split(np.r_[np.ones(150, int), np.zeros(50, int)], 0.2, True, True, 0) is None


@pytest.mark.parametrize("estimator", ["xgboost", "hist_gradient_boosting"])
def test_an_early_stopped_candidate_fits_clones_and_survives_the_safe_format(
    estimator: str, tmp_path: Path
):
    import numpy as np
    import pandas as pd
    from sklearn.base import clone

    from valuegate.artifacts import load_pipeline, save_pipeline
    from valuegate.estimators import EarlyStoppingClassifier
    from valuegate.models import build_pipeline, predict_scores

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=500), "c": rng.choice(list("xyz"), 500)})  # noqa: N806
    y = (X["a"] + rng.normal(size=500) > 0).astype(int).to_numpy()
    cap = {"xgboost": {"n_estimators": 1000}, "hist_gradient_boosting": {"max_iter": 1000}}
    spec = ModelSpec.model_validate(
        {
            "estimator": estimator,
            "params": {**cap[estimator], "learning_rate": 0.3},
            "early_stopping": {"rounds": 10},
        }
    )
    pipeline = build_pipeline("model.m", spec, "binary", ["a"], ["c"], 0, time_ordered=True)
    pipeline.fit(X, y)
    fitted = pipeline.named_steps["estimator"]
    assert isinstance(fitted, EarlyStoppingClassifier) and fitted.time_ordered
    assert fitted.stopped_early_ and fitted.n_rounds_ < 1000  # stopped well before the cap
    assert list(pipeline.classes_) == [0, 1]
    if estimator == "xgboost":
        assert fitted.feature_importances_.shape == (4,)
        # The booster holds only the trees it predicts with: the bundle's hot path scores
        # with the raw booster and must agree with the pipeline to the bit.
        booster = fitted.estimator_.get_booster()
        assert booster.num_boosted_rounds() == fitted.n_rounds_
        encoded = pipeline.named_steps["preprocess"].transform(X)
        assert np.array_equal(
            booster.inplace_predict(encoded), predict_scores(pipeline, X, "binary")
        )
    copy = clone(pipeline)
    assert copy.get_params()["estimator__rounds"] == 10
    assert not hasattr(copy.named_steps["estimator"], "estimator_")
    save_pipeline(pipeline, tmp_path / "model.skops")
    loaded = load_pipeline(tmp_path / "model.skops")
    assert np.array_equal(
        predict_scores(loaded, X, "binary"), predict_scores(pipeline, X, "binary")
    )


def test_early_stopping_is_refused_where_it_cannot_apply():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="early_stopping: estimator 'random_forest' has no"):
        ModelSpec.model_validate({"estimator": "random_forest", "early_stopping": {}})
    with pytest.raises(ValidationError, match=r"params\.early_stopping_rounds: set early_stopping"):
        ModelSpec.model_validate({"estimator": "xgboost", "params": {"early_stopping_rounds": 9}})


def test_the_study_name_changes_with_what_a_trial_value_means(compose):
    from types import SimpleNamespace

    from valuegate.config.schema import EarlyStoppingConfig
    from valuegate.tuning import effective_folds, problem_fingerprint

    schema = SimpleNamespace(source_sha256="x", numeric=["a"], categorical=[], task="binary")
    base = compose("model=xgboost")
    spec = base.model["xgboost"]
    assert spec.early_stopping is not None  # on by default (conf/model/xgboost.yaml)

    def changed(group: str, **update):
        return base.model_copy(update={group: getattr(base, group).model_copy(update=update)})

    def with_spec(**update):
        return base.model_copy(update={"model": {"xgboost": spec.model_copy(update=update)}})

    name = study_name("xgboost", problem_fingerprint(base, schema, "xgboost", 1000))
    others = [
        (with_spec(early_stopping=EarlyStoppingConfig(rounds=20)), 1000),
        (with_spec(early_stopping=None), 1000),
        (base, 50_000),  # more training rows than tune.large_table_rows: fewer folds
        (changed("data", split=base.data.split.model_copy(update={"method": "time"})), 1000),
    ]
    for config, rows in others:
        assert study_name("xgboost", problem_fingerprint(config, schema, "xgboost", rows)) != name
    # Caps do not change what a trial means: the study resumes.
    capped = changed("tune", n_trials=5, timeout=60.0, pruner="successive_halving")
    assert study_name("xgboost", problem_fingerprint(capped, schema, "xgboost", 1000)) == name
    assert effective_folds(base.tune, 1000) == base.tune.n_folds == 5
    assert effective_folds(base.tune, 50_000) == base.tune.large_table_n_folds == 3


# ------------------------------------------------------------------ progress (14.3, 17.3)


def test_each_finished_trial_logs_the_best_value_so_far_in_money(caplog):
    import io
    import logging

    from valuegate.tuning import Progress

    values = iter([12_300.0, 14_100.0, 9_000.0])

    def objective(trial: optuna.Trial) -> float:
        if trial.number == 3:
            raise optuna.TrialPruned()
        return next(values)

    study = create_study("progress", None, 0, pruning=False, forced=False)
    stream = io.StringIO()  # not a terminal: lines, no bar
    with (
        caplog.at_level(logging.INFO, logger="valuegate.tuning"),
        Progress("xgboost", 40, "EUR/month", stream=stream) as report,
    ):
        run_study(study, objective, 4, None, StopOnValue(0, 10**9), on_trial=report)
    lines = [r.getMessage() for r in caplog.records if r.name == "valuegate.tuning"]
    # each line: the trial's value and time, n/N finished, the best so far, time elapsed
    patterns = [
        r"xgboost trial 0: 12,300 EUR/month in 0 s \(1/40 finished; best 12,300 EUR/month, "
        r"trial 0; 0 s elapsed\)",
        r"xgboost trial 1: 14,100 EUR/month in 0 s \(2/40 finished; best 14,100 EUR/month, "
        r"trial 1; 0 s elapsed\)",
        r"xgboost trial 2: 9,000 EUR/month in 0 s \(3/40 finished; best 14,100 EUR/month, "
        r"trial 1; 0 s elapsed\)",
        r"xgboost trial 3: pruned in 0 s \(4/40 finished; best 14,100 EUR/month, trial 1; "
        r"0 s elapsed\)",
    ]
    assert len(lines) == len(patterns)
    for line, pattern in zip(lines, patterns, strict=True):
        assert re.fullmatch(pattern, line), line
    assert "\r" not in stream.getvalue()  # no progress bar drawn into a log


def test_progress_clock_reads_as_seconds_minutes_or_hours():
    from valuegate.tuning import clock, progress_line

    assert [clock(s) for s in (4.4, 65, 3725)] == ["4 s", "1:05", "1:02:05"]
    line = progress_line(
        "xgboost",
        7,
        "stopped",
        None,
        None,
        8,
        40,
        "USD/month",
        took=301,
        elapsed=3725,
        note="over tune.trial_timeout (300 s): stopped after 301 s, 1 of 3 folds done",
    )
    assert line == (
        "xgboost trial 7: stopped in 5:01 (over tune.trial_timeout (300 s): stopped after "
        "301 s, 1 of 3 folds done) (8/40 finished; none yet; 1:02:05 elapsed)"
    )


# ------------------------------------------------------------ time budgets (issue 14.3)


def slow_xgboost_problem(n: int = 300):
    """An xgboost candidate whose `n_estimators` decides how long a fit takes: 100,000
    rounds at a tiny rate, no early stopping, take minutes; 5 take milliseconds."""
    import numpy as np
    import pandas as pd

    from valuegate.business import BinaryValueModel
    from valuegate.folds import make_folds
    from valuegate.tuning import TuningProblem

    rng = np.random.default_rng(0)
    features = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    y = (features["a"] + rng.normal(size=n) > 0.5).astype(int).to_numpy()
    spec = ModelSpec.model_validate(
        {
            "estimator": "xgboost",
            "params": {"learning_rate": 1e-4, "n_jobs": 1, "max_depth": 6},
            "search_space": {"n_estimators": {"type": "categorical", "choices": [5, 100_000]}},
        }
    )
    value = {"tp": (100.0, 0.0), "fp": (-20.0, 0.0), "fn": (0.0, 0.0), "tn": (0.0, 0.0)}
    return TuningProblem(
        key="model.xgboost",
        spec=spec,
        task="binary",
        numeric=["a", "b"],
        categorical=[],
        X=features,
        y=y,
        amount=None,
        value_model=BinaryValueModel(values=value, volume=1000),
        constraints=[],
        folds=make_folds(y, "binary", 3, 0),
        seed=0,
        estimator_overrides={},
    )


def test_a_trial_over_its_budget_is_stopped_mid_fit_recorded_and_the_study_goes_on():
    from valuegate.tuning import summarise

    problem = slow_xgboost_problem()
    problem.trial_timeout = 3.0  # the quick trial takes < 1 s even on a loaded machine
    study = create_study("budget", None, 0, pruning=True, forced=False)
    study.enqueue_trial({"n_estimators": 100_000})  # minutes unless stopped
    study.enqueue_trial({"n_estimators": 5})
    started = time.monotonic()
    assert run_study(study, problem.objective, 2, None, StopOnValue(0, 10**9)) == "n_trials"
    # stopped inside the first fold's boosting (the xgboost callback), not after 3 fits
    assert time.monotonic() - started < 30
    slow, quick = study.trials
    assert slow.state == TrialState.PRUNED and quick.state == TrialState.COMPLETE
    assert slow.user_attrs["stopped"].startswith("over tune.trial_timeout (3 s): stopped after")
    assert slow.user_attrs["stopped"].endswith("0 of 3 folds done")
    result = summarise(study, "xgboost", "n_trials", 1.0)
    assert result.summary()["trials_over_budget"] == 1 and result.n_complete == 1


def test_the_studys_timeout_stops_the_running_trial_and_only_stopped_trials_say_so():
    from valuegate.tuning import summarise

    problem = slow_xgboost_problem()
    problem.study_deadline = time.monotonic() + 1.0  # tune.timeout runs out in a second
    study = create_study("study-time", None, 0, pruning=False, forced=False)
    study.enqueue_trial({"n_estimators": 100_000})
    started = time.monotonic()
    assert run_study(study, problem.objective, 5, 1.0, StopOnValue(0, 10**9)) == "timeout"
    assert time.monotonic() - started < 15
    assert "tune.timeout" in study.trials[0].user_attrs["stopped"]
    with pytest.raises(
        ConfigError,
        match=r"no trial completed: 1 of 1 were stopped by their time budget.*tune.trial_timeout",
    ):
        summarise(study, "xgboost", "timeout", 1.0)


def test_tuning_on_a_sample_records_it_and_the_best_params_refit_on_every_row(compose):
    import numpy as np

    from valuegate.data import prepare
    from valuegate.pipeline.tune import refit_best
    from valuegate.tuning import tune_candidate

    frame = drifting_table(3000).drop(columns="when")
    config = compose(
        "data.path=x.csv",
        "data.target=label",
        "data.amount_column=null",
        "model=random_forest",
        "model.random_forest.params.n_estimators=10",
        "tune.sample_rows=1000",
        "tune.n_trials=2",
        "tune.n_folds=3",
        "gate.cross_fit.folds=2",
    )
    splits, schema = prepare(frame, config.data, config.seed, "")
    train = splits["train"]
    assert len(train) > 1000
    result = tune_candidate(config, schema, train, "random_forest", None)
    sample = result.summary()["sample"]
    assert sample == {
        "rows": 1000,
        "of": len(train),
        "how": "stratified by the label",
        "seed": config.seed,
    }
    # the sample keeps the label's share (stratified)
    from valuegate.data import target_vector
    from valuegate.tuning import build_problem, tuning_sample

    # trials fit the sample, encoded for the whole split (models.categorical_encoding)
    problem = build_problem(config, schema, train, "random_forest")
    assert len(problem.y) == 1000 and problem.train_rows == len(train)
    rows, _ = tuning_sample(config, schema, train)
    share = target_vector(train, config.data).mean()
    assert abs(target_vector(rows, config.data).mean() - share) < 1 / 1000
    tuned = refit_best(config, schema, splits, result)
    assert tuned.info["train_rows"] == len(train)  # the refit uses every training row
    # at or below the cap nothing is sampled, and the record says so
    whole = config.model_copy(update={"tune": config.tune.model_copy(update={"sample_rows": None})})
    assert tuning_sample(whole, schema, train)[1] == {}
    assert np.array_equal(tuning_sample(whole, schema, train)[0].index, train.index)


def test_successive_halving_over_folds_prunes_trials_that_trail_after_two_folds():
    import numpy as np

    problem = noise_problem()
    study = create_study("halving", None, 0, True, False, pruner="successive_halving")
    assert isinstance(study.pruner, optuna.pruners.SuccessiveHalvingPruner)
    for depth in (4, 2, 3, 4, 2, 3):
        study.enqueue_trial({"max_depth": depth})
    run_study(study, problem.objective, 6, None, StopOnValue(0, 10**9))
    states = [t.state for t in study.trials]
    assert TrialState.PRUNED in states and TrialState.COMPLETE in states
    for trial in study.trials:  # never before 2 folds: one fold alone is too noisy
        assert min(trial.intermediate_values) == 0
        assert trial.state != TrialState.PRUNED or len(trial.intermediate_values) >= 2
    assert np.isfinite(study.best_value)
