"""Step fit: baselines and candidates, each fitted with its out-of-fold calibration and
operating point (training.fit_model)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from valuegate.config.schema import Config
from valuegate.data import Schema
from valuegate.errors import ConfigError
from valuegate.pipeline.common import Splits

if TYPE_CHECKING:  # training imports every estimator
    from valuegate.training import FittedModel


def fit_baselines(config: Config, schema: Schema, splits: Splits) -> dict[str, FittedModel]:
    """Every model of `baseline`, fitted on the training split (training.fit_model: out-of-
    fold calibration and operating point, valid and test scored)."""
    from valuegate.training import fit_model

    return {
        name: fit_model(name, "baseline", spec, config, schema, splits)
        for name, spec in config.baseline.items()
    }


def fit_candidate(config: Config, schema: Schema, splits: Splits, name: str) -> FittedModel:
    """The candidate `model.<name>`, fitted like a baseline."""
    from valuegate.config.messages import nearest
    from valuegate.training import fit_model

    if name not in config.model:
        hint = nearest(name, config.model)
        raise ConfigError(
            f"model.{name}: no such candidate in the config"
            + (f" (did you mean {hint!r}?)" if hint else "")
            + f". Candidates: {', '.join(config.model)}."
        )
    return fit_model(name, "candidate", config.model[name], config, schema, splits)
