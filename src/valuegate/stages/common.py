"""What every stage shares: paths, the error boundary, reading and writing artifacts."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from valuegate import paths
from valuegate.artifacts import save_pipeline
from valuegate.config.fingerprint import config_fingerprints
from valuegate.config.schema import Config
from valuegate.data import SPLITS, Schema
from valuegate.errors import ArtifactError, ValuegateError
from valuegate.hashing import sha256_file
from valuegate.io import atomic_write_json, to_json, write_with
from valuegate.logs import setup_logging

if TYPE_CHECKING:  # training imports every estimator; stages that only read skip it
    from valuegate.training import FittedModel

# Every path lives in valuegate.paths (dvc.yaml agrees with it: a test checks); these names
# stay importable from here for the stage modules and their readers.
ASSESSED = paths.ASSESSED
BASELINES = paths.BASELINES
CANDIDATES = paths.CANDIDATES
GATE_METRICS = paths.GATE_METRICS
INFO_FILE = paths.INFO_FILE
METRICS = paths.METRICS
MODEL_FILE = paths.MODEL_FILE
PLOTS = paths.PLOTS
PREDICTIONS_FILE = paths.PREDICTIONS_FILE
PREPARED = paths.PREPARED
REPORTS = paths.REPORTS
SCHEMA_FILE = paths.SCHEMA_FILE
TUNE_METRICS = paths.TUNE_METRICS
TUNED = paths.TUNED
GATE_FILE = paths.GATE_RECORD  # the full record; its numbers: GATE_METRICS
TUNE_FILE = paths.TUNE_RECORD  # the full record; its numbers: TUNE_METRICS


def metrics_view(record: Any) -> Any:
    """A record (nested dicts) -> its numbers and booleans only, same nesting, for DVC
    metrics: `dvc exp show` makes a column of every leaf, so sentences, names, lists and
    lineage stay in the full record under reports/. Integral floats become ints (money is
    whole: DVC prints 117000, not 1.17e+05); NaN / infinity and emptied dicts are left out.
    Returns None when nothing numeric is left."""
    if isinstance(record, dict):
        out = {k: v for k, v in ((k, metrics_view(v)) for k, v in record.items()) if v is not None}
        return out or None
    if isinstance(record, bool | np.bool_):
        return bool(record)
    if isinstance(record, int | np.integer):
        return int(record)
    if isinstance(record, float | np.floating):
        value = float(record)
        if not np.isfinite(value):
            return None
        value = float(f"{value:.10g}")  # as the JSON writer rounds (io.to_json), first
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    return None


def write_record(report: Path, metrics: Path, record: dict[str, Any]) -> None:
    """The full record (sentences, names, lineage) to `report` under reports/, which
    readers use, and its numbers to `metrics`, which DVC shows (`metrics_view`)."""
    atomic_write_json(report, record)
    atomic_write_json(metrics, metrics_view(record) or {})


# glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def keep_freed_memory_for_reuse() -> bool:
    """Have glibc's malloc reuse freed blocks instead of handing them back to the kernel.

    By default a fresh process maps numpy temporaries of a few MB with mmap and unmaps
    them on free, or trims them off the heap, so every resample of the gate's bootstrap
    (~25 temporaries of n rows) page-faults its memory in again: on 1,000,000 rows the
    gate stage spent 9.7 of its 20 s in the kernel (5 million minor faults). A
    long-running process ends up reusing such blocks once its heap has grown; a stage
    process is fresh every time. Blocks below 32 MB (glibc's cap for this setting) then
    come from the heap, and up to 256 MB of freed heap stays in the process. Measured:
    gate 20.2 s -> 10.1 s, same peak RSS. Returns False where there is no glibc (macOS).
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(M_TRIM_THRESHOLD, 256 << 20))


