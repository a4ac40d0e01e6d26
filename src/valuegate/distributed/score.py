"""Batch scoring on a Dask cluster: Parquet input (a file, or a directory of part files)
scored partition by partition on the workers by the same per-chunk step as in one process
(`serving.batch.score_chunk`: the bundle's input check, then its scores and decisions),
and written here, in input order, through the same writer (`serving.batch.ChunkWriter`):
the same output file, row numbers and summary as `predict_file`, atomically.

The driver holds one scored partition at a time in the output order (at most the
partitions that finished early besides), never the input."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, TextIO

from valuegate.bundle import Bundle, check_columns
from valuegate.errors import DataError
from valuegate.io import partial_path, remove_stale_partials
from valuegate.logs import progress

log = logging.getLogger(__name__)


def _score_partition(bundle: Bundle, part: Any) -> Any:
    from valuegate.serving.batch import score_chunk

    return score_chunk(bundle, part.reset_index(drop=True), first_row=0)


def _parquet_columns(source: Path) -> tuple[list[str], int | None]:
    """(column names, rows) of a Parquet file or directory of part files."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    try:
        dataset = ds.dataset(source, format="parquet")
        return dataset.schema.names, dataset.count_rows()
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"--input {source}: cannot read it as Parquet: {exc}") from None


def score_parquet_on_dask(
    client: Any,
    bundle: Bundle,
    input_path: str | Path,
    output_path: str | Path,
    on_error: str = "fail",
    report: TextIO = sys.stderr,
    fix_hint: str = "Fix them or pass --on-error skip.",
) -> dict[str, Any]:
    """Score the Parquet `input_path` (a file or a directory of part files, read by
    dask.dataframe) into `output_path` (Parquet, or CSV by suffix) on `client`'s cluster.
    Output and summary as `serving.batch.predict_file`'s (row: 1-based data row of the
    input, in the order dask reads it: the files in name order, each in its row order)."""
    import dask
    import dask.dataframe as dd

    from valuegate.serving.batch import ChunkWriter, OutputError

    source, target = Path(input_path), Path(output_path)
    if on_error not in ("skip", "fail"):
        raise DataError(f"--on-error must be skip or fail, got {on_error!r}")
    if not source.exists():
        raise DataError(f"--input {source}: not found.")
    if source.is_file() and source.suffix.lower() not in (".parquet", ".pq"):
        raise DataError(
            f"--input {source}: scoring on Dask reads Parquet (a file or a directory of part "
            "files); convert it, or set resources.dask_scheduler: null to score a CSV here."
        )
    if source.resolve() == target.resolve():
        raise OutputError(f"--output {target} is the input {source}: choose another --output.")
    names, total = _parquet_columns(source)
    check_columns(names, bundle.fields, where=f"--input {source}")
    for stale in remove_stale_partials(target):
        log.warning("removed %s, left by an earlier run that was killed", stale)
    columns = [f["name"] for f in bundle.fields]
    frame = dd.read_parquet(str(source), columns=columns)
    parts = frame.to_delayed()
    # the bundle goes to every worker once, not once per partition
    shared = client.scatter(bundle, broadcast=True)
    futures = client.compute([dask.delayed(_score_partition)(shared, p) for p in parts])
    as_csv = target.suffix.lower() == ".csv"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with (
            partial_path(target) as tmp,
            progress(f"score {source.name} on dask", total, "row") as bar,
        ):
            out = ChunkWriter(bundle, source, tmp, as_csv, on_error, report, fix_hint)
            try:
                for future in futures:
                    chunk = future.result().shifted(out.rows_in)
                    future.release()  # its result is written: the worker may drop it
                    out.add(chunk)
                    bar.update(chunk.rows)
                    log.info("scored %d rows of %s on dask", out.rows_in, source)
                out.finish()
            finally:
                out.close()
                client.cancel(futures)
    except OSError as exc:
        raise OutputError(f"cannot score {source} into {target}: {exc}") from None
    return out.summary()


def score_with_scheduler(
    scheduler: str,
    bundle: Bundle,
    input_path: str | Path,
    output_path: str | Path,
    on_error: str = "fail",
) -> dict[str, Any]:
    """`valuegate predict --dask-scheduler ...`: check the address as the config does
    (`resources.dask_scheduler`), open the cluster, score, close it."""
    from pydantic import ValidationError

    from valuegate.config.schema import ResourcesConfig
    from valuegate.distributed.cluster import dask_client
    from valuegate.errors import ConfigError

    try:
        resources = ResourcesConfig(dask_scheduler=scheduler)
    except ValidationError as exc:
        message = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise ConfigError(f"--dask-scheduler: {message}") from None
    with dask_client(resources) as client:
        return score_parquet_on_dask(client, bundle, input_path, output_path, on_error)
