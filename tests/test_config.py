"""Config composition (Hydra compose API) and the messages a broken config produces."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, tool_env
from valuegate.config import compose_config, load_params, write_params
from valuegate.errors import ConfigError, StaleParamsError
from valuegate.models import build_estimator


def test_default_composition(compose):
    config = compose()
    assert config.data.task == "binary"
    assert list(config.baseline) == ["dummy", "linear"]
    assert list(config.model) == ["xgboost", "random_forest", "hist_gradient_boosting"]
    assert len(config.meta.conf_fingerprint) == 16


def test_model_group_selects_and_overrides(compose):
    assert list(compose("model=xgboost").model) == ["xgboost"]
    assert list(compose("model=[random_forest,xgboost]").model) == ["random_forest", "xgboost"]
    config = compose("model.xgboost.params.max_depth=7", "objective.volume=5000")
    assert config.model["xgboost"].params["max_depth"] == 7
    assert config.objective.volume == 5000


def test_experiment_presets_compose(compose):
    regression = compose("+experiment=diabetes")
    assert regression.data.task == "regression" and regression.objective.cost is not None
    by_amount = compose("+experiment=credit_by_amount")
    assert list(by_amount.model) == ["xgboost"]
    assert by_amount.objective.outcomes.tn.per_amount == pytest.approx(0.09)


def problems(compose, *overrides: str) -> str:
    with pytest.raises(ConfigError) as info:
        compose(*overrides)
    return str(info.value)


def test_misspelt_key_names_path_and_nearest_key(compose):
    message = problems(compose, "+model.xgboost.parms={}")
    assert "model.xgboost.parms: unknown key 'parms' (did you mean 'params'?)" in message
    assert "Allowed keys here: estimator, params, search_space" in message


def test_wrong_type_names_path_and_value(compose):
    message = problems(compose, "objective.volume=lots")
    assert "objective.volume" in message and "'lots'" in message


def test_unknown_estimator_lists_the_allowed_ones(compose):
    message = problems(compose, "model.xgboost.estimator=xgbost")
    assert "model.xgboost.estimator: 'xgbost' is not allowed (did you mean 'xgboost'?)" in message
    assert "random_forest" in message and "hist_gradient_boosting" in message


def test_unknown_model_group_option_is_a_config_error():
    with pytest.raises(ConfigError, match="xgbost"):
        compose_config(ROOT / "conf", ["model=xgbost"])


def test_every_problem_is_listed_at_once(compose):
    message = problems(
        compose, "data.task=binry", "data.split.train=0.7", "+objective.outcomes.fpp=1"
    )
    assert "(3 problems)" in message
    assert "'binry' is not allowed (did you mean 'binary'?)" in message
    assert "must sum to 1" in message
    assert "did you mean 'fp'?" in message


def test_constraint_typo(compose):
    message = problems(compose, "objective.constraints=['precison >= 0.5']")
    assert "objective.constraints[0]" in message and "did you mean 'precision'?" in message


def test_objective_must_match_task(compose):
    message = problems(compose, "data=diabetes")
    assert "objective.cost" in message and "regression" in message


def test_baseline_must_include_a_dummy_and_a_simple_model(compose):
    message = problems(compose, "~baseline.dummy")
    assert "baseline must hold a 'dummy' model" in message


def test_unknown_estimator_parameter_suggests_nearest(compose):
    config = compose("+model.xgboost.params.max_dpth=3")
    with pytest.raises(ConfigError) as info:
        build_estimator("model.xgboost", config.model["xgboost"], "binary", 0)
    assert "model.xgboost.params" in str(info.value)
    assert "'max_dpth' (did you mean 'max_depth'?)" in str(info.value)


def test_invalid_estimator_parameter_value(compose):
    config = compose("model.random_forest.params.n_estimators=-3")
    with pytest.raises(ConfigError, match=r"model\.random_forest\.params.*n_estimators"):
        build_estimator("model.random_forest", config.model["random_forest"], "binary", 0)


def test_stale_params_are_refused(tmp_path: Path):
    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", conf)
    write_params(compose_config(conf), tmp_path / "params.yaml")
    assert load_params(tmp_path / "params.yaml").data.name == "german_credit"
    objective = conf / "objective" / "german_credit.yaml"
    objective.write_text(objective.read_text().replace("volume: 2000", "volume: 3000"))
    with pytest.raises(StaleParamsError) as info:
        load_params(tmp_path / "params.yaml")
    assert "dvc exp run" in str(info.value) and "valuegate compose" in str(info.value)


def test_cli_prints_config_errors_without_traceback(tmp_path: Path):
    shutil.copytree(ROOT / "conf", tmp_path / "conf")
    result = subprocess.run(
        [sys.executable, "-m", "valuegate.cli", "compose", "data.task=binry"],
        cwd=tmp_path,
        env=tool_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "data.task: 'binry' is not allowed" in result.stderr
    assert not (tmp_path / "params.yaml").exists()  # nothing written


def test_per_amount_values_need_an_amount_column(compose):
    message = problems(compose, "objective=german_credit_by_amount", "data.amount_column=null")
    assert "objective.outcomes.fn.per_amount is set but data.amount_column is null" in message
