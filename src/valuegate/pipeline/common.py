"""What the steps share: the split map, records as written, the models' scores."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from valuegate.data import Schema
from valuegate.io import to_json

if TYPE_CHECKING:
    from valuegate.training import FittedModel

Splits = dict[str, pd.DataFrame]


def as_recorded(value: Any) -> Any:
    """`value` as a reader of its JSON record gets it back (floats at 10 significant
    digits, io.to_json). Operating points go through this in memory: the stages read them
    from fit.json, and a calibrated score can sit exactly on a threshold (isotonic
    calibration gives fractions such as 1/6), so the unrounded value could flag another
    row."""
    return json.loads(to_json(value))


@dataclass
class Scored:
    """What the gate and the evaluation read of the fitted models: role and operating
    point (fit.json's `operating_point`, as recorded) per model, and a way to get a
    model's scores on a split (shape (rows of the split,))."""

    roles: dict[str, str]
    points: dict[str, dict[str, Any]]
    scores: Callable[[str, str], np.ndarray]  # (model name, split) -> scores

    def on(self, split: str, names: list[str] | None = None) -> dict[str, np.ndarray]:
        return {n: self.scores(n, split) for n in (self.roles if names is None else names)}


def split_scores(fitted: FittedModel, split: str) -> np.ndarray:
    """One fitted model's scores on `split`, in row order."""
    frame = fitted.predictions
    return frame.loc[frame["split"] == split].sort_values("row")["score"].to_numpy()


def scored(models: Mapping[str, FittedModel]) -> Scored:
    """`Scored` for models fitted in memory: roles, points as their fit.json records them."""
    return Scored(
        roles={n: m.info["role"] for n, m in models.items()},
        points={n: as_recorded(m.info["operating_point"]) for n, m in models.items()},
        scores=lambda name, split: split_scores(models[name], split),
    )


def amounts(frame: pd.DataFrame, schema: Schema) -> np.ndarray | None:
    return frame[schema.amount_column].to_numpy(float) if schema.amount_column else None
