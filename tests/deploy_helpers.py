"""Build a real bundle (german credit, a small xgboost or random forest) for the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tests.conftest import ROOT
from valuegate.bundle import input_schema, save_bundle, validate_chunk
from valuegate.config import compose_config
from valuegate.config.loading import validate
from valuegate.config.schema import ModelSpec
from valuegate.data import load_raw, prepare, target_vector
from valuegate.models import build_pipeline
from valuegate.row_lineage import lineage_record, to_npy


def config():
    return validate(compose_config(ROOT / "conf", []))


def prepared():
    cfg = config()
    splits, schema = prepare(load_raw(cfg.data, ROOT), cfg.data, cfg.seed, source_sha256="x")
    return cfg, splits, schema


def fit(estimator: str = "xgboost", params: dict | None = None):
    cfg, splits, schema = prepared()
    spec = ModelSpec(estimator=estimator, params=params or {"n_estimators": 40})
    pipeline = build_pipeline("model.t", spec, schema.task, schema.numeric, schema.categorical, 0)
    train = splits["train"]
    pipeline.fit(train[schema.features], target_vector(train, cfg.data))
    return cfg, splits, schema, pipeline


def make_bundle(directory: Path, estimator: str = "xgboost", version: str = "v1", params=None):
    cfg, splits, schema, pipeline = fit(estimator, params)
    fields = input_schema(schema, splits["train"])
    manifest = {
        "version": version,
        "model": {"name": estimator, "task": schema.task},
        "input": {"fields": fields, "amount_column": schema.amount_column},
        "decision": {"kind": "threshold", "value": 0.3, "action": cfg.objective.decision},
        "objective": cfg.objective.model_dump(),
        "figures": {"test": {"value_per_period": 1.0}},
        "data": {"name": cfg.data.name},
    }
    # the row lineage, as the package stage records it
    lineage, seen = lineage_record(splits, schema.id_column, "x", {"seed": cfg.seed})
    manifest["row_lineage"] = lineage
    files = {lineage["files"][which]: to_npy(rows) for which, rows in seen.items()}
    check = validate_chunk(pd.concat([splits["valid"], splits["test"]]), fields)[0]
    save_bundle(directory, pipeline, manifest, check, files)
    return pipeline, splits, schema


def raw_rows(n: int | None = None) -> pd.DataFrame:
    frame = pd.read_csv(ROOT / "data" / "raw" / "german_credit.csv")
    if n is not None:
        reps = int(np.ceil(n / len(frame)))
        frame = pd.concat([frame] * reps, ignore_index=True).iloc[:n]
    return frame
