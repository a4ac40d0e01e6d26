"""Fingerprint of the `conf/` tree, recorded in params.yaml when it is composed.

DVC composes `params.yaml` from `conf/` on `dvc exp run` but not on `dvc repro`. The
composed file records the fingerprint of the tree it came from (through the OmegaConf
resolver registered here, which Hydra's plugin discovery loads inside DVC's process), and
every stage compares it with the tree on disk, so an edit to `conf/` followed by a plain
`dvc repro` stops with instructions instead of running on stale parameters.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

RESOLVER_NAME = "valuegate_conf_fingerprint"
CONF_DIR_NAME = "conf"


def find_project_root(start: Path | None = None) -> Path:
    """The nearest ancestor of `start` (default: cwd) holding `dvc.yaml` or `.dvc/`."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "dvc.yaml").is_file() or (candidate / ".dvc").is_dir():
            return candidate
    return here


def conf_fingerprint(conf_dir: Path) -> str:
    """sha256 over the relative paths and bytes of every YAML file under `conf_dir`."""
    digest = hashlib.sha256()
    files = sorted(p for p in conf_dir.rglob("*") if p.is_file() and p.suffix in {".yaml", ".yml"})
    for path in files:
        digest.update(path.relative_to(conf_dir).as_posix().encode())
        digest.update(b"\0")
        # Normalise line endings so a checkout on another OS gives the same fingerprint.
        digest.update(path.read_bytes().replace(b"\r\n", b"\n"))
        digest.update(b"\0")
    return digest.hexdigest()[:16]


_composing_dir: list[Path] = []


class composing:  # noqa: N801 - used as a context manager, like contextlib helpers
    """Within this block the resolver fingerprints `conf_dir` instead of `<root>/conf`."""

    def __init__(self, conf_dir: Path) -> None:
        self.conf_dir = conf_dir

    def __enter__(self) -> None:
        _composing_dir.append(self.conf_dir)

    def __exit__(self, *exc: object) -> None:
        _composing_dir.pop()


def _resolve_fingerprint() -> str:
    if _composing_dir:
        return conf_fingerprint(_composing_dir[-1])
    return conf_fingerprint(find_project_root() / CONF_DIR_NAME)


def register_resolvers() -> None:
    """Register the OmegaConf resolver; safe to call more than once."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver(RESOLVER_NAME):
        OmegaConf.register_new_resolver(RESOLVER_NAME, _resolve_fingerprint)


# ------------------------------------------------------------------------ lineage
# Fingerprints of the config sections an artifact was produced from. Every artifact
# record (fit.json, reports/gate.json, reports/tune.json, ...) carries all of them under
# "lineage"; a reader compares only the keys it depends on (stages/common.py), so a record
# is stale exactly when something it was computed from changed.


def fingerprint(value: object) -> str:
    """16 hex digits of sha256 over the canonical JSON of `value`."""
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _spec(spec: Any) -> dict[str, Any]:
    # What a fitted model depends on: the search space only matters to tuning, which has
    # its own key, so widening a range does not make the fitted candidate stale.
    # The categorical encoding is part of the fitted pipeline (models.build_pipeline).
    return {
        "estimator": spec.estimator,
        "params": spec.params,
        "categorical": spec.categorical.model_dump(mode="json"),
    }


def data_lineage(data: Any, seed: int, window: Any = None) -> dict[str, str]:
    """What prepared splits depend on: the data config and the seed (their fingerprints).
    `window` (retrain.window) joins the data fingerprint only when it is set (`until`), so
    every artifact's lineage changes with it and runs without one keep their fingerprints."""
    payload = data.model_dump(mode="json")
    if window is not None and window.until is not None:
        payload = {"data": payload, "retrain.window": window.model_dump(mode="json")}
    return {"data": fingerprint(payload), "seed": fingerprint(seed)}


def config_fingerprints(config: Any) -> dict[str, str]:
    """key path -> fingerprint for every section an artifact can depend on.

    Keys: data, seed, objective, gate, gate.cross_fit (cross-fitting + calibration: what a
    fitted model's operating point depends on), tune, assess, deploy, baseline.<name>,
    model.<name> (estimator + params) and model.<name>.search_space.
    """
    out = data_lineage(config.data, config.seed, config.retrain.window)
    for section in ("objective", "gate", "tune", "assess", "deploy"):
        out[section] = fingerprint(getattr(config, section).model_dump(mode="json"))
    out["gate.cross_fit"] = fingerprint(
        {
            "cross_fit": config.gate.cross_fit.model_dump(mode="json"),
            "calibration": config.gate.calibration,
        }
    )
    for name, spec in config.baseline.items():
        out[f"baseline.{name}"] = fingerprint(_spec(spec))
    for name, spec in config.model.items():
        out[f"model.{name}"] = fingerprint(_spec(spec))
        out[f"model.{name}.search_space"] = fingerprint(
            {k: v.model_dump(mode="json") for k, v in spec.search_space.items()}
        )
    return out
