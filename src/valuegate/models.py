"""The allow-listed estimator registry and the preprocessing + estimator pipelines.

A config names an estimator by registry key (`xgboost`, `random_forest`, ...); it can
never name a Python class or module, so a config file cannot import and run code.
Preprocessing is part of each pipeline, so the fitted object scores raw rows.
"""

from __future__ import annotations

import copy
import inspect
import itertools
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
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler, TargetEncoder
from xgboost import XGBClassifier, XGBRegressor

from valuegate.config.messages import nearest
from valuegate.config.schema import ModelSpec
from valuegate.errors import ConfigError
from valuegate.estimators import with_early_stopping
from valuegate.resources import thread_params


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


def check_sklearn_params(estimator: BaseEstimator) -> None:
    """Check an unfitted estimator's params against the constraints its class declares,
    without fitting; ValueError / TypeError (scikit-learn's InvalidParameterError is both)
    naming the param, the bad value and what is allowed. No-op for classes that declare
    none (xgboost's wrappers: `value_problem` checks those by a fit).

    PRIVATE scikit-learn API (`_parameter_constraints`, `_validate_params`): scikit-learn
    offers no public way to check params before `fit`, and a fit on a few rows would refuse
    valid data-sized params (`max_features=5` on a one-feature table). Hence the upper bound
    on scikit-learn in pyproject.toml and the guard tests/test_private_apis.py, which fails
    when a release changes either name or what it raises: raise the bound only after that
    test passes on the new release."""
    if hasattr(type(estimator), "_parameter_constraints"):
        estimator._validate_params()


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
        check_sklearn_params(instance)
        if estimator == "xgboost":
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
    # Threads from one place (resources.threads): never more than the process's cores.
    # (LogisticRegression's n_jobs does nothing since scikit-learn 1.8: its BLAS threads
    # are limited through threadpoolctl.)
    if spec.estimator != "linear":
        params.update(thread_params(accepted, params))
    try:
        estimator = cls(**params)
        check_sklearn_params(estimator)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{key}.params: {exc}") from None
    return estimator


# HistGradientBoosting's native categorical splits take at most `max_bins` (default and
# maximum 255) levels per feature; a column with more (an id-like code, a zip code) is
# encoded with its 254 most frequent levels kept and every rarer one in one shared
# "infrequent" level, instead of failing the fit.
HGB_MAX_BINS = 255

# What `categorical.encoding: auto` means for each preprocessing kind of the registry.
AUTO_ENCODING = {"onehot": "onehot", "onehot_scaled": "onehot", "ordinal_native": "native"}
# Estimators that learn from a scipy sparse matrix exactly as from the dense one. Not
# xgboost: it reads an entry absent from a sparse matrix as *missing*, not 0, so a real 0 in
# a numeric column would become "missing" and the dense serving path would disagree; its
# one-hot block stays dense, of bounded width (`categorical.max_categories`).
SPARSE_ONEHOT = ("linear",)
# Estimators with a distributed fit (xgboost's Dask API): the ones `resources.dask_scheduler`
# sends to a cluster (distributed/train.py) and the memory guard names that fix for.
DASK_FIT = ("xgboost",)
# `auto` for xgboost on a training split of more than this many rows: its native
# categorical splits (one column per categorical) instead of the dense one-hot block.
# Each boosting round costs in proportion to rows x columns: on bench/scale.py's 196,200
# training rows one-hot is 197 columns against 15 (one fit: 55 s CPU against ~14), at the
# same validation ROC AUC on 30,000 rows (0.7199 / 0.7194). Smaller tables, the example's
# 600 rows among them, keep one-hot. Decided on the whole training split, so a model's
# cross-fitting folds and its tuning trials (on a sample) encode as its final fit does.
NATIVE_ABOVE_ROWS = {"xgboost": 100_000}
# `auto` for a random forest on a training split of more than this many rows: target
# encoding (one cross-fitted column per categorical) instead of the dense one-hot block.
# A forest tries sqrt(columns) features per split, each sorted at every node: on
# bench/scale.py's 196,200 training rows one-hot is 197 columns (14 tried per split)
# against 15 (3). One fit of 100 trees there (loaded machine, CPU seconds): one-hot 20.5 s
# fit + 2.6 s to score 65,400 validation rows, 935 MB, valid ROC AUC 0.7072; target 13.9 s
# + 1.4 s, 437 MB, 0.7151 (the 100-level route keeps all its levels instead of 63 + one
# shared column). Same decision rule as NATIVE_ABOVE_ROWS; the example's 600 rows keep
# one-hot (its models and values are unchanged).
TARGET_ABOVE_ROWS = {"random_forest": 100_000}


