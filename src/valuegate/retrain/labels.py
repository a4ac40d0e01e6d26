"""New labelled rows appended to the training data: one Parquet file per window under
`appended/<data.name>/`, read together with `data.path` (`data.load_raw`).

The directory is a dependency of the `prepare` stage in dvc.yaml, so appending a window
reruns the graph from there; while it holds no file for the dataset, the data (and every
output) are exactly `data.path`'s. Each file is written once, atomically, and refused when
its rows repeat ids the data already holds (a row appended twice would sit in two splits).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd

from valuegate.config.schema import DataConfig
from valuegate.errors import DataError
from valuegate.hashing import sha256_file

APPENDED = Path("appended")
"""The directory appended windows live under (a DVC dependency of `prepare`: it must
exist, so a project holds it with this README; `valuegate init` writes it too)."""

APPENDED_README = """# appended/

New labelled rows for retraining, one Parquet file per window:
`appended/<data.name>/window-<period>.parquet`, written by
`valuegate retrain --window <period> --labels FILE` (docs/retrain.md). The `prepare`
stage reads them after `data.path`'s rows (this directory is one of its DVC
dependencies); while a dataset has no directory here, its data are `data.path` alone.
Commit the files with the run that used them, as you would `data/raw/`.
"""


def directory(cfg: DataConfig, root: str | Path = ".") -> Path:
    """Where the appended windows of `cfg`'s dataset live (one directory per data.name, so
    switching data never mixes two datasets' rows)."""
    return Path(root) / APPENDED / cfg.name


def appended_files(cfg: DataConfig, root: str | Path = ".") -> list[Path]:
    """The appended windows, in name order (a file being written starts with "." and is
    left out)."""
    where = directory(cfg, root)
    if not where.is_dir():
        return []
    return sorted(p for p in where.glob("*.parquet") if not p.name.startswith("."))


def window_file(cfg: DataConfig, window: Any, root: str | Path = ".") -> Path:
    """The file of one window, e.g. appended/employment/window-2017.parquet."""
    label = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(window))
    return directory(cfg, root) / f"window-{label}.parquet"


def source_sha256(cfg: DataConfig, root: str | Path = ".") -> str:
    """The digest of the training data as read: `data.path`'s sha256 alone while nothing is
    appended (so runs without appended rows keep their fingerprints), else a digest of it
    and every appended file (name and sha256)."""
    main = sha256_file(Path(root) / cfg.path)
    files = appended_files(cfg, root)
    if not files:
        return main
    parts = [main, *[[p.name, sha256_file(p)] for p in files]]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def with_appended(frame: pd.DataFrame, cfg: DataConfig, root: str | Path = ".") -> pd.DataFrame:
    """`frame` (data.path's rows) followed by every appended window's rows; each window must
    hold exactly the same columns (a DataError names the file and the columns)."""
    files = appended_files(cfg, root)
    if not files:
        return frame
    parts = [frame]
    for path in files:
        try:
            part = pd.read_parquet(path)
        except (OSError, ValueError) as exc:
            raise DataError(f"appended labels {path}: cannot read it as Parquet: {exc}") from None
        problem = column_problem(part, list(frame.columns))
        if problem:
            raise DataError(f"appended labels {path}: {problem}; remove or rewrite the file.")
        parts.append(part[list(frame.columns)])
    return pd.concat(parts, ignore_index=True)


def column_problem(rows: pd.DataFrame, columns: list[str]) -> str | None:
    """What keeps `rows` from joining a table of `columns`, or None."""
    missing = [c for c in columns if c not in rows.columns]
    extra = [str(c) for c in rows.columns if c not in columns]
    if not missing and not extra:
        return None
    said = []
    if missing:
        said.append(f"lacks the columns {missing}")
    if extra:
        said.append(f"holds columns the data does not: {extra}")
    return " and ".join(said)


