"""Fit an xgboost model on a Dask cluster with xgboost's Dask API, into the same
scikit-learn pipeline the single-process path builds, so it is saved, packaged and scored
(`valuegate serve`, `valuegate predict`) like any other model.

The preprocessing is not a second copy: `models.build_pipeline` builds the pipeline, its
`preprocess` step (the ColumnTransformer: imputer, one-hot or ordinal encoder with the
model's bucketing) is fitted once, in this process, on a seeded sample of at most
`resources.dask_sample_rows` training rows, and that fitted object encodes every
partition on the workers and stays in the bundle. With fewer training rows than that it
is fitted on all of them, exactly as in one process. Then `xgboost.dask.DaskXGBClassifier`
(or Regressor) fits on the encoded partitions, and its booster is loaded into the
pipeline's own XGBClassifier (`load_model`: xgboost's format, no pickle).

Differences from the single-process fit, by design: the histograms are sketched per
worker (xgboost's distributed hist), so trees can differ slightly; early stopping's inner
validation part is the last `validation_fraction` of the rows when they are in time order
(as in one process) and otherwise a seeded per-partition draw of that fraction (not
stratified: a stratified draw needs the label counts of every partition first); target
encoding is refused (its cross-fitted training encoding needs every row in one process).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from valuegate.config.schema import DataConfig, ModelSpec
from valuegate.data import target_vector
from valuegate.errors import ConfigError, DataError
from valuegate.estimators import MIN_VALIDATION_ROWS
from valuegate.models import DASK_FIT, build_pipeline, categorical_encoding

log = logging.getLogger(__name__)

TARGET = "__valuegate_target__"
VALIDATION = "__valuegate_validation__"


def fits_on_dask(resources: Any, spec: ModelSpec) -> bool:
    """True when `spec` is fitted on the Dask cluster: a scheduler is set and the
    estimator is xgboost (the one with a distributed fit)."""
    return getattr(resources, "dask_scheduler", None) is not None and spec.estimator in DASK_FIT


@dataclass
class DaskFit:
    """A pipeline fitted on Dask, and what the fit did (for fit.json: `info`)."""

    pipeline: Pipeline
    info: dict[str, Any] = field(default_factory=dict)


def _features(part: pd.DataFrame, pre: Any, features: list[str]) -> pd.DataFrame:
    """One partition -> its encoded features by the fitted `pre`, as float32 (what
    xgboost stores: the single-process path's float64 matrix rounds to the same values)."""
    encoded = pre.transform(part[features])
    if hasattr(encoded, "toarray"):
        encoded = encoded.toarray()
    return pd.DataFrame(
        np.asarray(encoded, dtype=np.float32),
        index=part.index,
        columns=[f"f{i}" for i in range(encoded.shape[1])],
    )


def _encode(part: pd.DataFrame, pre: Any, features: list[str], data: DataConfig) -> pd.DataFrame:
    """One partition -> its encoded features and its 0/1 or numeric target
    (`data.target_vector`, as in one process)."""
    out = _features(part, pre, features)
    out[TARGET] = target_vector(part, data)
    return out


def _mark_validation(
    part: pd.DataFrame, fraction: float, seed: int, partition_info: dict | None = None
) -> pd.Series:
    number = (partition_info or {}).get("number", 0)
    draw = np.random.default_rng([seed, number]).random(len(part))
    return pd.Series(draw < fraction, index=part.index, name=VALIDATION)


def _last_rows(part: pd.DataFrame, offsets: np.ndarray, start: int, partition_info=None):
    number = (partition_info or {}).get("number", 0)
    positions = offsets[number] + np.arange(len(part))
    return pd.Series(positions >= start, index=part.index, name=VALIDATION)


def _estimator_params(estimator: Any) -> dict[str, Any]:
    """The unfitted xgboost estimator's params for its Dask twin; threads come from each
    worker's own thread count (its `nthreads`), not from this process's."""
    params = dict(estimator.get_params())
    params.pop("n_jobs", None)
    params.pop("early_stopping_rounds", None)
    return params


def _as_local(estimator: Any, booster: Any) -> Any:
    """The pipeline's own unfitted XGBClassifier/Regressor holding `booster`'s trees."""
    from sklearn.base import clone

    local = clone(estimator)
    local.load_model(bytearray(booster.save_raw("ubj")))
    return local


def fit_on_dask(
    client: Any,
    key: str,
    spec: ModelSpec,
    data: DataConfig,
    numeric: list[str],
    categorical: list[str],
    seed: int,
    frame: Any,
    time_ordered: bool = False,
    sample_rows: int = 200_000,
) -> DaskFit:
    """Fit `spec` (an xgboost ModelSpec; `key` its config path for messages) on a
    dask.dataframe `frame` holding the feature columns and `data.target` (one row per
    training row, in file order), on `client`'s cluster.

    Returns the fitted sklearn Pipeline (preprocess -> estimator, the estimator wrapped for
    early stopping when `spec.early_stopping` is set, as `build_pipeline` makes it) and
    what the fit did: rows, partitions, workers, rows the preprocessing saw, rounds."""
    from xgboost import dask as dxgb

    from valuegate.distributed.cluster import worker_count

    if spec.estimator not in DASK_FIT:
        raise ConfigError(f"{key}: only {', '.join(DASK_FIT)} fits on Dask, not {spec.estimator!r}")
    # 'target' is only ever chosen explicitly (never by `auto`), so no row count is needed
    if categorical and categorical_encoding(spec) == "target":
        raise ConfigError(
            f"{key}.categorical.encoding: 'target' is not available with "
            "resources.dask_scheduler (its cross-fitted encoding of the training rows needs "
            "every row in one process). Allowed there: auto, onehot, native."
        )
    task = "binary" if data.task == "binary" else "regression"
    features = [*numeric, *categorical]
    started = time.perf_counter()
    lengths = np.asarray(frame.map_partitions(len).compute(), dtype=np.int64)
    rows = int(lengths.sum())
    if rows == 0:
        raise DataError(f"{key}: no training rows to fit on")
    # train_rows: encoded as the in-process fit of the same rows is (native above
    # models.NATIVE_ABOVE_ROWS), so the cross-fit and this fit agree
    pipeline = build_pipeline(
        key, spec, task, numeric, categorical, seed, time_ordered, train_rows=rows
    )
    pre = pipeline.named_steps["preprocess"]
    final = pipeline.named_steps["estimator"]
    inner = getattr(final, "estimator", final)  # early stopping wraps the estimator

    # The preprocessing is fitted once, here, on a seeded sample (all rows when fewer).
    if rows <= sample_rows:
        sample = frame.compute()
    else:
        sample = frame.sample(frac=sample_rows / rows, random_state=seed).compute()
    pre.fit(sample[features], target_vector(sample, data))
    sample_size = len(sample)
    meta = _encode(sample.head(1), pre, features, data).iloc[:0]
    del sample

    # Encoded once and kept on the workers: the fit reads it more than once (lengths,
    # the early-stopping split, the quantile sketch).
    encoded = client.persist(frame.map_partitions(_encode, pre, features, data, meta=meta))
    settings = spec.early_stopping
    n_val = round(rows * settings.validation_fraction) if settings else 0
    stop = settings is not None and min(n_val, rows - n_val) >= MIN_VALIDATION_ROWS
    if settings is not None and not stop:
        log.warning(
            "%s: early stopping: %d rows leave too few for an inner validation part; "
            "fitting on all of them at the estimator's own round cap",
            key,
            rows,
        )
    cls = dxgb.DaskXGBClassifier if task == "binary" else dxgb.DaskXGBRegressor
    columns = [c for c in encoded.columns if c != TARGET]
    model = cls(**_estimator_params(inner))
    model.client = client
    if stop:
        if time_ordered:  # the last rows, as in one process: the period the model meets next
            offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
            mask = encoded.map_partitions(
                _last_rows, offsets, rows - n_val, meta=(VALIDATION, bool)
            )
        else:
            fraction = settings.validation_fraction
            mask = encoded.map_partitions(_mark_validation, fraction, seed, meta=(VALIDATION, bool))
        encoded = encoded.assign(**{VALIDATION: mask})
        fit_part, val_part = encoded[~encoded[VALIDATION]], encoded[encoded[VALIDATION]]
        model.set_params(early_stopping_rounds=settings.rounds)
        model.fit(
            fit_part[columns].to_dask_array(lengths=True),
            fit_part[TARGET].to_dask_array(lengths=True),
            eval_set=[
                (
                    val_part[columns].to_dask_array(lengths=True),
                    val_part[TARGET].to_dask_array(lengths=True),
                )
            ],
            verbose=False,
        )
        best = int(model.best_iteration) + 1
        if settings.refit:
            model = cls(**{**_estimator_params(inner), "n_estimators": best})
            model.client = client
            model.fit(
                encoded[columns].to_dask_array(lengths=True),
                encoded[TARGET].to_dask_array(lengths=True),
            )
            booster = model.get_booster()
        else:
            # only the best rounds: every scoring path then scores the same trees
            booster = model.get_booster()[:best]
    else:
        model.fit(
            encoded[columns].to_dask_array(lengths=True),
            encoded[TARGET].to_dask_array(lengths=True),
        )
        booster = model.get_booster()
    local = _as_local(inner, booster)
    rounds = int(local.get_booster().num_boosted_rounds())
    if final is not inner:  # the early-stopping wrapper, fitted as its own fit would leave it
        final.estimator_ = local
        final.n_rounds_ = rounds
        final.stopped_early_ = bool(stop)
        if task == "binary":
            final.classes_ = local.classes_
        final.n_features_in_ = local.n_features_in_
    seconds = time.perf_counter() - started
    info = {
        "engine": "dask",
        "scheduler": None,  # filled by the caller (the address is config, not a result)
        "workers": worker_count(client),
        "partitions": len(lengths),
        "rows": rows,
        "preprocessing_fitted_on_rows": sample_size,
        "rounds": rounds,
    }
    log.info(
        "%s: fitted on Dask (%d workers, %d partitions, %d rows) in %.1f s",
        key,
        info["workers"],
        info["partitions"],
        rows,
        seconds,
    )
    return DaskFit(pipeline, info)


def fit_frame_on_dask(
    key: str,
    spec: ModelSpec,
    data: DataConfig,
    numeric: list[str],
    categorical: list[str],
    seed: int,
    train: pd.DataFrame,
    resources: Any,
    time_ordered: bool = False,
) -> DaskFit:
    """`fit_on_dask` for an in-memory training split (what `training.fit_model` holds):
    split into partitions of at most 100,000 rows (at least two per worker) and sent to
    the cluster `resources.dask_scheduler` names, opened and closed here."""
    import dask.dataframe as dd

    from valuegate.distributed.cluster import dask_client, worker_count

    columns = [*numeric, *categorical, data.target]
    with dask_client(resources) as client:
        partitions = max(2 * worker_count(client), -(-len(train) // 100_000))
        frame = dd.from_pandas(train[columns], npartitions=partitions, sort=False)
        result = fit_on_dask(
            client,
            key,
            spec,
            data,
            numeric,
            categorical,
            seed,
            frame,
            time_ordered,
            resources.dask_sample_rows,
        )
    result.info["scheduler"] = resources.dask_scheduler
    return result


def predict_on_dask(client: Any, pipeline: Pipeline, frame: Any, features: list[str]) -> np.ndarray:
    """The pipeline's raw scores (n,) computed on the cluster: its preprocessing on each
    partition, then `xgboost.dask.inplace_predict` with its booster (positive-class
    probability for a classifier, the prediction for a regressor). In row order."""
    from xgboost import dask as dxgb

    from valuegate.bundle.encoder import final_xgboost

    pre = pipeline.named_steps["preprocess"]
    booster = final_xgboost(pipeline).get_booster()
    width = len(pre.get_feature_names_out())
    meta = pd.DataFrame({f"f{i}": pd.Series([], dtype=np.float32) for i in range(width)})
    encoded = frame.map_partitions(_features, pre, features, meta=meta)
    encoded = encoded.to_dask_array(lengths=True)
    scores = dxgb.inplace_predict(client, booster, encoded).compute()
    scores = np.asarray(scores, dtype=float)
    return scores[:, 1] if scores.ndim == 2 else scores
