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


def test_deep_validation_lists_every_bad_param_and_bound(compose):
    from valuegate.config.loading import deep_validate

    config = compose(
        "model.xgboost.params.max_depth=-3",
        "model.random_forest.params.max_features=sqr",
        "model.hist_gradient_boosting.search_space.learning_rate.low=-1",
        "model.hist_gradient_boosting.search_space.learning_rate.log=false",
    )
    with pytest.raises(ConfigError) as caught:
        deep_validate(config, "test")
    lines = str(caught.value).splitlines()
    assert "(3 problems)" in lines[0]
    assert any(
        line.startswith("  - model.xgboost.params.max_depth: -3 is not valid") for line in lines
    )
    assert any("model.random_forest.params.max_features: 'sqr'" in line for line in lines)
    assert any("model.hist_gradient_boosting.search_space.learning_rate" in line for line in lines)
    deep_validate(compose(), "test", ROOT / "conf")  # the shipped config is fine


def test_constraints_that_can_never_be_met_are_refused(compose):
    with pytest.raises(ConfigError, match=r"'precision >= 1.01' can never be met"):
        compose('objective.constraints=["precision >= 1.01"]')
    with pytest.raises(ConfigError, match=r"'mae <= -1' can never be met: mae is always at"):
        compose("+experiment=diabetes", 'objective.constraints=["mae <= -1"]')
    # A bound at the edge is a no-op, not an error.
    assert compose('objective.constraints=["recall >= 0"]').constraints[0].bound == 0


def test_data_name_of_another_dataset_with_another_path_is_refused(compose):
    from valuegate.config.loading import data_name_problems

    assert data_name_problems(compose(), ROOT / "conf") == []
    assert data_name_problems(compose("+experiment=diabetes"), ROOT / "conf") == []
    (problem,) = data_name_problems(compose("data.path=data/raw/mine.csv"), ROOT / "conf")
    assert problem.startswith("data.name: 'german_credit' is the name of conf/data/german_")
    assert "data.name=mine" in problem and "models/registry" in problem


def test_yaml_error_in_conf_names_file_line_and_column(tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", conf)
    path = conf / "gate" / "default.yaml"
    path.write_text(path.read_text() + "strict:\n\tfalse\n")
    with pytest.raises(ConfigError) as caught:
        compose_config(conf)
    message = str(caught.value)
    assert "conf/gate/default.yaml:" in message and "tab" in message
    assert "Traceback" not in message