def labelled_rows(
    cfg: DataConfig,
    labels: str | Path,
    rows: str | Path | None = None,
    id_column: str | None = None,
) -> pd.DataFrame:
    """New labelled rows: `labels` alone (a CSV/Parquet of production rows with the
    target), or `rows` (a CSV/Parquet of production rows, or the prediction log of
    `valuegate serve`) joined with `labels` by `id_column` (default data.id_column; for a
    log, labels name its request_id). Rows whose label has not arrived are left out."""
    from valuegate.monitor.windows import is_log, join_labels, read_log, read_rows

    table = read_rows(labels, "--labels")
    if rows is None:
        if cfg.target not in table.columns:
            raise DataError(
                f"--labels {labels}: lacks the target column {cfg.target!r}; give a file of "
                "production rows with their labels, or --rows FILE and labels by id."
            )
        return table.reset_index(drop=True)
    from_log = is_log(rows)
    production = read_log(Path(rows), None) if from_log else read_rows(rows, "--rows")
    key = id_column or ("request_id" if from_log else cfg.id_column)
    if key is None:
        raise DataError(
            "--labels: data.id_column is null, so labels cannot be joined to --rows by id; "
            "pass --id-column or give --labels alone (rows with their labels)."
        )
    target = join_labels(production, table, key, cfg.target, f"--labels {labels}")
    out = production.copy()
    out[cfg.target] = target.to_numpy()
    # Columns only the labels file holds (e.g. the time column, for a log's rows).
    extra = [c for c in table.columns if c not in out.columns and c != cfg.target]
    if extra:
        by_id = table.set_index(table[key].astype(str))[extra]
        joined = by_id.reindex(out[key].astype(str).to_numpy())
        for column in extra:
            out[column] = joined[column].to_numpy()
    if cfg.id_column and cfg.id_column not in out.columns and key in out.columns:
        out[cfg.id_column] = out[key]
    return out[out[cfg.target].notna()].reset_index(drop=True)


def _as_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 21.0 read from a CSV column with gaps is the level "21"
    return str(value)


def aligned(new: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame:
    """`new` with each column in the type the data holds it in, where a CSV read it
    otherwise: codes kept as text (categorical / text columns, "21" not 21 or 21.0), and
    whole numbers in the data's integer type when nothing is missing."""
    from pandas.api import types as ptypes

    out = new.copy()
    for column in current.columns:
        have, got = current[column].dtype, out[column]
        textual = isinstance(have, pd.CategoricalDtype) or not ptypes.is_numeric_dtype(have)
        if textual and ptypes.is_numeric_dtype(got) and not ptypes.is_bool_dtype(got):
            out[column] = got.map(_as_text, na_action="ignore").astype(object)
        elif ptypes.is_integer_dtype(have) and ptypes.is_numeric_dtype(got) and got.notna().all():
            cast = got.astype(have)
            if (cast.astype(float) == got.astype(float)).all():
                out[column] = cast
    return out


def append(
    cfg: DataConfig,
    new: pd.DataFrame,
    window: Any,
    root: str | Path = ".",
    dry_run: bool = False,
) -> tuple[Path, int]:
    """Append `new` (labelled production rows) as the window `window`'s file, atomically.

    The rows must hold exactly data.path's columns (extra columns of a log, e.g. its score,
    are dropped); with data.id_column, no id may repeat one the data already holds, nor
    repeat within `new`. The same rows appended again are a no-op; other rows for a window
    already appended are refused. Returns (the file, the rows appended)."""
    from valuegate.data import load_raw
    from valuegate.io import write_with

    if len(new) == 0:
        raise DataError(f"--labels: no labelled rows to append for window {window!r}.")
    current = load_raw(cfg, root)
    columns = list(current.columns)
    missing = [c for c in columns if c not in new.columns]
    if missing:
        raise DataError(
            f"--labels: the new rows lack the columns {missing} that {cfg.path} holds; "
            "every appended row needs the data's columns."
        )
    new = aligned(new[columns].reset_index(drop=True), current)
    target = window_file(cfg, window, root)
    if cfg.id_column:
        ids = new[cfg.id_column].astype(str)
        twice = ids[ids.duplicated()].unique()
        if len(twice):
            raise DataError(
                f"--labels: {len(twice)} id(s) in column {cfg.id_column!r} occur more than "
                f"once in the new rows, e.g. {list(twice[:5])}."
            )
    if target.is_file():
        if pd.read_parquet(target).reset_index(drop=True).equals(new):
            return target, 0
        raise DataError(
            f"--labels: window {window!r} was already appended ({target}) with other rows; "
            "delete that file to replace it."
        )
    if cfg.id_column:
        known = set(current[cfg.id_column].astype(str))
        repeated = ids[ids.isin(known)]
        if len(repeated):
            raise DataError(
                f"--labels: {len(repeated)} of the {len(new)} new rows repeat ids the data "
                f"already holds (column {cfg.id_column!r}), e.g. {list(repeated[:5])}: a row "
                "appended twice would sit in two splits."
            )
    if not dry_run:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_with(target, lambda tmp: new.to_parquet(tmp, index=False))
    return target, len(new)
