"""Step prepare: the raw table -> validated splits and their schema."""

from __future__ import annotations

import pandas as pd

from valuegate.config.schema import Config
from valuegate.data import Schema
from valuegate.pipeline.common import Splits


def prepare(raw: pd.DataFrame, config: Config, source_sha256: str) -> tuple[Splits, Schema]:
    """The raw table -> (train/valid/test splits, schema), validated against `data`;
    `source_sha256` is the raw file's digest, recorded in the schema. With
    `retrain.window.until` set, the splits are the window's (docs/retrain.md)."""
    from valuegate.data import prepare as prepare_data

    return prepare_data(raw, config.data, config.seed, source_sha256, config.retrain.window)
