"""Batch scoring: stream a CSV/Parquet file through a bundle in chunks, atomically.

Memory is bounded by the chunk size, not the input: pyarrow reads one batch at a time
(Parquet row batches, CSV blocks) and a ParquetWriter appends each scored batch to a
temporary file that replaces the output only when every chunk succeeded.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd
import pyarrow as pa

from valuegate.bundle import Bundle, decide, validate_chunk
from valuegate.errors import DataError
from valuegate.io import atomic_path

MAX_REPORTED = 20


def _batches(path: Path, fields: list[dict[str, Any]], chunk_size: int) -> Iterator[pd.DataFrame]:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        source = pq.ParquetFile(path)
        names = set(source.schema_arrow.names)
        columns = [f["name"] for f in fields if f["name"] in names]
        missing = [f["name"] for f in fields if f["name"] not in names]
        if missing:
            raise DataError(f"{path} lacks column(s) {missing} that the model needs.")
        for batch in source.iter_batches(batch_size=chunk_size, columns=columns):
            yield batch.to_pandas()
        return
    if suffix not in (".csv", ".txt"):
        raise DataError(f"{path}: give a .csv or .parquet file (got {suffix or 'no suffix'}).")
    import pyarrow.csv as pcsv

    header = pd.read_csv(path, nrows=0).columns
    missing = [f["name"] for f in fields if f["name"] not in header]
    if missing:
        raise DataError(f"{path} lacks column(s) {missing} that the model needs.")
    # Everything as text: validate_chunk converts and reports bad values by row.
    types = {f["name"]: pa.string() for f in fields}
    reader = pcsv.open_csv(
        path,
        read_options=pcsv.ReadOptions(block_size=max(1 << 16, min(chunk_size * 256, 1 << 27))),
        convert_options=pcsv.ConvertOptions(
            column_types=types, include_columns=[f["name"] for f in fields]
        ),
    )
    pending: list[pd.DataFrame] = []
    size = 0
    for batch in reader:
        frame = batch.to_pandas()
        while len(frame):
            take = frame.iloc[: chunk_size - size]
            frame = frame.iloc[len(take) :]
            pending.append(take)
            size += len(take)
            if size == chunk_size:
                yield pd.concat(pending, ignore_index=True)
                pending, size = [], 0
    if pending:
        yield pd.concat(pending, ignore_index=True)


def score_frame(bundle: Bundle, frame: pd.DataFrame) -> pd.DataFrame:
    """Validated rows -> score, decision and expected value per row."""
    scores = bundle.score_frame(frame)
    amount_column = bundle.amount_column
    amount = None
    if amount_column and amount_column in frame:
        amount = frame[amount_column].to_numpy(dtype=float)
    decided = decide(bundle, scores, amount)
    return pd.DataFrame(
        {
            "score": scores,
            "decision": decided["decision"],
            "expected_value": decided["expected_value"],
        }
    )


def predict_file(
    bundle: Bundle,
    input_path: str | Path,
    output_path: str | Path,
    chunk_size: int = 100_000,
    on_error: str = "fail",
    report: TextIO = sys.stderr,
) -> dict[str, Any]:
    """Score `input_path` into `output_path` (Parquet, or CSV by suffix). Output columns:
    row (1-based data row of the input), score, decision, expected_value."""
    import pyarrow.parquet as pq

    source, target = Path(input_path), Path(output_path)
    if not source.is_file():
        raise DataError(f"--input {source}: file not found.")
    if on_error not in ("skip", "fail"):
        raise DataError(f"--on-error must be skip or fail, got {on_error!r}")
    as_csv = target.suffix.lower() == ".csv"
    fields = bundle.fields
    rows_in = rows_out = skipped = 0
    with atomic_path(target) as tmp:
        writer: Any = None
        try:
            for chunk in _batches(source, fields, chunk_size):
                clean, bad, errors = validate_chunk(chunk, fields, first_row=rows_in)
                if errors:
                    shown = errors[:5]
                    if on_error == "fail":
                        more = (
                            f" (+{len(errors) - 5} more in this chunk)" if len(errors) > 5 else ""
                        )
                        raise DataError(
                            f"{source}: bad row(s): "
                            + "; ".join(f"row {r}: {why}" for r, why in shown)
                            + more
                            + ". Fix them or pass --on-error skip."
                        )
                    for row, why in errors:
                        if skipped < MAX_REPORTED:
                            print(f"skipped row {row}: {why}", file=report)
                        skipped += 1
                row_numbers = np.arange(rows_in + 1, rows_in + len(chunk) + 1)
                rows_in += len(chunk)
                keep = ~bad
                clean = clean.loc[keep]
                scored = (
                    score_frame(bundle, clean)
                    if len(clean)
                    else pd.DataFrame({"score": [], "decision": [], "expected_value": []})
                )
                scored.insert(0, "row", row_numbers[keep])
                table = pa.Table.from_pandas(scored, preserve_index=False)
                if writer is None:
                    if as_csv:
                        import pyarrow.csv as pcsv

                        writer = pcsv.CSVWriter(str(tmp), table.schema)
                    else:
                        writer = pq.ParquetWriter(str(tmp), table.schema)
                writer.write_table(table)
                rows_out += len(scored)
        finally:
            if writer is not None:
                writer.close()
        if writer is None:  # empty input: still a valid, empty output
            empty = pa.table({"row": pa.array([], pa.int64()), "score": pa.array([], pa.float64())})
            pq.write_table(empty, tmp)
    if skipped > MAX_REPORTED:
        print(f"... {skipped - MAX_REPORTED} more skipped rows not shown", file=report)
    return {"rows_in": rows_in, "rows_scored": rows_out, "rows_skipped": skipped}
