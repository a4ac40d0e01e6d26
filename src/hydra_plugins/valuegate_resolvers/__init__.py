"""Loaded by Hydra's plugin discovery (also inside `dvc exp run`): registers valuegate's
OmegaConf resolvers so `conf/config.yaml` can record the fingerprint of `conf/`."""

from valuegate.config.fingerprint import register_resolvers

register_resolvers()