def run_stage(main: Callable[[list[str]], None], argv: list[str] | None = None) -> int:
    """Run a stage; an expected error prints its message (no traceback), exit code 2."""
    keep_freed_memory_for_reuse()
    # progress lines to stderr at VALUEGATE_LOG_LEVEL (INFO; `valuegate -q/-v` sets it)
    setup_logging()
    try:
        main(list(sys.argv[1:] if argv is None else argv))
    except ValuegateError as exc:
        print(f"valuegate: {exc.kind}: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


def read_schema(prepared: Path = ASSESSED) -> Schema:
    path = prepared / "schema.json"
    if not path.is_file():
        raise ArtifactError(f"{path} not found: run the pipeline first (`dvc exp run`).")
    return Schema.from_dict(json.loads(path.read_text()))


# ------------------------------------------------------------------------ lineage
# Contract B: every artifact record carries the fingerprints of what it was produced from
# (`stamp`); every reader compares the keys it depends on with the config it runs with
# (`check_lineage`), and says so in one line instead of computing on stale inputs.

LINEAGE = "lineage"
RERUN = "run `dvc exp run` (it recomposes params.yaml and reruns what changed)"
DATA_KEYS = ("rows", "data", "seed")
"""What every model artifact depends on: the data version on disk and its config."""


def schema_version(schema: Schema) -> str:
    """The data version of `schema` as `data_version` reads it back once written (the
    stages write schema.json with io.to_json): for records of an in-memory run."""
    return hashlib.sha256(to_json(schema.to_dict()).encode("utf-8")).hexdigest()[:16]


def data_version(prepared: Path = ASSESSED) -> str:
    """Fingerprint of the data the models read: its schema.json (row counts, categories,
    source file hash and the config it was prepared from)."""
    path = prepared / "schema.json"
    if not path.is_file():
        raise ArtifactError(f"{path} not found: run the pipeline first (`dvc exp run`).")
    return sha256_file(path)[:16]


def lineage(
    config: Config, prepared: Path = ASSESSED, schema: Schema | None = None
) -> dict[str, str]:
    """Every fingerprint a record may be checked against (config/fingerprint.py keys, plus
    "rows": the data version in `prepared`, or of `schema` when given)."""
    rows = data_version(prepared) if schema is None else schema_version(schema)
    return {"rows": rows, **config_fingerprints(config)}


def stamp(
    record: dict[str, Any],
    config: Config,
    prepared: Path = ASSESSED,
    schema: Schema | None = None,
) -> dict[str, Any]:
    """`record` with a "lineage" entry: call on every artifact record before writing it
    (`schema`: the data the record was computed from, when it is not on disk)."""
    return {**record, LINEAGE: lineage(config, prepared, schema)}


def stale_keys(
    record: dict[str, Any], config: Config, keys: Iterable[str], prepared: Path = ASSESSED
) -> list[str]:
    """The keys among `keys` whose recorded fingerprint differs from the current one
    (every key, when the record holds no lineage)."""
    recorded = record.get(LINEAGE)
    keys = list(keys)
    if not isinstance(recorded, dict):
        return keys
    current = lineage(config, prepared)
    return [k for k in keys if recorded.get(k) != current.get(k)]


def describe_stale(what: str | Path, stale: list[str], fix: str = RERUN) -> str:
    """One line: what is stale, which sections differ, what to run."""
    verb = "differs" if len(stale) == 1 else "differ"
    return f"{what} was produced from another config/data ({', '.join(stale)} {verb}): {fix}."


def check_lineage(
    record: dict[str, Any],
    config: Config,
    what: str | Path,
    keys: Iterable[str],
    fix: str = RERUN,
    prepared: Path = ASSESSED,
) -> None:
    """Refuse, in one line, a record whose `keys` were produced from another config/data."""
    if LINEAGE not in record:
        raise ArtifactError(
            f"{what} records no lineage (written by an older valuegate or by hand): {fix}."
        )
    stale = stale_keys(record, config, keys, prepared)
    if stale:
        raise ArtifactError(describe_stale(what, stale, fix))


def check_data(config: Config, prepared: Path = ASSESSED, fix: str = RERUN) -> Schema:
    """The schema of `prepared`, refused when the data were prepared from another data
    config or seed than `config`'s."""
    schema = read_schema(prepared)
    current = config_fingerprints(config)
    stale = [k for k in ("data", "seed") if schema.lineage.get(k) != current[k]]
    if stale:
        keys = ", ".join(stale) + (" differs" if len(stale) == 1 else " differ")
        raise ArtifactError(
            f"{prepared} was prepared from another config ({keys}"
            + ("; it records no lineage" if not schema.lineage else "")
            + f"): {fix}."
        )
    return schema


def model_keys(role: str, name: str) -> list[str]:
    """The lineage keys a fitted model of `role` depends on: its spec, and the objective and
    cross-fitting its out-of-fold operating point and calibration were chosen with."""
    chosen_with = ["objective", "gate.cross_fit"]
    if role == "baseline":
        return [*DATA_KEYS, *chosen_with, f"baseline.{name}"]
    if role == "tuned":
        candidate = name.removesuffix("_tuned")
        return [
            *DATA_KEYS,
            *chosen_with,
            "tune",
            f"model.{candidate}",
            f"model.{candidate}.search_space",
        ]
    return [*DATA_KEYS, *chosen_with, f"model.{name}"]


def read_splits(
    prepared: Path = ASSESSED, names=SPLITS, columns: list[str] | None = None
) -> dict[str, pd.DataFrame]:
    """The named splits; only `columns` when given (stages that value predictions need
    the target and amount, not the features)."""
    return {s: pd.read_parquet(prepared / f"{s}.parquet", columns=columns) for s in names}


def read_splits_while_importing() -> Callable[[], dict[str, pd.DataFrame]]:
    """Start reading every split of data/assessed in a thread; call the result to get them.

    A model stage calls this before importing scikit-learn and the estimators (~1 s of
    imports): Parquet decoding releases the GIL, so most of the read overlaps the imports
    (measured on 1M rows: ~0.45 s saved per stage).
    """
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(read_splits)
    pool.shutdown(wait=False)  # the read goes on; the thread ends with it
    return future.result


def outcome_columns(config: Config, schema: Schema) -> list[str]:
    """The columns that valuing predictions needs: the target and the amount, if any."""
    return [config.data.target] + ([schema.amount_column] if schema.amount_column else [])


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    write_with(path, lambda tmp: frame.to_parquet(tmp, index=False))


def write_fitted(
    fitted: FittedModel,
    directory: Path,
    config: Config | None = None,
    schema: Schema | None = None,
) -> None:
    """model.skops (+ .sha256), predictions.parquet and fit.json inside `directory`;
    fit.json is stamped with the lineage of `config` (default: params.yaml, which is the
    config of every stage) and the data on disk (or `schema`'s)."""
    if config is None:
        from valuegate.config import load_params

        config = load_params()
    directory.mkdir(parents=True, exist_ok=True)
    save_pipeline(fitted.pipeline, directory / MODEL_FILE)
    write_parquet(fitted.predictions, directory / PREDICTIONS_FILE)
    atomic_write_json(directory / INFO_FILE, stamp(fitted.info, config, schema=schema))


def record_keys(config: Config) -> list[str]:
    """The lineage keys of a record computed from every model of the run (the gate's and
    the evaluation's): the data, the objective, every baseline and candidate."""
    keys = [*DATA_KEYS, "objective"]
    keys += [f"baseline.{name}" for name in config.baseline]
    keys += [f"model.{name}" for name in config.model]
    return keys


def gate_keys(config: Config, candidates: Iterable[str] | None = None) -> list[str]:
    """The lineage keys of the gate's record, for a reader that uses `candidates` of it
    (default: every candidate of `config`)."""
    names = list(config.model) if candidates is None else list(candidates)
    keys = [*DATA_KEYS, "objective", "gate"]
    keys += [f"baseline.{name}" for name in config.baseline]
    return keys + [f"model.{name}" for name in names]


def read_gate_record(
    config: Config,
    candidates: Iterable[str] | None = None,
    path: Path = GATE_FILE,
    fix: str = RERUN,
) -> dict[str, Any]:
    """reports/gate.json, refused (one line) unless it was produced from the data,
    objective, gate settings, baselines and `candidates` of `config`."""
    if not path.is_file():
        raise ArtifactError(f"{path} not found: run the gate stage first (`dvc repro`).")
    try:
        record = json.loads(path.read_text())
    except ValueError as exc:
        raise ArtifactError(f"{path} is not readable JSON ({exc}): {fix}.") from None
    check_lineage(record, config, path, gate_keys(config, candidates), fix)
    return record


def tune_keys(candidate: str) -> list[str]:
    """The lineage keys the tune record's study of `candidate` depends on."""
    return model_keys("tuned", f"{candidate}_tuned")


def read_tune_record(config: Config, path: Path = TUNE_FILE) -> dict[str, Any] | None:
    """reports/tune.json, or None when there is none; refused (one line) when it was
    produced from another config/data than `config`."""
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path} is not readable JSON ({exc}): {RERUN}.") from None
    keys = ["rows", "data", "seed", "objective", "tune"]
    for candidate in record.get("studies", {}):
        keys += [k for k in tune_keys(candidate) if k not in keys]
    check_lineage(record, config, path, keys)
    return record


