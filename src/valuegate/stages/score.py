"""Stage `score`: batch scoring as part of the graph — the champion scores a file
(deploy.batch.input, default data.path) into reports/scored.parquet, exactly what
`valuegate predict --model champion` does. reports/score.json holds the row counts and,
per column, the unseen categories and the gaps where training had none; metrics/score.json
its numbers. With `resources.dask_scheduler` set and Parquet input, the partitions are
scored on the Dask cluster into the same file (valuegate.distributed.score).

The step is `pipeline.steps.score` (pipeline/score.py: its records and bad-row rule);
this module streams the file through the same per-chunk scoring and tally
(`serving.batch.predict_file`), so memory stays flat however large the input."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from valuegate.config import load_params
from valuegate.errors import DataError
from valuegate.io import write_with
from valuegate.paths import SCORE_METRICS, SCORE_RECORD, SCORED
from valuegate.pipeline import steps
from valuegate.registry import Registry
from valuegate.serving.batch import describe_extras, predict_file
from valuegate.stages.common import run_stage, write_record

# by name: run as `python -m`, __name__ is __main__, outside valuegate's loggers
log = logging.getLogger("valuegate.stages.score")


SCORE_FILE = SCORE_RECORD  # the full record; its numbers: SCORE_METRICS


def on_dask(resources: object, source: str) -> bool:
    """Score on the Dask cluster when one is set and the input is Parquet (a file or a
    directory of part files); a CSV is scored here (said in the log)."""
    if getattr(resources, "dask_scheduler", None) is None:
        return False
    path = Path(source)
    if path.is_dir() or path.suffix.lower() in (".parquet", ".pq"):
        return True
    log.info("score: %s is not Parquet: scored in this process, not on Dask", source)
    return False


def main(argv: list[str]) -> None:
    config = load_params()
    registry = Registry(config.deploy.registry)
    source = config.deploy.batch.input or config.data.path
    target = SCORED
    if registry.champion is None:
        # The deploy gate refused every model so far: nothing to score with. Record it
        # (the graph stays green; `valuegate predict` would fail with the same message).
        empty = pd.DataFrame({"row": [], "score": []})
        write_with(target, lambda tmp: empty.to_parquet(tmp, index=False))  # atomic, 0644
        write_record(SCORE_FILE, SCORE_METRICS, steps.no_champion_record(str(registry.root)))
        log.warning(
            f"score: skipped, the registry {registry.root} has no champion "
            "(reports/deploy.json says why)"
        )
        return
    bundle = registry.load("champion")
    fix_hint = steps.SCORE_FIX_HINT
    try:
        if on_dask(config.resources, source):
            from valuegate.distributed import dask_client
            from valuegate.distributed.score import score_parquet_on_dask

            with dask_client(config.resources) as client:
                summary = score_parquet_on_dask(
                    client,
                    bundle,
                    source,
                    target,
                    on_error=config.deploy.batch.on_error,
                    fix_hint=fix_hint,
                )
        else:
            summary = predict_file(
                bundle,
                source,
                target,
                chunk_size=config.deploy.batch.chunk_size,
                on_error=config.deploy.batch.on_error,
                fix_hint=fix_hint,
            )
    except DataError as exc:
        # The champion was chosen and promoted by `package` before this stage ran: say
        # so, and how to go back, instead of leaving a promoted model behind a red stage.
        raise DataError(
            f"{exc} Note: `package` has already promoted {bundle.version} to champion of "
            f"{registry.root}; to go back to the previous champion run `valuegate models "
            f"rollback --registry {registry.root}` (listed by `valuegate models list`)."
        ) from None
    summary = steps.score_record(summary, source, bundle.version)
    write_record(SCORE_FILE, SCORE_METRICS, summary)
    log.info(
        f"scored {summary['rows_scored']} of {summary['rows_in']} rows of {source} with "
        f"{bundle.version} into {SCORED}" + describe_extras(summary)
    )


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
