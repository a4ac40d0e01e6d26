"""The allow-listed estimator registry and the preprocessing + estimator pipelines.

A config names an estimator by registry key (`xgboost`, `random_forest`, ...); it can
never name a Python class or module, so a config file cannot import and run code.
Preprocessing is part of each pipeline, so the fitted object scores raw rows.
"""

from __future__ import annotations

import inspect
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


def _preprocessor(kind: str, numeric: list[str], categorical: list[str]) -> ColumnTransformer:
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
    return Pipeline(
        [("preprocess", _preprocessor(kind, numeric, categorical)), ("estimator", estimator)]
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
