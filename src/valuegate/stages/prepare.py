"""Stage `prepare`: validate the raw data against `data`, split it, write Parquet
(data/prepared: the splits and schema.json). The work is `pipeline.steps.prepare`."""

from __future__ import annotations

import logging
from pathlib import Path

from valuegate.config import load_params
from valuegate.config.fingerprint import CONF_DIR_NAME
from valuegate.config.loading import PARAMS_FILE, deep_validate
from valuegate.data import Schema, load_raw, source_sha256
from valuegate.io import atomic_dir, atomic_write_json
from valuegate.pipeline import steps
from valuegate.stages.common import PREPARED, run_stage

# by name: run as `python -m`, __name__ is __main__, outside valuegate's loggers
log = logging.getLogger("valuegate.stages.prepare")


def write_splits(directory: Path, splits, schema: Schema) -> None:
    """The splits (<split>.parquet) and schema.json, replacing `directory` as a whole."""
    with atomic_dir(directory) as tmp:
        for name, frame in splits.items():
            frame.to_parquet(tmp / f"{name}.parquet", index=False)
        atomic_write_json(tmp / "schema.json", schema.to_dict())


def main(argv: list[str]) -> None:
    config = load_params()
    # The first stage: a bad estimator param or data.name stops the run before any work.
    deep_validate(config, PARAMS_FILE, CONF_DIR_NAME)
    raw = load_raw(config.data)
    splits, schema = steps.prepare(raw, config, source_sha256(config.data))
    write_splits(PREPARED, splits, schema)
    rows = ", ".join(f"{name} {len(frame)}" for name, frame in splits.items())
    if schema.sample:
        rows += f" (data.sample_rows: {schema.sample['rows']:,} of {schema.sample['of']:,} rows)"
    log.info(
        f"prepare: {len(schema.numeric)} numeric and {len(schema.categorical)} categorical "
        f"features; rows: {rows}"
    )


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
