"""The allow-listed estimator registry and the preprocessing + estimator pipelines.

A config names an estimator by registry key (`xgboost`, `random_forest`, ...); it can
never name a Python class or module, so a config file cannot import and run code.
Preprocessing is part of each pipeline, so the fitted object scores raw rows.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from sklearn.utils._param_validation import InvalidParameterError
from xgboost import XGBClassifier, XGBRegressor

from valuegate.config.messages import nearest
from valuegate.config.schema import ModelSpec
from valuegate.errors import ConfigError


@dataclass(frozen=True)
class RegistryEntry:
    """How to build one allow-listed estimator for each task."""

    classifier: type[BaseEstimator]
    regressor: type[BaseEstimator]
    preprocessing: str  # "none" | "onehot" | "onehot_scaled" | "ordinal_native"
    defaults: dict[str, Any] = field(default_factory=dict)
    classifier_defaults: dict[str, Any] = field(default_factory=dict)


REGISTRY: dict[str, RegistryEntry] = {
    "dummy": RegistryEntry(DummyClassifier, DummyRegressor, "none"),
    "linear": RegistryEntry(
        LogisticRegression, Ridge, "onehot_scaled", classifier_defaults={"max_iter": 2000}
    ),
    "random_forest": RegistryEntry(
        RandomForestClassifier,
        RandomForestRegressor,
        "onehot",
        defaults={"n_estimators": 300, "min_samples_leaf": 2, "n_jobs": -1},
    ),
    "hist_gradient_boosting": RegistryEntry(
        HistGradientBoostingClassifier, HistGradientBoostingRegressor, "ordinal_native"
    ),
    "xgboost": RegistryEntry(
        XGBClassifier,
        XGBRegressor,
        "onehot",
        defaults={"tree_method": "hist", "n_estimators": 300, "learning_rate": 0.05},
    ),
}


def estimator_class(name: str, task: str) -> type[BaseEstimator]:
    entry = REGISTRY[name]
    return entry.classifier if task == "binary" else entry.regressor


def _accepted_params(cls: type[BaseEstimator]) -> list[str]:
    return sorted(cls().get_params(deep=False))


def check_param_names(where: str, names: Iterable[str], estimator: str, task: str) -> None:
    """Refuse a parameter name the estimator does not accept; `where` is the config path."""
    cls = estimator_class(estimator, task)
    accepted = _accepted_params(cls)
    for name in names:
        if name not in accepted:
            hint = nearest(name, accepted)
            raise ConfigError(
                f"{where.format(name=name)}: {cls.__name__} ({estimator!r}) has no parameter "
                f"{name!r}"
                + (f" (did you mean {hint!r}?)" if hint else "")
                + f". Accepted: {', '.join(accepted)}."
            )


def _clean_native_message(text: str) -> str:
    """xgboost's first line, without its '[time] source.cc:NN: ' prefix."""
    line = str(text).strip().splitlines()[0] if str(text).strip() else str(text)
    return re.sub(r"^\[[0-9:]+\] \S+: (Check failed: [^:]*: )?", "", line).strip()


_TINY_X = np.array([[0.0], [1.0], [0.0], [1.0], [0.5], [0.2]])
_TINY_Y = np.array([0, 1, 0, 1, 1, 0])
_checked: dict[tuple[str, str, str, str], str | None] = {}


def value_problem(estimator: str, task: str, name: str, value: Any) -> str | None:
    """Why `name=value` is invalid for `estimator` (None when it is valid), found the way
    the estimator itself validates: scikit-learn's parameter constraints, or for xgboost a
    fit on six rows (its checks run in the native library, at fit time)."""
    cache_key = (estimator, task, name, repr(value))
    if cache_key in _checked:
        return _checked[cache_key]
    cls = estimator_class(estimator, task)
    problem: str | None = None
    try:
        instance = cls(**{name: value})
        if hasattr(cls, "_parameter_constraints"):
            instance._validate_params()
        elif estimator == "xgboost":
            if name == "n_estimators" and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ValueError("n_estimators must be an integer >= 1")
            # (params sized by the features cannot be checked on a one-feature table)
            feature_sized = ("monotone_constraints", "interaction_constraints", "feature_weights")
            if name not in ("n_estimators", "n_jobs", "early_stopping_rounds", *feature_sized):
                fast = {"n_estimators": 1, "n_jobs": 1, name: value}
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    cls(**fast).fit(_TINY_X, _TINY_Y if task == "binary" else _TINY_Y * 1.0)
    except Exception as exc:  # each library raises its own type; the message is what counts
        problem = _clean_native_message(str(exc))
    _checked[cache_key] = problem
    return problem


