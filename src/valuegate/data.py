"""Load raw data, validate it against the data config, infer features, split.

Pure functions except `load_raw` (reads a file). Errors name the column, the bad value
and what is allowed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from valuegate.config.fingerprint import data_lineage
from valuegate.config.messages import nearest
from valuegate.config.schema import DataConfig, RetrainWindow
from valuegate.errors import DataError
from valuegate.hashing import sha256_file

SPLITS = ("train", "valid", "test")
YAML_BOOLEAN_WORDS = {True: {"yes", "y", "on", "true"}, False: {"no", "n", "off", "false"}}
"""What YAML reads as a boolean when unquoted, lower-cased."""
MIN_ROWS_PER_CLASS = 5


# The data file's fingerprint, under the name the stages, sweep and benches call it by.
file_sha256 = sha256_file


def _first_rows(mask: np.ndarray) -> str:
    rows = np.flatnonzero(mask)
    return f"{len(rows)} rows (first rows: {rows[:5].tolist()}, counted from 0 after the header)"


def csv_header_problem(path: Path, shown: str) -> str | None:
    """Duplicate column names in a CSV header (pandas would silently rename the second
    'age' to 'age.1'), or None."""
    import csv

    with open(path, newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle), [])
    seen: dict[str, list[int]] = {}
    for position, name in enumerate(header):
        seen.setdefault(name, []).append(position + 1)
    repeated = {name: places for name, places in seen.items() if len(places) > 1}
    if not repeated:
        return None
    listed = "; ".join(f"{name!r} at columns {places}" for name, places in repeated.items())
    return f"data.path: {shown} names a column more than once ({listed}); rename or drop them."


def _not_utf8(path: Path, shown: str, exc: UnicodeDecodeError) -> DataError:
    data = path.read_bytes()
    offset = exc.start
    # The position the decoder reports is within the chunk it read; find the first bad
    # byte in the file itself for the line number.
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as whole:
        offset = whole.start
    line = data.count(b"\n", 0, offset) + 1
    return DataError(
        f"data.path: {shown} is not UTF-8 text: byte 0x{data[offset]:02x} on line {line} "
        "(a latin-1 or Windows-1252 file?). valuegate reads CSV as UTF-8: convert it, e.g. "
        "`iconv -f latin1 -t utf-8 in.csv > out.csv`, or save it as UTF-8."
    )


def load_raw(cfg: DataConfig, root: str | Path = ".") -> pd.DataFrame:
    """Read `data.path` (CSV as UTF-8, or Parquet) relative to `root`, followed by any
    labelled windows appended under appended/<data.name>/ (retrain/labels.py); refuse
    an empty file, a CSV header that names a column twice, and text that is not UTF-8."""
    path = Path(root) / cfg.path
    shown = repr(cfg.path)
    if not path.is_file():
        raise DataError(f"data.path: file {shown} not found (looked in {path.resolve()}).")
    if path.stat().st_size == 0:
        raise DataError(f"data.path: {shown} is empty (0 bytes): no header, no rows.")
    fmt = cfg.format
    if fmt == "auto":
        fmt = "parquet" if path.suffix.lower() in {".parquet", ".pq"} else "csv"
    try:
        if fmt == "parquet":
            frame = pd.read_parquet(path)
        else:
            problem = csv_header_problem(path, shown)
            if problem:
                raise DataError(problem)
            frame = pd.read_csv(path, low_memory=False, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, shown, exc) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"data.path: {shown} holds no header and no rows.") from None
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(f"data.path: cannot read {shown} as {fmt}: {exc}") from None
    repeated = sorted({str(c) for c in frame.columns if list(frame.columns).count(c) > 1})
    if repeated:
        raise DataError(f"data.path: {shown} names the columns {repeated} more than once.")
    # New labelled windows (`valuegate retrain --labels`), after the file's own rows.
    from valuegate.retrain.labels import with_appended

    return with_appended(frame, cfg, root)


def source_sha256(cfg: DataConfig, root: str | Path = ".") -> str:
    """The digest of the rows `load_raw` reads: data.path's sha256 while no labelled window
    is appended (docs/retrain.md), else a digest of it and the appended files."""
    from valuegate.retrain.labels import source_sha256 as digest

    return digest(cfg, root)


def _missing_column(key: str, column: str, df: pd.DataFrame) -> DataError:
    hint = nearest(column, df.columns)
    shown = ", ".join(map(str, df.columns[:30])) + (" ..." if df.shape[1] > 30 else "")
    return DataError(
        f"{key}: column {column!r} is not in the data"
        + (f" (did you mean {hint!r}?)" if hint else "")
        + f". Columns present: {shown}."
    )


@dataclass(frozen=True)
class Schema:
    """What the prepared data holds; stored beside the splits as JSON."""

    task: str
    target: str
    positive_label: Any
    numeric: list[str]
    categorical: list[str]
    amount_column: str | None
    id_column: str | None
    categories: dict[str, list[str]]
    rows: dict[str, int]
    positives: dict[str, int] | None
    source_sha256: str
    # Fingerprints of the config it was prepared from ("data", "seed"): a reader with
    # another config refuses these splits (stages/common.py check_data).
    lineage: dict[str, str] = field(default_factory=dict)
    # data.sample_rows: {"rows", "of", "how", "seed"} when only a sample of the file was
    # kept, {} when every row was (older schema files hold no such key).
    sample: dict[str, Any] = field(default_factory=dict)
    # retrain.window: what the window selected (retrain/window.py), {} without one; left
    # out of schema.json when empty, so runs without a window keep their bytes.
    window: dict[str, Any] = field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if not out["window"]:
            del out["window"]
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Schema:
        return cls(**raw)


def target_vector(df: pd.DataFrame, cfg: DataConfig) -> np.ndarray:
    """0/1 for binary (1 = positive label), float for regression; shape (n,)."""
    target = df[cfg.target]
    if cfg.task == "binary":
        return (target.astype(str) == str(cfg.positive_label)).to_numpy(dtype=np.int8)
    return target.to_numpy(dtype=float)


def validate_frame(df: pd.DataFrame, cfg: DataConfig) -> None:
    """Stop on data the config cannot be applied to; every message names the column."""
    if df.shape[0] == 0:
        raise DataError(f"data.path: {cfg.path!r} holds no rows.")
    named = {
        "data.target": cfg.target,
        "data.id_column": cfg.id_column,
        "data.time_column": cfg.time_column,
        "data.amount_column": cfg.amount_column,
    }
    for key, column in named.items():
        if column is not None and column not in df.columns:
            raise _missing_column(key, column, df)
    for key in ("numeric", "categorical", "drop"):
        for column in getattr(cfg.features, key) or []:
            if column not in df.columns:
                raise _missing_column(f"data.features.{key}", column, df)

    target = df[cfg.target]
    missing_target = np.flatnonzero(target.isna().to_numpy())
    if len(missing_target):
        raise DataError(
            f"data.target: column {cfg.target!r} is empty in {len(missing_target)} rows "
            f"(first rows: {missing_target[:5].tolist()}); drop or fill them first."
        )
    if cfg.task == "binary":
        labels = sorted(map(str, target.unique()))
        if isinstance(cfg.positive_label, bool) and str(cfg.positive_label) not in labels:
            spelled = [v for v in labels if v.lower() in YAML_BOOLEAN_WORDS[cfg.positive_label]]
            raise DataError(
                f"data.positive_label: {cfg.positive_label!r} is a YAML boolean (unquoted "
                f"yes/no/on/off/true/false are booleans), and column {cfg.target!r} holds "
                f"text: {', '.join(labels[:20])}. Quote the label: positive_label: "
                f'"{spelled[0] if spelled else labels[0]}" (on the command line: '
                f"'data.positive_label=\"{spelled[0] if spelled else labels[0]}\"')."
            )
        if str(cfg.positive_label) not in labels:
            hint = nearest(str(cfg.positive_label), labels)
            raise DataError(
                f"data.positive_label: {cfg.positive_label!r} does not occur in column "
                f"{cfg.target!r}"
                + (f" (did you mean {hint!r}?)" if hint else "")
                + f". Values present: {', '.join(labels[:20])}."
            )
        if len(labels) != 2:
            raise DataError(
                f"data.target: a binary task needs exactly 2 values in column {cfg.target!r}, "
                f"found {len(labels)}: {', '.join(labels[:20])}."
            )
        counts = target.astype(str).value_counts()
        if counts.min() < MIN_ROWS_PER_CLASS * len(SPLITS):
            raise DataError(
                f"data.target: column {cfg.target!r} has only {int(counts.min())} rows of "
                f"{counts.idxmin()!r}; each split needs at least {MIN_ROWS_PER_CLASS} of each "
                "class."
            )
    else:
        if not ptypes.is_numeric_dtype(target):
            raise DataError(
                f"data.target: a regression target must be numeric; column {cfg.target!r} "
                f"has dtype {target.dtype}."
            )
        if target.nunique() < 2:
            raise DataError(f"data.target: column {cfg.target!r} is constant.")
    if cfg.amount_column is not None:
        amount = df[cfg.amount_column]
        if not ptypes.is_numeric_dtype(amount):
            raise DataError(
                f"data.amount_column: column {cfg.amount_column!r} must be numeric, "
                f"has dtype {amount.dtype}."
            )
        bad = np.flatnonzero(amount.isna().to_numpy())
        if len(bad):
            raise DataError(
                f"data.amount_column: column {cfg.amount_column!r} is empty in {len(bad)} "
                f"rows (first rows: {bad[:5].tolist()}); every case needs an amount to be "
                "valued."
            )
    unused = {cfg.id_column, *cfg.features.drop}
    numeric_columns = [
        c
        for c in df.columns
        if c not in unused and ptypes.is_numeric_dtype(df[c]) and not ptypes.is_bool_dtype(df[c])
    ]
    for column in numeric_columns:
        values = df[column].to_numpy(dtype=float, na_value=np.nan)
        infinite = np.isinf(values)
        if infinite.any():
            key = {cfg.amount_column: "data.amount_column", cfg.target: "data.target"}.get(
                column, "data.features"
            )
            raise DataError(
                f"{key}: column {column!r} is infinite (inf or -inf) in {_first_rows(infinite)}; "
                "replace them with a finite value or leave them empty (missing)."
            )
    if cfg.time_column is not None:
        time_order(df[cfg.time_column], cfg.time_column)
    for key in ("numeric",):
        for column in getattr(cfg.features, key) or []:
            if not ptypes.is_numeric_dtype(df[column]):
                raise DataError(
                    f"data.features.numeric: column {column!r} has dtype {df[column].dtype}, "
                    "not a number; list it under data.features.categorical instead."
                )


def time_order(values: pd.Series, column: str) -> np.ndarray:
    """Sort keys for `data.time_column`: numbers and datetimes as they are, text parsed as
    dates. Refuses empty or unreadable values, naming the column and rows."""
    missing = values.isna().to_numpy()
    if missing.any():
        raise DataError(
            f"data.time_column: column {column!r} is empty in {_first_rows(missing)}; a time "
            "split must place every row in time: fill or drop those rows."
        )
    if ptypes.is_numeric_dtype(values) or ptypes.is_datetime64_any_dtype(values):
        return values.to_numpy()
    # utc: local times across a daylight-saving change carry two offsets
    parsed = pd.to_datetime(values.astype(str), errors="coerce", format="mixed", utc=True)
    bad = parsed.isna().to_numpy()
    if bad.any():
        first = values[bad].astype(str).head(3).tolist()
        raise DataError(
            f"data.time_column: column {column!r} holds values that are not dates or numbers "
            f"in {_first_rows(bad)}, e.g. {first}."
        )
    return parsed.to_numpy()


def infer_features(df: pd.DataFrame, cfg: DataConfig) -> tuple[list[str], list[str]]:
    """(numeric, categorical) feature names: declared lists, or inferred from dtypes."""
    reserved = {cfg.target, cfg.id_column, cfg.time_column, *cfg.features.drop} - {None}
    declared = set(cfg.features.numeric or []) | set(cfg.features.categorical or [])
    clash = sorted(declared & reserved)
    if clash:
        raise DataError(
            f"data.features: {clash} cannot be features: they are the target, the id or "
            "time column, or listed under data.features.drop."
        )
    rest = [c for c in df.columns if c not in reserved]
    numeric = cfg.features.numeric
    categorical = cfg.features.categorical
    if numeric is None:
        numeric = [
            c
            for c in rest
            if c not in (categorical or [])
            and ptypes.is_numeric_dtype(df[c])
            and not ptypes.is_bool_dtype(df[c])
        ]
    if categorical is None:
        categorical = [c for c in rest if c not in numeric]
    if not numeric and not categorical:
        raise DataError("data.features: no feature columns are left to learn from.")
    return list(numeric), list(categorical)


def clean_categoricals(df: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    """Categoricals as strings, missing as NaN (one dtype however the file was read)."""
    out = df.copy()
    for column in categorical:
        out[column] = out[column].map(str, na_action="ignore").astype(object)
    return out


def split_frame(df: pd.DataFrame, cfg: DataConfig, seed: int) -> dict[str, pd.DataFrame]:
    """Split rows into train/valid/test by `cfg.split` (deterministic for a seed)."""
    n = len(df)
    split = cfg.split
    if split.method == "time":
        order = np.argsort(time_order(df[cfg.time_column], cfg.time_column), kind="mergesort")
    elif split.method == "stratified":
        rng = np.random.default_rng(seed)
        y = target_vector(df, cfg)
        order_parts: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
        for label in (0, 1):
            idx = np.flatnonzero(y == label)
            idx = idx[rng.permutation(len(idx))]
            a = round(split.train * len(idx))
            b = a + round(split.valid * len(idx))
            order_parts["train"].append(idx[:a])
            order_parts["valid"].append(idx[a:b])
            order_parts["test"].append(idx[b:])
        return {
            s: df.iloc[np.sort(np.concatenate(order_parts[s]))].reset_index(drop=True)
            for s in SPLITS
        }
    else:
        order = np.random.default_rng(seed).permutation(n)
    a = round(split.train * n)
    b = a + round(split.valid * n)
    parts = {"train": order[:a], "valid": order[a:b], "test": order[b:]}
    out = {}
    for name, idx in parts.items():
        idx = idx if split.method == "time" else np.sort(idx)
        out[name] = df.iloc[idx].reset_index(drop=True)
    return out


def sample_positions(y: np.ndarray, n: int, stratified: bool, seed: int) -> np.ndarray:
    """Sorted positions of `n` rows out of `len(y)`, seeded: for a binary target (y of 0/1)
    stratified, each class keeping its share (rounded, at least 1 row of each); else a
    uniform sample. Sorted, so a table in time order stays in time order."""
    rng = np.random.default_rng(seed)
    total = len(y)
    if n >= total:
        return np.arange(total)
    if not stratified:
        return np.sort(rng.choice(total, size=n, replace=False))
    positive = np.flatnonzero(y == 1)
    negative = np.flatnonzero(y != 1)
    n_positive = min(len(positive), max(1, round(n * len(positive) / total)))
    n_positive = max(n_positive, n - len(negative))
    chosen = np.concatenate(
        [
            rng.choice(positive, size=n_positive, replace=False),
            rng.choice(negative, size=n - n_positive, replace=False),
        ]
    )
    return np.sort(chosen)


def sample_frame(df: pd.DataFrame, cfg: DataConfig, seed: int) -> tuple[pd.DataFrame, dict]:
    """`df` cut to `cfg.sample_rows` rows (seeded; stratified by the target for a binary
    task), before the split; and the record of it for schema.json ({} when every row is
    kept)."""
    if cfg.sample_rows is None or len(df) <= cfg.sample_rows:
        return df, {}
    binary = cfg.task == "binary"
    y = target_vector(df, cfg) if binary else np.zeros(len(df))
    rows = sample_positions(y, cfg.sample_rows, binary, seed)
    if binary:
        fewest = int(min(y[rows].sum(), len(rows) - y[rows].sum()))
        if fewest < MIN_ROWS_PER_CLASS * len(SPLITS):
            raise DataError(
                f"data.sample_rows: a sample of {cfg.sample_rows:,} of the {len(df):,} rows "
                f"holds only {fewest} rows of the rarer class of {cfg.target!r}; each split "
                f"needs at least {MIN_ROWS_PER_CLASS} of each class: sample more rows."
            )
    record = {
        "rows": len(rows),
        "of": len(df),
        "how": "stratified by the target" if binary else "uniform",
        "seed": seed,
    }
    return df.iloc[rows].reset_index(drop=True), record


def prepare(
    df: pd.DataFrame,
    cfg: DataConfig,
    seed: int,
    source_sha256: str,
    window: RetrainWindow | None = None,
):
    """Validate, select columns, split. Returns (splits, schema); the schema records the
    fingerprints of `cfg` and `seed` (its lineage: readers with another config refuse it).
    `window` (retrain.window): with `until` set, the splits are the window's
    (retrain/window.py: rows after `until` dropped, test = the newest period's last rows)
    instead of data.split's, and the window joins the schema and its lineage."""
    validate_frame(df, cfg)
    # After validation (its messages count rows of the whole file), before the split.
    df, sampled = sample_frame(df, cfg, seed)
    numeric, categorical = infer_features(df, cfg)
    keep = [c for c in (cfg.id_column, cfg.time_column, cfg.amount_column) if c]
    columns = list(dict.fromkeys([*keep, *numeric, *categorical, cfg.target]))
    frame = clean_categoricals(df[columns], categorical)
    windowed: dict[str, Any] = {}
    if window is not None and window.until is not None:
        from valuegate.retrain.window import select

        chosen = select(frame, cfg, window, seed)
        splits = {s: frame.iloc[p].reset_index(drop=True) for s, p in chosen.parts.items()}
        windowed = chosen.record
    else:
        splits = split_frame(frame, cfg, seed)
    for name, part in splits.items():
        if len(part) == 0:
            raise DataError(
                f"data.split: the {name} split is empty ({len(df)} rows in all); use more "
                "data or a larger data.split." + name + " fraction."
            )
    if cfg.task == "binary":
        positives = {s: int(target_vector(p, cfg).sum()) for s, p in splits.items()}
        for name, part in splits.items():
            if positives[name] in (0, len(part)):
                raise DataError(
                    f"data.split: the {name} split holds only one class of {cfg.target!r}; "
                    "a time split over a period where one class is absent does this."
                )
    else:
        positives = None
    categories = {c: sorted(splits["train"][c].dropna().unique().tolist()) for c in categorical}
    schema = Schema(
        task=cfg.task,
        target=cfg.target,
        positive_label=cfg.positive_label,
        numeric=numeric,
        categorical=categorical,
        amount_column=cfg.amount_column,
        id_column=cfg.id_column,
        categories=categories,
        rows={s: len(p) for s, p in splits.items()},
        positives=positives,
        source_sha256=source_sha256,
        lineage=data_lineage(cfg, seed, window),
        sample=sampled,
        window=windowed,
    )
    return splits, schema
