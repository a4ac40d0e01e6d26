"""Load and validate `params.yaml`; compose it from `conf/` with Hydra when asked.

Stages read `params.yaml` (what `dvc exp run -S ...` composed), never `conf/` directly,
so command-line overrides reach them. `load_params` refuses a `params.yaml` whose recorded
`conf/` fingerprint differs from the `conf/` on disk: the user edited `conf/` and ran
`dvc repro`, which does not recompose.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from valuegate.config.fingerprint import (
    CONF_DIR_NAME,
    composing,
    conf_fingerprint,
    register_resolvers,
)
from valuegate.config.messages import format_validation_error
from valuegate.config.schema import Config
from valuegate.errors import ConfigError, StaleParamsError

PARAMS_FILE = "params.yaml"


def validate(raw: Any, source: str = PARAMS_FILE) -> Config:
    """Validate a plain mapping against the schema; `ConfigError` lists every problem."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source} must hold a mapping of config groups, got {type(raw)}")
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, Config, source=source)) from None


def problems_message(problems: list[str], source: str) -> str:
    head = f"The configuration in {source} is invalid ({len(problems)} problem"
    head += "s):" if len(problems) > 1 else "):"
    return "\n".join([head, *(f"  - {line}" for line in problems)])


def data_name_problems(config: Config, conf_dir: Path | None) -> list[str]:
    """The rule for `data.name`: it names the dataset's registry (deploy.registry defaults
    to models/registry/${data.name}) and its experiments, so a data config may not keep
    the name of another data config in conf/data/ that reads another file: that dataset's
    champion would then be compared with, and score, this one's rows."""
    if conf_dir is None or not (conf_dir / "data").is_dir():
        return []
    for path in sorted((conf_dir / "data").glob("*.y*ml")):
        try:
            other = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, OSError, UnicodeDecodeError):
            continue  # reported by the YAML scan of conf/
        if not isinstance(other, dict):
            continue
        if other.get("name") == config.data.name and other.get("path") != config.data.path:
            return [
                f"data.name: {config.data.name!r} is the name of {conf_dir.name}/data/"
                f"{path.name}, which reads {other.get('path')!r}; this config reads "
                f"{config.data.path!r}. Give this data its own name (e.g. data.name="
                f"{Path(config.data.path).stem}): the name picks the model registry "
                f"({config.deploy.registry}) whose champion scores the data, so another "
                "dataset's champion would be compared with this one."
            ]
    return []


def deep_validate(config: Config, source: str, conf_dir: str | Path | None = None) -> Config:
    """Checks beyond the schema, for `valuegate compose`/`check` and the first stage:
    every estimator param and search-space bound is one the estimator accepts (checked by
    the estimator's own validation, so `max_depth: -3` fails here, not in a stage), and
    `data.name` is not another dataset's. Raises `ConfigError` listing every problem."""
    from valuegate.models import config_problems

    problems = config_problems(config)
    problems += data_name_problems(config, Path(conf_dir) if conf_dir else None)
    if problems:
        raise ConfigError(problems_message(problems, source))
    return config


def yaml_problems(conf_dir: Path) -> list[str]:
    """A YAML syntax error or a tab in any file under `conf_dir`: file, line, column."""
    problems = []
    for path in sorted(p for p in conf_dir.rglob("*") if p.suffix in {".yaml", ".yml"}):
        name = path.relative_to(conf_dir.parent).as_posix()
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            problems.append(f"{name}: not UTF-8 text (byte {exc.start}); save it as UTF-8.")
            continue
        try:
            yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
            what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            line = (
                text.splitlines()[mark.line] if mark and mark.line < len(text.splitlines()) else ""
            )
            hint = " (a tab: YAML indents with spaces only)" if "\t" in line else ""
            problems.append(f"{where}: invalid YAML: {what}{hint}.")
    return problems


def check_fresh(raw: dict[str, Any], conf_dir: Path, params_path: Path) -> None:
    """Refuse params composed from another version of `conf_dir`."""
    if not conf_dir.is_dir():
        return
    recorded = (raw.get("meta") or {}).get("conf_fingerprint")
    current = conf_fingerprint(conf_dir)
    if recorded != current:
        raise StaleParamsError(
            f"{params_path.name} is stale: it was composed from a different version of "
            f"{conf_dir.name}/ (fingerprint {recorded} on record, {current} on disk). "
            "`dvc repro` does not recompose it. Run `dvc exp run` (it recomposes "
            f"{params_path.name} from {conf_dir.name}/, add `-S key=value` for overrides), "
            "or run `valuegate compose` and then `dvc repro`."
        )


def load_params(
    params_path: str | Path = PARAMS_FILE,
    conf_dir: str | Path | None = None,
    check_conf: bool = True,
) -> Config:
    """Read, freshness-check and validate `params.yaml`.

    `conf_dir` defaults to `conf/` beside `params_path`; the check is skipped when that
    directory does not exist (e.g. a deployed bundle's copy of the params).
    """
    path = Path(params_path)
    if not path.is_file():
        raise ConfigError(
            f"{path} not found. Compose it from conf/ with `valuegate compose` or run "
            "`dvc exp run`, which composes it."
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start}).") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: invalid YAML: {what}.") from None
    if check_conf:
        check_fresh(raw or {}, Path(conf_dir) if conf_dir else path.parent / CONF_DIR_NAME, path)
    return validate(raw, source=str(path))


def compose_config(
    conf_dir: str | Path, overrides: Sequence[str] = (), config_name: str = "config"
) -> dict[str, Any]:
    """Compose `conf_dir` with Hydra overrides, resolved, as a plain dict (as DVC does)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    register_resolvers()
    conf_path = Path(conf_dir).resolve()
    if not conf_path.is_dir():
        raise ConfigError(f"config directory {conf_path} not found")
    # Hydra's parser would raise a YAML traceback; name the file, line and column instead.
    problems = yaml_problems(conf_path)
    if problems:
        raise ConfigError(problems_message(problems, f"{Path(conf_dir).name}/"))
    try:
        with initialize_config_dir(str(conf_path), version_base=None):
            cfg = compose(config_name=config_name, overrides=list(overrides))
        with composing(conf_path):
            OmegaConf.resolve(cfg)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(
            f"cannot compose {conf_path.name}/ with {list(overrides)}: {exc}"
        ) from None
    return OmegaConf.to_container(cfg)  # type: ignore[return-value]


def write_params(raw: dict[str, Any], params_path: str | Path = PARAMS_FILE) -> Path:
    """Write a composed config atomically, in the same YAML layout DVC writes."""
    from omegaconf import OmegaConf

    from valuegate.io import atomic_write_text

    path = Path(params_path)
    atomic_write_text(path, OmegaConf.to_yaml(OmegaConf.create(raw)))
    return path
