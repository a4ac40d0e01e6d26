"""Category lookups shared by the encoder and the input checks: how a value (text, a number,
a bool) finds the training category it stands for, and natural sorting of category lists."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

_CHUNKS = re.compile(r"(\d+)")


def natural_key(value: Any) -> tuple:
    """Sort key: numbers by value first (2 < 10, "-1" < "2"), then text with its digit
    runs compared as numbers ("level 2" < "level 10")."""
    text = str(value)
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if math.isfinite(number):
        return (0, number, text)
    parts = _CHUNKS.split(text.lower())
    return (1, tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts), text)


def natural_sorted(values: Any) -> list[str]:
    return sorted((str(v) for v in values), key=natural_key)


def category_lookup(categories: list[str]) -> dict[Any, str]:
    """value -> the training category it is: each category by its text, and categories
    that are numbers also by their value (33, 33.0 and "33.0" all find "33": a column of
    integer codes arrives as text from a CSV, as numbers from JSON or Parquet, and as
    "33.0" when pandas read the training file's codes as floats because of gaps)."""
    lookup: dict[Any, str] = {}
    for category in categories:
        try:
            number = float(category)
        except ValueError:
            number = math.nan
        if math.isfinite(number):
            lookup.setdefault(number, category)
    lookup.update({c: c for c in categories})  # text matches first
    return lookup


def resolve_category(value: Any, lookup: dict[Any, str]) -> str | None:
    """The training category `value` stands for, or None (unseen). Bools never match a
    number (True is not the code 1); text that reads as a number matches by value."""
    if isinstance(value, bool | np.bool_):
        return lookup.get(str(value))
    found = lookup.get(value)
    if found is not None or not isinstance(value, str):
        return found
    try:
        number = float(value)
    except ValueError:
        return None
    return lookup.get(number) if math.isfinite(number) else None


def unseen_label(value: Any) -> str:
    """What an unseen value is passed to the pipeline as: its text (integral numbers
    without '.0'), which the fitted encoders map to "unknown" as they were fitted to."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def pa_values(values: list[str]) -> Any:
    import pyarrow as pa

    return pa.array(values, type=pa.string())


def category_codes(values: pd.Series, categories: Any) -> np.ndarray:
    """Index of each value in `categories` (a pyarrow string array), -1 when unknown or
    missing. pyarrow's hash lookup, without turning Arrow strings into Python objects."""
    import pyarrow as pa
    import pyarrow.compute as pc

    array = pa.array(values, from_pandas=True)
    if not pa.types.is_string(array.type) and not pa.types.is_large_string(array.type):
        array = pc.cast(array, pa.string()) if len(array) else pa.array([], pa.string())
    return pc.index_in(array, value_set=categories).fill_null(-1).to_numpy(zero_copy_only=False)
