"""What every stage shares: paths, the error boundary, reading and writing artifacts."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from valuegate.artifacts import save_pipeline
from valuegate.data import SPLITS, Schema
from valuegate.errors import ValuegateError
from valuegate.io import atomic_write_json, write_with
from valuegate.training import FittedModel

PREPARED = Path("data/prepared")
SCHEMA_FILE = PREPARED / "schema.json"
BASELINES = Path("models/baselines")
CANDIDATES = Path("models/candidates")
METRICS = Path("metrics")
PLOTS = Path("plots")
REPORTS = Path("reports")

MODEL_FILE = "model.skops"
PREDICTIONS_FILE = "predictions.parquet"
INFO_FILE = "fit.json"


def run_stage(main: Callable[[list[str]], None], argv: list[str] | None = None) -> int:
    """Run a stage; an expected error prints its message (no traceback), exit code 2."""
    try:
        main(list(sys.argv[1:] if argv is None else argv))
    except ValuegateError as exc:
        print(f"valuegate: {exc.kind}: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


def read_schema(prepared: Path = PREPARED) -> Schema:
    return Schema.from_dict(json.loads((prepared / "schema.json").read_text()))


def read_splits(prepared: Path = PREPARED, names=SPLITS) -> dict[str, pd.DataFrame]:
    return {s: pd.read_parquet(prepared / f"{s}.parquet") for s in names}


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    write_with(path, lambda tmp: frame.to_parquet(tmp, index=False))


def write_fitted(fitted: FittedModel, directory: Path) -> None:
    """model.skops (+ .sha256), predictions.parquet and fit.json inside `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    save_pipeline(fitted.pipeline, directory / MODEL_FILE)
    write_parquet(fitted.predictions, directory / PREDICTIONS_FILE)
    atomic_write_json(directory / INFO_FILE, fitted.info)
