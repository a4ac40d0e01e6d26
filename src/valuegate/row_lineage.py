"""Row lineage: which rows a model has seen, as a compact set of 64-bit row hashes.

The deploy gate compares a new model with the registry's champion only on test rows that
neither model has seen (fitted on, or selected on). After a change of
seed or split most of a new test split can be rows the champion trained on; valuing the
champion there flatters it. Each bundle therefore records the hashes of its training and
validation rows (`train_rows.npy`, `valid_rows.npy`: sorted unique uint64, loaded with
`allow_pickle=False`, their sha256 in the manifest like every file).

How a row is hashed (scheme `valuegate-rows/1`)
    With `data.id_column` set, a row is its id. Otherwise a row is its whole content (every
    column of the prepared split, the target included), so the same row hashes the same in
    any split, in any column order, and whatever dtype a column was read with: numbers
    (ints, floats, bools, and strings that parse as numbers) hash by their float64 value
    (-0.0 as 0.0), timestamps by their nanoseconds, other values by their text, missing
    values (NaN, None, NaT) as one token. Each column's hash is mixed with a hash of its
    name, columns in sorted name order.

    64 bits: with a million training rows and a million test rows the chance that any
    test row falsely matches a training row is about 5e-8.

Pure functions: frames and arrays in, arrays and records out (the bundle files are written
by `stages/package.py`, read by `read_rows`).
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from valuegate.errors import ArtifactError

SCHEME = "valuegate-rows/1"
ROW_FILES = {"train": "train_rows.npy", "valid": "valid_rows.npy"}
_HASH_KEY = "valuegate-rows-1"  # pandas' siphash key for text: exactly 16 characters
_MISSING = np.uint64(0x9E3779B97F4A7C15)
_TAG_NUMBER = np.uint64(0x243F6A8885A308D3)
_TAG_TIME = np.uint64(0x13198A2E03707344)
_TAG_TEXT = np.uint64(0xA4093822299F31D0)
_MULTIPLIER = np.uint64(0x100000001B3)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, elementwise on uint64 (wraps modulo 2**64 by design)."""
    x = x.astype(np.uint64, copy=True)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def _name_hash(name: str) -> np.uint64:
    return np.uint64(
        int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")
    )


def _number_hashes(numbers: np.ndarray) -> np.ndarray:
    values = numbers.astype(np.float64) + 0.0  # -0.0 + 0.0 is 0.0: one zero
    return _mix(values.view(np.uint64) ^ _TAG_NUMBER)


def column_hashes(column: pd.Series) -> np.ndarray:
    """One uint64 per value of `column`, shape (n,): equal for equal values however the
    column was typed (3, 3.0, "3" and True/1 hash alike; missing values all alike)."""
    n = len(column)
    out = np.empty(n, dtype=np.uint64)
    missing = column.isna().to_numpy()
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        stamps = column.to_numpy(dtype="datetime64[ns]").view(np.int64).view(np.uint64)
        out[:] = _mix(stamps ^ _TAG_TIME)
    elif pd.api.types.is_bool_dtype(column.dtype) or pd.api.types.is_numeric_dtype(column.dtype):
        out[:] = _number_hashes(column.to_numpy(dtype=np.float64, na_value=np.nan))
    else:
        # Text (or mixed objects): each distinct value once (a column has far fewer distinct
        # values than rows, and parsing text is slow), then mapped back to the rows. Values
        # that read as numbers hash as those numbers, so a column that was numeric in one
        # run and categorical ("3.0") in another still matches.
        codes, uniques = pd.factorize(column, use_na_sentinel=True)
        numbers = np.full(len(uniques), np.nan)
        for i, value in enumerate(uniques):
            try:
                numbers[i] = float(value)
            except (TypeError, ValueError):
                continue
        is_number = ~np.isnan(numbers)
        hashes = np.empty(len(uniques), dtype=np.uint64)
        hashes[is_number] = _number_hashes(numbers[is_number])
        text = np.array(
            [str(v) for v in np.asarray(uniques, dtype=object)[~is_number]], dtype=object
        )
        if len(text):
            hashed = pd.util.hash_array(text, hash_key=_HASH_KEY, categorize=False)
            hashes[~is_number] = _mix(hashed.astype(np.uint64) ^ _TAG_TEXT)
        out[:] = hashes[np.maximum(codes, 0)] if len(uniques) else _MISSING
    out[missing] = _MISSING
    return out