def spec_problems(key: str, spec: ModelSpec, task: str) -> list[str]:
    """Every problem with one model's params and search space, one line each, naming the
    key path, the bad value and what is allowed (empty when the spec is fine)."""
    cls = estimator_class(spec.estimator, task)
    accepted = _accepted_params(cls)
    problems: list[str] = []

    def unknown(where: str, name: str) -> str:
        hint = nearest(name, accepted)
        return (
            f"{where}: {cls.__name__} ({spec.estimator!r}) has no parameter {name!r}"
            + (f" (did you mean {hint!r}?)" if hint else "")
            + f". Accepted: {', '.join(accepted)}."
        )

    for name, value in spec.params.items():
        if name not in accepted:
            problems.append(unknown(f"{key}.params.{name}", name))
            continue
        why = value_problem(spec.estimator, task, name, value)
        if why:
            problems.append(f"{key}.params.{name}: {value!r} is not valid: {why}")
    for name, dim in spec.search_space.items():
        where = f"{key}.search_space.{name}"
        if name not in accepted:
            problems.append(unknown(where, name))
            continue
        if dim.type == "categorical":
            points = list(dim.choices or [])
        elif dim.type == "int":
            points = [int(dim.low), int(dim.high)]  # type: ignore[arg-type]
        else:
            points = [float(dim.low), float(dim.high)]  # type: ignore[arg-type]
        for point in points:
            why = value_problem(spec.estimator, task, name, point)
            if why:
                what = "choice" if dim.type == "categorical" else "bound"
                problems.append(f"{where}: the {what} {point!r} is not valid: {why}")
                break
    return problems


def config_problems(config: Any) -> list[str]:
    """Problems with every baseline's and candidate's estimator params and search space
    (checked at compose/check time, whether or not tuning will run)."""
    problems: list[str] = []
    for name, (role, spec) in config.all_models().items():
        prefix = "baseline" if role == "baseline" else "model"
        problems += spec_problems(f"{prefix}.{name}", spec, config.data.task)
    return problems


def build_estimator(key: str, spec: ModelSpec, task: str, seed: int) -> BaseEstimator:
    """Instantiate the estimator for `spec`; `key` is its config path for messages."""
    entry = REGISTRY[spec.estimator]
    cls = estimator_class(spec.estimator, task)
    accepted = _accepted_params(cls)
    check_param_names(f"{key}.params", spec.params, spec.estimator, task)
    params: dict[str, Any] = dict(entry.defaults)
    if task == "binary":
        params.update(entry.classifier_defaults)
    if "random_state" in accepted:
        params["random_state"] = seed
    params = {k: v for k, v in params.items() if k in accepted}
    params.update(spec.params)
    try:
        estimator = cls(**params)
        validate = getattr(estimator, "_validate_params", None)
        if validate is not None and hasattr(cls, "_parameter_constraints"):
            validate()
    except (InvalidParameterError, TypeError, ValueError) as exc:
        raise ConfigError(f"{key}.params: {exc}") from None
    return estimator


# HistGradientBoosting's native categorical splits take at most `max_bins` (default and
# maximum 255) levels per feature; a column with more (an id-like code, a zip code) is
# encoded with its 254 most frequent levels kept and every rarer one in one shared
# "infrequent" level, instead of failing the fit.
HGB_MAX_BINS = 255


def _preprocessor(
    kind: str, numeric: list[str], categorical: list[str], max_categories: int | None = None
) -> ColumnTransformer:
    if kind == "onehot_scaled":
        num: Any = Pipeline(
            [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
        )
    elif kind == "onehot":
        num = SimpleImputer(strategy="median", keep_empty_features=True)
    else:
        num = "passthrough"
    if kind == "ordinal_native":
        cat: Any = OrdinalEncoder(
            handle_unknown="use_encoded_value",
            unknown_value=np.nan,
            encoded_missing_value=np.nan,
            max_categories=max_categories,
        )
    else:
        cat = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    transformers = []
    if numeric:
        transformers.append(("numeric", num, numeric))
    if categorical:
        transformers.append(("categorical", cat, categorical))
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)


def build_pipeline(
    key: str,
    spec: ModelSpec,
    task: str,
    numeric: list[str],
    categorical: list[str],
    seed: int,
) -> Pipeline:
    """Preprocessing + estimator for raw feature columns (numeric, then categorical)."""
    estimator = build_estimator(key, spec, task, seed)
    kind = REGISTRY[spec.estimator].preprocessing
    if kind == "none":
        return Pipeline([("estimator", estimator)])
    if kind == "ordinal_native" and categorical:
        mask = [False] * len(numeric) + [True] * len(categorical)
        if "categorical_features" not in spec.params:
            estimator.set_params(categorical_features=mask)
    max_categories = None
    if kind == "ordinal_native":
        max_bins = spec.params.get("max_bins", HGB_MAX_BINS)
        max_categories = max_bins if isinstance(max_bins, int) and max_bins >= 2 else None
    return Pipeline(
        [
            ("preprocess", _preprocessor(kind, numeric, categorical, max_categories)),
            ("estimator", estimator),
        ]
    )


def predict_scores(pipeline: Pipeline, X: pd.DataFrame, task: str) -> np.ndarray:  # noqa: N803
    """Positive-class probability (binary) or prediction (regression), shape (n,)."""
    if task == "binary":
        proba = pipeline.predict_proba(X)
        classes = list(pipeline.classes_)
        return np.asarray(proba[:, classes.index(1)], dtype=float)
    return np.asarray(pipeline.predict(X), dtype=float)


def accepts_sample_weight(pipeline: Pipeline) -> bool:
    final = pipeline.steps[-1][1]
    return "sample_weight" in inspect.signature(final.fit).parameters
