"""Guards on the one private library API valuegate still uses, and on the public ones that
replaced the others (issue 13 item 3).

scikit-learn offers no public way to check an estimator's params before `fit`
(`models.check_sklearn_params` uses `_parameter_constraints` / `_validate_params`), so
pyproject.toml bounds scikit-learn to the releases this guard passed on. If a release
renames them or stops raising, these tests fail before a wrong config passes silently.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from valuegate.models import REGISTRY, check_sklearn_params, estimator_class
from valuegate.tuning import fail_stale_running, open_storage


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_every_sklearn_estimator_declares_the_constraints_the_check_reads(task):
    """A renamed `_parameter_constraints` would make the check a silent no-op."""
    sklearn_classes = [
        estimator_class(name, task)
        for name in REGISTRY
        if estimator_class(name, task).__module__.startswith("sklearn.")
    ]
    assert sklearn_classes
    for cls in sklearn_classes:
        assert isinstance(getattr(cls, "_parameter_constraints", None), dict), cls
        assert callable(getattr(cls, "_validate_params", None)), cls


def test_the_sklearn_check_refuses_a_bad_value_and_names_it():
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    check_sklearn_params(LogisticRegression(C=1.0))
    with pytest.raises(ValueError, match="'C' parameter of LogisticRegression"):
        check_sklearn_params(LogisticRegression(C=-1.0))
    with pytest.raises(TypeError):  # InvalidParameterError is both
        check_sklearn_params(RandomForestClassifier(criterion="nonsense"))
    # data-sized params are not judged without data
    check_sklearn_params(RandomForestClassifier(max_features=50))


def test_xgboost_wrappers_are_left_to_the_fit_check():
    from xgboost import XGBClassifier

    check_sklearn_params(XGBClassifier(max_depth=-3))  # no constraints declared: no-op


def _stale_study(storage) -> optuna.Study:
    study = optuna.create_study(study_name="s", storage=storage)
    study.ask()  # left RUNNING, as by a killed worker
    study.tell(study.ask(), 1.0)
    return study


@pytest.mark.parametrize("kind", ["journal", "sqlite", "memory"])
def test_stale_running_trials_fail_through_public_storage_calls(tmp_path: Path, kind):
    """`fail_stale_running` uses the storage it was given (public methods), not
    `study._storage` / `trial._trial_id`; an RDB storage is wrapped in Optuna's cache by
    the study, and the state change must still show through it."""
    if kind == "journal":
        storage = open_storage(None, tmp_path / "optuna.journal")
    elif kind == "sqlite":
        storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'o.db'}")
    else:
        storage = open_storage(None, None)
    study = _stale_study(storage)
    assert fail_stale_running(study, storage) == 1
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert states == [TrialState.FAIL, TrialState.COMPLETE]
    assert fail_stale_running(study, storage) == 0