def model_dirs(config: Config, tuned: bool = True) -> dict[str, tuple[str, Path]]:
    """name -> (role, directory) for baselines, candidates and (if `tuned` and the tune
    record is current) tuned models.

    Raises `ArtifactError` when `tuned` and reports/tune.json was produced from another
    config/data: a stage that reads tuned models must not read another run's.
    """
    out = {
        name: (role, (BASELINES if role == "baseline" else CANDIDATES) / name)
        for name, (role, _spec) in config.all_models().items()
    }
    record = read_tune_record(config) if tuned else None
    if record is not None:
        for candidate in record.get("studies", {}):
            out[f"{candidate}_tuned"] = ("tuned", TUNED / f"{candidate}_tuned")
    return out


def read_fit_info(directory: Path) -> dict[str, Any]:
    """A fitted model's fit.json (operating point, calibration, lineage, ...)."""
    path = directory / INFO_FILE
    if not path.is_file():
        raise ArtifactError(f"{path} not found: {RERUN}.")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise ArtifactError(f"{path} is not readable JSON ({exc}): {RERUN}.") from None


def read_operating_points(config: Config, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """name -> the fixed operating point in its fit.json (`operating_point`: kind, value,
    constraints_met, chosen_on, ...; contract C), for models already read with
    `read_predictions` (so their lineage was checked)."""
    dirs = model_dirs(config, tuned=any(n not in config.all_models() for n in names))
    points = {}
    for name in names:
        directory = dirs[name][1]
        point = read_fit_info(directory).get("operating_point")
        if not isinstance(point, dict) or "value" not in point:
            raise ArtifactError(
                f"{directory / INFO_FILE} has no operating point (fitted by an older "
                f"valuegate): {RERUN}."
            )
        points[name] = point
    return points


def read_predictions(
    config: Config, split: str, n_rows: int, names: list[str] | None = None
) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """(role per model, scores per model on `split`, shape (n_rows,)), baselines first;
    refuses missing or stale prediction files."""
    check_data(config)
    roles, predictions = {}, {}
    with_tuned = names is None or any(n not in config.all_models() for n in names)
    for name, (role, directory) in model_dirs(config, tuned=with_tuned).items():
        if names is not None and name not in names:
            continue
        path = directory / PREDICTIONS_FILE
        if not path.is_file():
            raise ArtifactError(f"{path} not found: run the {role} stage first (`dvc repro`).")
        info = read_fit_info(directory)
        check_lineage(info, config, directory / INFO_FILE, model_keys(role, name))
        frame = pd.read_parquet(path)
        scores = frame.loc[frame["split"] == split].sort_values("row")["score"].to_numpy()
        if len(scores) != n_rows:
            raise ArtifactError(
                f"{path} scores {len(scores)} {split} rows, the split has {n_rows}: "
                "it is stale; run `dvc repro`."
            )
        roles[name], predictions[name] = role, scores
    return roles, predictions


def read_valid_predictions(
    config: Config, n_valid: int
) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """Validation scores of the baselines and candidates (not tuned models: the tune
    record is not even read, so a stale one from an earlier run cannot get in the way)."""
    return read_predictions(config, "valid", n_valid, names=list(config.all_models()))
