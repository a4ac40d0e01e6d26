"""Which `resources.*` keys are DVC params of the fitting stages (issue 14): the ones that
change what a stage writes. A Dask fit differs from an in-process one, so changing
`resources.dask_scheduler` must rerun every stage that fits; `resources.threads` does not
change a single bit of any model's scores (checked below), so it reruns nothing."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from tests.conftest import ROOT
from valuegate.resources import apply_threads, available_cores

# every stage that fits a model through training.fit_model (tune: the tuned refit)
FITTING_STAGES = ("baseline", "train", "tune")
RESULT_KEYS = ("resources.dask_scheduler", "resources.dask_sample_rows")
NO_RESULT_KEYS = ("resources.threads", "resources.max_memory_gb")


def stage_params(name: str) -> list[str]:
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][name]
    return [p for p in stage.get("do", stage)["params"] if isinstance(p, str)]


@pytest.mark.parametrize("stage", FITTING_STAGES)
def test_fitting_stages_rerun_when_the_dask_keys_change_not_the_thread_count(stage: str):
    params = stage_params(stage)
    for key in RESULT_KEYS:
        assert key in params, f"{stage}: {key} changes its models but is not a param"
    for key in (*NO_RESULT_KEYS, "resources"):
        assert key not in params, f"{stage}: {key} changes no result, it must rerun nothing"


@pytest.mark.skipif(available_cores() < 2, reason="needs 2 cores to compare thread counts")
def test_every_estimator_scores_the_same_bits_on_one_thread_and_on_two(compose):
    """Why `resources.threads` is not a param: each default model (xgboost one-hot and
    native, random forest, hist gradient boosting, linear) fitted with 1 and with 2 threads
    (OpenMP / BLAS limits and n_jobs, as `training.fit_model` applies them) gives
    identical scores."""
    from tests.synthetic import flights
    from valuegate.models import build_pipeline, fit_pipeline, predict_scores

    config = compose()
    frame = flights(3000, seed=0, with_delay=False)
    y = (frame.pop("status") == "late").to_numpy(dtype=int)
    numeric = ["sched_dep_time", "dep_time", "distance"]
    categorical = ["carrier", "tailnum", "dest"]
    fit_rows, score_rows = frame.iloc[:2400], frame.iloc[2400:]
    specs = {f"model.{name}": spec for name, spec in config.model.items()}
    specs["baseline.linear"] = config.baseline["linear"]
    xgboost = config.model["xgboost"]
    specs["model.xgboost (native)"] = xgboost.model_copy(
        update={"categorical": xgboost.categorical.model_copy(update={"encoding": "native"})}
    )
    forest = config.model["random_forest"]  # fewer, shallower trees: the same code path
    specs["model.random_forest"] = forest.model_copy(
        update={"params": {**forest.params, "n_estimators": 20, "max_samples": 1000}}
    )
    scores: dict[int, dict[str, np.ndarray]] = {}
    try:
        for threads in (1, 2):
            assert apply_threads(SimpleNamespace(threads=threads)) == threads
            scores[threads] = {}
            for key, spec in specs.items():
                pipeline = build_pipeline(
                    key, spec, "binary", numeric, categorical, config.seed, time_ordered=True
                )
                fit_pipeline(pipeline, fit_rows[numeric + categorical], y[:2400])
                scores[threads][key] = predict_scores(
                    pipeline, score_rows[numeric + categorical], "binary"
                )
    finally:
        apply_threads(None)
    for key in specs:
        assert np.array_equal(scores[1][key], scores[2][key]), key