def categorical_encoding(spec: ModelSpec, train_rows: int | None = None) -> str:
    """The encoding `spec` gets: "none", "onehot", "target" or "native". `train_rows`:
    the rows of the training split the model is fitted for (`auto` may depend on it,
    `NATIVE_ABOVE_ROWS`, `TARGET_ABOVE_ROWS`); None: `auto` means the registry kind's own."""
    kind = REGISTRY[spec.estimator].preprocessing
    if kind == "none":
        return "none"
    chosen = spec.categorical.encoding
    if chosen != "auto":
        return chosen
    for encoding, rule in (("native", NATIVE_ABOVE_ROWS), ("target", TARGET_ABOVE_ROWS)):
        above = rule.get(spec.estimator)
        if above is not None and train_rows is not None and train_rows > above:
            return encoding
    return AUTO_ENCODING[kind]


def categorical_limits(spec: ModelSpec) -> tuple[int | None, int | None]:
    """(min_frequency, max_categories) for `spec`'s encoder; for hist_gradient_boosting
    the levels are also capped at its `max_bins` (its native splits take no more)."""
    cat = spec.categorical
    max_categories = cat.max_categories
    if spec.estimator == "hist_gradient_boosting" and categorical_encoding(spec) == "native":
        max_bins = spec.params.get("max_bins", HGB_MAX_BINS)
        if isinstance(max_bins, int) and max_bins >= 2:
            max_categories = max_bins if max_categories is None else min(max_categories, max_bins)
    return cat.min_frequency, max_categories


