"""What every stage shares: paths, the error boundary, reading and writing artifacts."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from valuegate.artifacts import save_pipeline
from valuegate.config.schema import Config
from valuegate.data import SPLITS, Schema
from valuegate.errors import ArtifactError, ValuegateError
from valuegate.io import atomic_write_json, write_with

if TYPE_CHECKING:  # training imports every estimator; stages that only read skip it
    from valuegate.training import FittedModel

PREPARED = Path("data/prepared")  # what `prepare` writes and `assess` reads
# What the models read: the prepared splits once `assess` let them through (with any
# opt-in remedies applied). Blocked data never gets here, so nothing downstream runs.
ASSESSED = Path("data/assessed")
SCHEMA_FILE = ASSESSED / "schema.json"
BASELINES = Path("models/baselines")
CANDIDATES = Path("models/candidates")
METRICS = Path("metrics")
PLOTS = Path("plots")
REPORTS = Path("reports")

MODEL_FILE = "model.skops"
PREDICTIONS_FILE = "predictions.parquet"
INFO_FILE = "fit.json"


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
    try:
        main(list(sys.argv[1:] if argv is None else argv))
    except ValuegateError as exc:
        print(f"valuegate: {exc.kind}: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


def read_schema(prepared: Path = ASSESSED) -> Schema:
    return Schema.from_dict(json.loads((prepared / "schema.json").read_text()))


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


def write_fitted(fitted: FittedModel, directory: Path) -> None:
    """model.skops (+ .sha256), predictions.parquet and fit.json inside `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    save_pipeline(fitted.pipeline, directory / MODEL_FILE)
    write_parquet(fitted.predictions, directory / PREDICTIONS_FILE)
    atomic_write_json(directory / INFO_FILE, fitted.info)


TUNED = Path("models/tuned")
TUNE_FILE = METRICS / "tune.json"


def model_dirs(config: Config) -> dict[str, tuple[str, Path]]:
    """name -> (role, directory) for baselines, candidates and (if any) tuned models."""
    out = {
        name: (role, (BASELINES if role == "baseline" else CANDIDATES) / name)
        for name, (role, _spec) in config.all_models().items()
    }
    if TUNE_FILE.is_file():
        for candidate in json.loads(TUNE_FILE.read_text()).get("studies", {}):
            out[f"{candidate}_tuned"] = ("tuned", TUNED / f"{candidate}_tuned")
    return out


def read_predictions(
    config: Config, split: str, n_rows: int, names: list[str] | None = None
) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """(role per model, scores per model on `split`, shape (n_rows,)), baselines first;
    refuses missing or stale prediction files."""
    roles, predictions = {}, {}
    for name, (role, directory) in model_dirs(config).items():
        if names is not None and name not in names:
            continue
        path = directory / PREDICTIONS_FILE
        if not path.is_file():
            raise ArtifactError(f"{path} not found: run the {role} stage first (`dvc repro`).")
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
    """Validation scores of the baselines and candidates (not tuned models)."""
    roles, predictions = read_predictions(config, "valid", n_valid)
    keep = [n for n, r in roles.items() if r != "tuned"]
    return {n: roles[n] for n in keep}, {n: predictions[n] for n in keep}
