"""Batch scoring: stream a CSV/Parquet file through a bundle in chunks, atomically.

Memory is bounded by the chunk size, not the input: pyarrow reads one batch at a time
(Parquet row batches, CSV blocks) and a writer appends each scored batch to a temporary
file (`.NAME.valuegate-partial-PID.tmp`, valuegate.io.partial_path) that replaces the
output only when every chunk succeeded; a killed run's temporary file is removed by the
next run that writes the same output.

What is accepted is `bundle.check_chunk`'s rule, the same the service applies: a CSV is
read as text with pandas' missing-value markers (as the training file was read), and
each column is converted and checked there.
"""

from __future__ import annotations

import csv
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from valuegate.bundle import CSV_NULL_VALUES, Bundle, check_chunk, check_columns, decide
from valuegate.errors import DataError, ValuegateError
from valuegate.io import partial_path, remove_stale_partials
from valuegate.logs import progress

MAX_REPORTED = 20
log = logging.getLogger(__name__)


class OutputError(ValuegateError):
    """The output path cannot be written (or would overwrite the input)."""

    kind = "output error"


def _empty_output(bundle: Bundle) -> pa.Table:
    """No rows, with exactly the columns and types a scored chunk has."""
    return pa.table(
        {
            "row": pa.array([], pa.int64()),
            "score": pa.array([], pa.float64()),
            "decision": pa.array([], pa.bool_() if bundle.task == "binary" else pa.float64()),
            "expected_value": pa.array([], pa.float64()),
        }
    )


def _first_undecodable(path: Path, encoding: str) -> str:
    """Where `path` stops being `encoding` text: 'line L (data row R), byte 0xNN'."""
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode(encoding)
            except UnicodeDecodeError as exc:
                row = f" (data row {number - 1})" if number > 1 else " (the header)"
                return (
                    f"line {number}{row}, byte 0x{line[exc.start]:02x} at position {exc.start + 1}"
                )
    return "somewhere (the position could not be found)"


def _not_text(path: Path, encoding: str) -> DataError:
    return DataError(
        f"--input {path} is not {encoding} text: {_first_undecodable(path, encoding)}. "
        "Save it as UTF-8, or pass its encoding, e.g. --encoding latin-1."
    )


def _csv_header(path: Path, encoding: str) -> list[str]:
    codec = "utf-8-sig" if encoding.replace("_", "-").lower() in ("utf-8", "utf8") else encoding
    try:
        with open(path, encoding=codec, newline="") as handle:
            return next(csv.reader(handle), [])
    except UnicodeDecodeError:
        raise _not_text(path, encoding) from None
    except LookupError:
        raise DataError(f"--encoding {encoding!r}: not an encoding Python knows.") from None


def _row_count(path: Path) -> int | None:
    """Rows of a Parquet file from its footer (the bar's total); None for a CSV (counting
    its lines would read it twice): the bar then counts up without a total."""
    if path.suffix.lower() not in (".parquet", ".pq"):
        return None
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (pa.ArrowException, OSError):
        return None  # _batches says what is wrong with the file