def _preprocessor(
    kind: str,
    numeric: list[str],
    categorical: list[str],
    max_categories: int | None = None,
    *,
    encoding: str | None = None,
    min_frequency: int | None = None,
    sparse: bool = False,
    task: str = "binary",
    seed: int = 0,
) -> ColumnTransformer:
    """Impute (and scale) numeric columns, encode categorical ones.

    `encoding`: "onehot" (levels rarer than `min_frequency` training rows, and beyond the
    `max_categories - 1` most frequent, share one "infrequent" column; unseen levels go
    there too; a sparse matrix when `sparse`), "native" (ordinal codes for an estimator's
    own categorical splits, same bucketing, unseen and missing as NaN) or "target"
    (scikit-learn's TargetEncoder, cross-fitted on the training rows; one column per
    feature). Default: the registry kind's own (`AUTO_ENCODING`).
    """
    encoding = encoding or AUTO_ENCODING.get(kind, "onehot")
    if kind == "onehot_scaled":
        num: Any = Pipeline(
            [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
        )
    elif kind == "onehot":
        num = SimpleImputer(strategy="median", keep_empty_features=True)
    else:
        num = "passthrough"
    if encoding == "native":
        cat: Any = OrdinalEncoder(
            handle_unknown="use_encoded_value",
            unknown_value=np.nan,
            encoded_missing_value=np.nan,
            min_frequency=min_frequency,
            max_categories=max_categories,
        )
    elif encoding == "target":
        # It cross-fits itself: each training row is encoded by the other folds' means.
        folds = (StratifiedKFold if task == "binary" else KFold)(5, shuffle=True, random_state=seed)
        cat = TargetEncoder(target_type="binary" if task == "binary" else "continuous", cv=folds)
        if kind == "onehot_scaled":
            cat = Pipeline([("encode", cat), ("scale", StandardScaler())])
    else:
        cat = OneHotEncoder(
            handle_unknown="infrequent_if_exist",
            sparse_output=sparse,
            min_frequency=min_frequency,
            max_categories=max_categories,
        )
    transformers = []
    if numeric:
        transformers.append(("numeric", num, numeric))
    if categorical:
        transformers.append(("categorical", cat, categorical))
    return ColumnTransformer(
        transformers,
        remainder="drop",
        verbose_feature_names_out=False,
        # sparse in, sparse out (any density): the linear model's one-hot block
        sparse_threshold=1.0 if sparse else 0.0,
    )


def build_pipeline(
    key: str,
    spec: ModelSpec,
    task: str,
    numeric: list[str],
    categorical: list[str],
    seed: int,
    time_ordered: bool = False,
    train_rows: int | None = None,
) -> Pipeline:
    """Preprocessing + estimator for raw feature columns (numeric, then categorical); the
    categorical encoding follows `spec.categorical` (see `_preprocessor`; `auto` may depend
    on `train_rows`, the training split's rows: `categorical_encoding`). With
    `spec.early_stopping`, the estimator stops on an inner validation part of the rows it
    is fitted on: their last ones when `time_ordered` (valuegate.estimators)."""
    estimator = build_estimator(key, spec, task, seed)
    kind = REGISTRY[spec.estimator].preprocessing
    if kind == "none":
        return Pipeline([("estimator", estimator)])
    encoding = categorical_encoding(spec, train_rows)
    if encoding == "native" and categorical:
        mask = [False] * len(numeric) + [True] * len(categorical)
        if spec.estimator == "hist_gradient_boosting":
            if "categorical_features" not in spec.params:
                estimator.set_params(categorical_features=mask)
        elif "feature_types" not in spec.params:  # xgboost: codes are categories
            estimator.set_params(
                enable_categorical=True, feature_types=["c" if m else "q" for m in mask]
            )
    min_frequency, max_categories = categorical_limits(spec)
    pre = _preprocessor(
        kind,
        numeric,
        categorical,
        max_categories,
        encoding=encoding,
        min_frequency=min_frequency,
        sparse=spec.estimator in SPARSE_ONEHOT and encoding == "onehot",
        task=task,
        seed=seed,
    )
    estimator = with_early_stopping(estimator, task, spec.early_stopping, time_ordered, seed)
    return Pipeline([("preprocess", pre), ("estimator", estimator)])


def fit_pipeline(pipeline: Pipeline, X: pd.DataFrame, y: np.ndarray) -> Pipeline:  # noqa: N803
    """`pipeline.fit(X, y)` (X: n rows of raw features, y: (n,)), with a forest's integer
    `max_samples` (rows drawn per tree) capped at the n rows given.

    scikit-learn draws an integer `max_samples` rows WITH replacement even from fewer rows,
    so `max_samples: 20000` would weigh each of 600 rows about 33 times. Capped (n rows
    drawn from n is what `None` does), a table at or below the bound is fitted exactly as
    without it, and only larger ones are subsampled per tree. Every fit of the pipeline
    (training.fit_model, its cross-fitting, tuning's folds) goes through here."""
    final = pipeline.steps[-1][1]
    bound = getattr(final, "max_samples", None)
    if (
        isinstance(bound, int)
        and not isinstance(bound, bool)
        and getattr(final, "bootstrap", False)
        and bound >= len(X)
    ):
        final.set_params(max_samples=None)
    return pipeline.fit(X, y)


def _one_thread_forest(pipeline: Pipeline) -> tuple[Pipeline, int]:
    """(a pipeline that predicts the same in one thread, the threads the original used).

    A forest (random forest, extra trees, bagging) with n_jobs > 1 adds its trees'
    predictions into one array in whatever order its threads finish, so the same model
    gives scores that differ in the last bit from run to run, and with them the hash of
    predictions.parquet in dvc.lock. The copy (shallow: the fitted trees are shared, the
    original is not touched) adds them in tree order; `predict_scores` splits the rows
    across threads instead, which keeps the speed and the order."""
    name, final = pipeline.steps[-1]
    n_jobs = getattr(final, "n_jobs", None)
    if not hasattr(final, "estimators_") or n_jobs in (None, 1):
        return pipeline, 1
    from joblib import effective_n_jobs

    single = copy.copy(final)
    single.n_jobs = 1
    return Pipeline([*pipeline.steps[:-1], (name, single)]), effective_n_jobs(n_jobs)


def predict_scores(pipeline: Pipeline, X: pd.DataFrame, task: str) -> np.ndarray:  # noqa: N803
    """Positive-class probability (binary) or prediction (regression), shape (n,); the
    same bits on every run (`_one_thread_forest`)."""
    pipeline, threads = _one_thread_forest(pipeline)

    def score(rows: pd.DataFrame) -> np.ndarray:
        if task == "binary":
            proba = pipeline.predict_proba(rows)
            return np.asarray(proba[:, list(pipeline.classes_).index(1)], dtype=float)
        return np.asarray(pipeline.predict(rows), dtype=float)

    if threads <= 1 or len(X) < 2 * threads:
        return score(X)
    from concurrent.futures import ThreadPoolExecutor

    # each row's trees are added in tree order whichever thread scores it (the trees
    # release the GIL, so the threads run in parallel)
    bounds = np.linspace(0, len(X), threads + 1).astype(int)
    with ThreadPoolExecutor(threads) as pool:
        parts = pool.map(score, [X.iloc[a:b] for a, b in itertools.pairwise(bounds)])
        return np.concatenate(list(parts))


def accepts_sample_weight(pipeline: Pipeline) -> bool:
    final = pipeline.steps[-1][1]
    return "sample_weight" in inspect.signature(final.fit).parameters
