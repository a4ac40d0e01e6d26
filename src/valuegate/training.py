"""Fit one configured model on the training split and score the other splits."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from valuegate.config.schema import Config, ModelSpec
from valuegate.data import Schema, target_vector
from valuegate.models import build_pipeline, predict_scores

SCORED_SPLITS = ("valid", "test")


@dataclass
class FittedModel:
    name: str
    pipeline: Pipeline
    predictions: pd.DataFrame  # columns: split, row, score
    fit_seconds: float
    info: dict[str, Any]


def fit_model(
    name: str,
    role: str,
    spec: ModelSpec,
    config: Config,
    schema: Schema,
    splits: dict[str, pd.DataFrame],
) -> FittedModel:
    """Build the pipeline for `spec`, fit it on `splits['train']`, score valid and test."""
    key = f"{'baseline' if role == 'baseline' else 'model'}.{name}"
    pipeline = build_pipeline(
        key, spec, schema.task, schema.numeric, schema.categorical, config.seed
    )
    train = splits["train"]
    started = time.perf_counter()
    pipeline.fit(train[schema.features], target_vector(train, config.data))
    fit_seconds = time.perf_counter() - started
    parts = []
    for split in SCORED_SPLITS:
        frame = splits[split]
        scores = predict_scores(pipeline, frame[schema.features], schema.task)
        parts.append(pd.DataFrame({"split": split, "row": np.arange(len(frame)), "score": scores}))
    info = {
        "name": name,
        "role": role,
        "estimator": spec.estimator,
        "params": spec.params,
        "train_rows": len(train),
    }
    return FittedModel(name, pipeline, pd.concat(parts, ignore_index=True), fit_seconds, info)