def _batches(
    path: Path, fields: list[dict[str, Any]], chunk_size: int, encoding: str = "utf-8"
) -> Iterator[pd.DataFrame]:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            # pre_buffer off: with it (pyarrow's default) every row group's pre-read ranges
            # stay allocated until the file is closed (apache/arrow#39808), so memory grew
            # with the file (0.67 GiB peak at 1M rows, 1.21 GiB at 5M); without it the
            # reader holds one row group at a time (docs/scale.md, "Measured").
            source = pq.ParquetFile(path, pre_buffer=False)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"--input {path}: cannot read it as Parquet: {exc}") from None
        check_columns(source.schema_arrow.names, fields, where=f"--input {path}")
        columns = [f["name"] for f in fields]
        try:
            for batch in source.iter_batches(batch_size=chunk_size, columns=columns):
                yield batch.to_pandas()
        except pa.ArrowException as exc:
            raise DataError(f"--input {path}: cannot read it as Parquet: {exc}") from None
        return
    if suffix not in (".csv", ".txt"):
        raise DataError(
            f"--input {path}: give a .csv or .parquet file (got {suffix or 'no suffix'})."
        )
    import pyarrow.csv as pcsv

    header = _csv_header(path, encoding)
    if not header:
        raise DataError(f"--input {path} is empty: a CSV needs a header row naming the columns.")
    check_columns(header, fields, where=f"--input {path}")
    # Everything as text (check_chunk converts and reports bad values by row), with the
    # markers pandas reads as missing, as the training file was read.
    types = {f["name"]: pa.string() for f in fields}
    try:
        reader = pcsv.open_csv(
            path,
            read_options=pcsv.ReadOptions(
                block_size=max(1 << 16, min(chunk_size * 256, 1 << 27)), encoding=encoding
            ),
            convert_options=pcsv.ConvertOptions(
                column_types=types,
                include_columns=[f["name"] for f in fields],
                null_values=CSV_NULL_VALUES,
                strings_can_be_null=True,
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
    except pa.ArrowInvalid as exc:
        if "UTF8" in str(exc):
            raise _not_text(path, encoding) from None
        raise DataError(f"--input {path}: not a well-formed CSV: {exc}") from None
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


def check_paths(source: Path, target: Path) -> None:
    """Refuse, before anything is read or written, an input that is not a readable file
    and an output that is the input (by any path: a link, `./x`, a hard link) or that
    cannot be a file (under a regular file, or an existing directory)."""
    if not source.is_file():
        raise DataError(f"--input {source}: file not found.")
    if source.stat().st_size == 0:
        raise DataError(f"--input {source} is empty: a CSV needs a header row naming the columns.")
    same = source.resolve() == target.resolve()
    if not same and target.exists():
        try:
            same = os.path.samefile(source, target)
        except OSError:
            same = False
    if same:
        raise OutputError(
            f"--output {target} is the input file {source}: scoring would overwrite your "
            "data. Choose another --output."
        )
    if target.is_dir():
        raise OutputError(f"--output {target} is a directory; give a file path.")
    for parent in target.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(
                    f"--output {target}: {parent} is a file, not a directory; the output "
                    "cannot go under it."
                )
            if not os.access(parent, os.W_OK | os.X_OK):
                raise OutputError(f"--output {target}: cannot write in {parent}.")
            break


def predict_file(
    bundle: Bundle,
    input_path: str | Path,
    output_path: str | Path,
    chunk_size: int = 100_000,
    on_error: str = "fail",
    report: TextIO = sys.stderr,
    encoding: str = "utf-8",
    fix_hint: str = "Fix them or pass --on-error skip.",
) -> dict[str, Any]:
    """Score `input_path` into `output_path` (Parquet, or CSV by suffix). Output columns:
    row (1-based data row of the input), score, decision, expected_value.

    Returns rows_in, rows_scored, rows_skipped, and per column `unseen_categories` (values
    scored as an unknown level) and `missing_not_in_training` (gaps where training had
    none, imputed or scored as an unknown level); columns without any are left out."""
    source, target = Path(input_path), Path(output_path)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise DataError(f"--chunk-size must be a whole number >= 1, got {chunk_size!r}.")
    if on_error not in ("skip", "fail"):
        raise DataError(f"--on-error must be skip or fail, got {on_error!r}")
    check_paths(source, target)
    for stale in remove_stale_partials(target):
        log.warning("removed %s, left by an earlier run that was killed", stale)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        return _score_into(bundle, source, target, chunk_size, on_error, report, encoding, fix_hint)
    except OSError as exc:  # disk full, permissions changed mid-run, ...
        raise OutputError(f"cannot score {source} into {target}: {exc}") from None


@dataclass
class ScoredChunk:
    """One chunk scored: `rows` rows read; `table` the scored ones (columns row, score,
    decision, expected_value; `row` counts data rows of the input from 1); `errors`
    (row number, reason) of the refused rows; per column, the unseen categories and the
    gaps where training had none. Plain data: a Dask worker returns it to the driver."""

    rows: int
    table: pa.Table
    errors: list[tuple[int, str]]
    unseen: dict[str, int]
    new_missing: dict[str, int]

    def shifted(self, offset: int) -> ScoredChunk:
        """The same chunk with its row numbers moved `offset` rows down the input (a
        partition scored on its own numbers its rows from 1)."""
        if offset == 0:
            return self
        rows = pc.add(self.table.column("row"), pa.scalar(offset, pa.int64()))
        table = self.table.set_column(0, "row", rows)
        errors = [(row + offset, why) for row, why in self.errors]
        return ScoredChunk(self.rows, table, errors, self.unseen, self.new_missing)


def score_chunk(bundle: Bundle, chunk: pd.DataFrame, first_row: int = 0) -> ScoredChunk:
    """Check and score one chunk of input rows (a DataFrame with the bundle's columns):
    the one per-chunk step of batch scoring, in this process or on a Dask worker.
    `first_row`: data rows of the input before this chunk."""
    checked = check_chunk(chunk, bundle.fields, first_row=first_row)
    keep = ~checked.bad
    clean = checked.clean.loc[keep]
    if len(clean):
        scored = score_frame(bundle, clean)
        row_numbers = np.arange(first_row + 1, first_row + len(chunk) + 1)
        scored.insert(0, "row", row_numbers[keep])
        table = pa.Table.from_pandas(scored, preserve_index=False)
    else:  # every row of the chunk refused: the same columns and types, no rows
        table = _empty_output(bundle)
    return ScoredChunk(len(chunk), table, checked.errors, checked.unseen, checked.new_missing)


class ScoreTally:
    """Takes scored chunks in input order and applies `on_error` (fail: a DataError naming
    the first bad rows of `source`, ending with `fix_hint`; skip: count them, keep the
    first MAX_REPORTED (row, reason) in `skipped` and print those to `report` when one is
    given: memory stays flat however many rows are refused); counts rows and the
    unseen categories and new gaps per column. No I/O beyond `report`: the batch file path,
    the Dask path and the in-memory score step (pipeline/score.py) keep the same tally."""

    def __init__(
        self, source: str | Path, on_error: str, fix_hint: str, report: TextIO | None = None
    ) -> None:
        if on_error not in ("skip", "fail"):
            raise DataError(f"--on-error must be skip or fail, got {on_error!r}")
        self.source, self.on_error, self.fix_hint, self.report = source, on_error, fix_hint, report
        self.rows_in = self.rows_out = self.rows_skipped = 0
        self.skipped: list[tuple[int, str]] = []
        self.unseen: dict[str, int] = {}
        self.new_missing: dict[str, int] = {}

    def add(self, chunk: ScoredChunk) -> None:
        errors = chunk.errors
        if errors:
            shown = errors[:5]
            if self.on_error == "fail":
                more = f" (+{len(errors) - 5} more in this chunk)" if len(errors) > 5 else ""
                raise DataError(
                    f"{self.source}: bad row(s): "
                    + "; ".join(f"row {r}: {why}" for r, why in shown)
                    + more
                    + f". {self.fix_hint}"
                )
            for row, why in errors[: max(0, MAX_REPORTED - len(self.skipped))]:
                if self.report is not None:
                    print(f"skipped row {row}: {why}", file=self.report)
                self.skipped.append((row, why))
            self.rows_skipped += len(errors)
        for column, count in chunk.unseen.items():
            self.unseen[column] = self.unseen.get(column, 0) + count
        for column, count in chunk.new_missing.items():
            self.new_missing[column] = self.new_missing.get(column, 0) + count
        self.rows_in += chunk.rows
        self.rows_out += chunk.table.num_rows

    def summary(self) -> dict[str, Any]:
        """rows_in, rows_scored, rows_skipped, and per column `unseen_categories` and
        `missing_not_in_training` (columns without any left out)."""
        if self.report is not None and self.rows_skipped > MAX_REPORTED:
            print(
                f"... {self.rows_skipped - MAX_REPORTED} more skipped rows not shown",
                file=self.report,
            )
        return {
            "rows_in": self.rows_in,
            "rows_scored": self.rows_out,
            "rows_skipped": self.rows_skipped,
            "unseen_categories": dict(sorted(self.unseen.items())),
            "missing_not_in_training": dict(sorted(self.new_missing.items())),
        }


class ChunkWriter:
    """Takes scored chunks in input order: tallies them (`ScoreTally`: `on_error`, counts)
    and appends each to `tmp` (Parquet, or CSV when `as_csv`); `summary()` is
    predict_file's return value."""

    def __init__(
        self,
        bundle: Bundle,
        source: Path,
        tmp: Path,
        as_csv: bool,
        on_error: str,
        report: TextIO,
        fix_hint: str,
    ) -> None:
        self.bundle, self.tmp, self.as_csv = bundle, tmp, as_csv
        self.tally = ScoreTally(source, on_error, fix_hint, report)
        self.writer: Any = None
        self.closed = False

    @property
    def rows_in(self) -> int:
        return self.tally.rows_in

    def add(self, chunk: ScoredChunk) -> None:
        self.tally.add(chunk)
        if self.writer is None:
            self.writer = _writer(self.tmp, chunk.table.schema, self.as_csv)
        self.writer.write_table(chunk.table)

    def close(self) -> None:
        if self.writer is not None and not self.closed:
            self.writer.close()
            self.closed = True

    def finish(self) -> None:
        """After the last chunk: a header and no rows is still a valid, empty output."""
        if self.writer is None:
            table = _empty_output(self.bundle)
            self.writer = _writer(self.tmp, table.schema, self.as_csv)
            self.writer.write_table(table)
        self.close()

    def summary(self) -> dict[str, Any]:
        return self.tally.summary()


def _score_into(
    bundle: Bundle,
    source: Path,
    target: Path,
    chunk_size: int,
    on_error: str,
    report: TextIO,
    encoding: str,
    fix_hint: str,
) -> dict[str, Any]:
    as_csv = target.suffix.lower() == ".csv"
    with (
        partial_path(target) as tmp,
        progress(f"score {source.name}", _row_count(source), "row") as bar,
    ):
        out = ChunkWriter(bundle, source, tmp, as_csv, on_error, report, fix_hint)
        try:
            for chunk in _batches(source, bundle.fields, chunk_size, encoding):
                out.add(score_chunk(bundle, chunk, first_row=out.rows_in))
                bar.update(len(chunk))
                log.info("scored %d rows of %s", out.rows_in, source)
            out.finish()
        finally:
            out.close()
    return out.summary()


def _writer(tmp: Path, schema: pa.Schema, as_csv: bool) -> Any:
    if as_csv:
        import pyarrow.csv as pcsv

        return pcsv.CSVWriter(str(tmp), schema)
    import pyarrow.parquet as pq

    return pq.ParquetWriter(str(tmp), schema)


def describe_extras(summary: dict[str, Any]) -> str:
    """'; unseen categories: purpose 3, job 1 (...)' for a one-line summary, or ''."""
    parts = []
    if summary.get("unseen_categories"):
        counts = ", ".join(f"{c} {n}" for c, n in summary["unseen_categories"].items())
        parts.append(f"unseen categories (scored as unknown levels): {counts}")
    if summary.get("missing_not_in_training"):
        counts = ", ".join(f"{c} {n}" for c, n in summary["missing_not_in_training"].items())
        parts.append(f"missing where training had no gaps: {counts}")
    return "".join(f"; {p}" for p in parts)
