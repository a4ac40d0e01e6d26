"""Typed configuration: schemas, loading of params.yaml, Hydra composition, messages."""

from valuegate.config.loading import compose_config, load_params, write_params
from valuegate.config.schema import Config

__all__ = ["Config", "compose_config", "load_params", "write_params"]