def lineage_columns(frame: pd.DataFrame, id_column: str | None) -> list[str]:
    """The columns a row is identified by: the id, else every column (sorted by name)."""
    return [id_column] if id_column else sorted(map(str, frame.columns))


def row_hashes(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """One uint64 per row of `frame`, shape (n,), from `columns` (`lineage_columns`)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ArtifactError(f"row lineage needs column(s) {missing}; the split has none such.")
    if len(set(columns)) != len(columns):
        raise ArtifactError(f"row lineage: duplicated column names in {columns}.")
    h = np.full(len(frame), np.uint64(0x6A09E667F3BCC908), dtype=np.uint64)
    for name in columns:
        h = _mix(h * _MULTIPLIER + _name_hash(name) + column_hashes(frame[name]))
    return h


def row_set(hashes: np.ndarray) -> np.ndarray:
    """The sorted unique hashes (what a bundle stores), shape (m,), uint64."""
    return np.unique(np.asarray(hashes, dtype=np.uint64))


def fingerprint(hashes: np.ndarray) -> str:
    """16 hex digits identifying a set of rows (order and repeats do not matter)."""
    return hashlib.sha256(row_set(hashes).astype("<u8").tobytes()).hexdigest()[:16]


def unseen(test: np.ndarray, *seen: np.ndarray) -> np.ndarray:
    """Which test rows (hashes, shape (n,)) are in none of the `seen` sets: bool (n,)."""
    mask = np.ones(len(test), dtype=bool)
    for rows in seen:
        mask &= ~np.isin(test, rows)
    return mask


def lineage_record(
    splits: dict[str, pd.DataFrame], id_column: str | None, data_sha256: str, split: dict
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """What a bundle records of the rows its model saw: (manifest entry, {"train": set,
    "valid": set}). `splits`: the prepared train, valid and test frames."""
    columns = lineage_columns(splits["train"], id_column)
    hashes = {name: row_hashes(frame, columns) for name, frame in splits.items()}
    sets = {name: row_set(hashes[name]) for name in ROW_FILES}
    digest = hashlib.sha256()
    for name in sorted(hashes):
        digest.update(f"{name}:{fingerprint(hashes[name])};".encode())
    record = {
        "scheme": SCHEME,
        "by": "id" if id_column else "content",
        "columns": columns,
        "files": dict(ROW_FILES),
        "rows": {name: len(sets[name]) for name in ROW_FILES},
        "split_fingerprint": digest.hexdigest()[:16],
        "test_rows_fingerprint": fingerprint(hashes["test"]),
        "data_sha256": data_sha256,
        "split": split,
    }
    return record, sets


def to_npy(rows: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(rows, dtype="<u8"), allow_pickle=False)
    return buffer.getvalue()


def read_rows(directory: Path, manifest: dict[str, Any], which: str) -> np.ndarray:
    """A bundle's row set (`which`: "train" or "valid"), after checking its sha256 against
    the manifest. Raises ArtifactError when the bundle records no lineage."""
    from valuegate.bundle import sha256_file

    name = manifest.get("row_lineage", {}).get("files", {}).get(which)
    listed = manifest.get("files", {}).get(name) if name else None
    path = Path(directory) / str(name)
    if not name or listed is None or not path.is_file():
        raise ArtifactError(f"{directory} records no {which} rows (bundled before lineage).")
    if sha256_file(path) != listed:
        raise ArtifactError(f"{path} was altered after the bundle was written; refusing it.")
    try:
        rows = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise ArtifactError(f"{path} is not a row-hash array: {exc}") from None
    if rows.ndim != 1 or rows.dtype != np.dtype("<u8"):
        raise ArtifactError(f"{path} holds {rows.dtype} of shape {rows.shape}, not uint64 (n,).")
    return rows
