"""The machine budget, from one place: threads for every library, and a memory guard.

`resources.threads` (default: the cores this process may run on) is applied to OpenMP and
BLAS through threadpoolctl and to the estimators' own `n_jobs` (`estimator_threads`), so a
stage never starts more threads than it has cores: on a busy machine a second thread per
core made training 11-18x slower (issue 14). `resources.max_memory_gb` is checked before a
fit: the encoded training matrix is estimated from the rows and each categorical column's
encoded width, and a fit that would not fit stops with one line naming the widest column
and the fixes, instead of swapping for an hour.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from valuegate.errors import BudgetError

log = logging.getLogger(__name__)

GB = 1024**3
# Bytes per cell of a dense encoded matrix while fitting: the float64 blocks the column
# transformer builds and their stacked copy (2 x 8), plus the estimator's float32 copy.
DENSE_CELL_BYTES = 20
# Bytes per stored value of a sparse matrix (float64 value + int32 index), built twice.
SPARSE_VALUE_BYTES = 24
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

_applied: dict[str, Any] = {"threads": None, "limits": None}


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and `taskset`
    restrict), not the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no sched_getaffinity (macOS)
        return max(1, os.cpu_count() or 1)


def resolve_threads(requested: int | None, workers: int = 1) -> int:
    """Threads for one of `workers` processes sharing the cores: `requested` (default:
    every available core), never more than the available cores, at least 1."""
    cores = available_cores()
    total = cores if requested is None else min(requested, cores)
    return max(1, total // max(1, workers))


def apply_threads(resources: Any | None, workers: int = 1) -> int:
    """Limit OpenMP and BLAS in this process (threadpoolctl) and in the processes it
    starts (environment) to `resources.threads` shared by `workers`; the estimators built
    afterwards take the same count (`estimator_threads`). Returns the count."""
    from threadpoolctl import threadpool_limits

    requested = getattr(resources, "threads", None)
    threads = resolve_threads(requested, workers)
    if requested is not None and requested > available_cores():
        log.warning(
            "resources.threads is %d but this process may use %d cores: using %d",
            requested,
            available_cores(),
            threads,
        )
    if _applied["threads"] != threads:
        # kept referenced: the limits hold for the life of the process
        _applied["limits"] = threadpool_limits(limits=threads)
        _applied["threads"] = threads
        for name in THREAD_ENV:
            os.environ[name] = str(threads)
    return threads


def estimator_threads() -> int:
    """The thread count estimators get (`n_jobs`): the applied one, else every core."""
    return _applied["threads"] or resolve_threads(None)


def thread_params(accepted: list[str], params: dict[str, Any]) -> dict[str, Any]:
    """`{"n_jobs": n}` for an estimator that accepts it: the configured count, or the
    spec's own `n_jobs` when that is smaller (-1 and larger values are capped)."""
    if "n_jobs" not in accepted:
        return {}
    threads = estimator_threads()
    own = params.get("n_jobs")
    if isinstance(own, int) and not isinstance(own, bool) and 0 < own < threads:
        return {"n_jobs": own}
    return {"n_jobs": threads}


# ------------------------------------------------------------------------ memory


@dataclass
class MemoryEstimate:
    """The estimated peak of fitting one model: `bytes` in all; `widths` is each
    categorical column's encoded width (columns), `width` the whole matrix's."""

    bytes: int
    rows: int
    width: int
    sparse: bool
    encoding: str
    widths: dict[str, int] = field(default_factory=dict)
    frame_bytes: int = 0


def encoded_width(
    values: pd.Series, encoding: str, min_frequency: int | None, max_categories: int | None
) -> int:
    """Columns one categorical column becomes: 1 for target or native encoding; for
    one-hot its levels (missing counts as one) that are seen in at least `min_frequency`
    rows, plus one shared "infrequent" column, at most `max_categories`."""
    if encoding in ("target", "native", "none"):
        return 1
    counts = values.value_counts(dropna=False)
    kept = int((counts >= (min_frequency or 1)).sum())
    width = kept + (1 if kept < len(counts) else 0)
    return max(1, min(width, max_categories) if max_categories else width)


def estimate_fit(
    frame: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    encoding: str,
    min_frequency: int | None,
    max_categories: int | None,
    sparse: bool,
) -> MemoryEstimate:
    """The memory a fit on the `numeric` and `categorical` columns of `frame` (n rows)
    needs: those columns plus the encoded matrix (dense: n x width cells; sparse: one
    value per row and column) and the estimator's copy of it."""
    rows = len(frame)
    widths = {
        c: encoded_width(frame[c], encoding, min_frequency, max_categories) for c in categorical
    }
    width = len(numeric) + sum(widths.values())
    if sparse:
        matrix = rows * (len(numeric) + len(categorical)) * SPARSE_VALUE_BYTES
        matrix += rows * len(numeric) * DENSE_CELL_BYTES
    else:
        matrix = rows * width * DENSE_CELL_BYTES
    # column by column: selecting them all first would copy the frame
    frame_bytes = sum(
        int(frame[c].memory_usage(index=False, deep=True)) for c in [*numeric, *categorical]
    )
    return MemoryEstimate(
        int(matrix + frame_bytes), rows, width, sparse, encoding, widths, frame_bytes
    )


def memory_problem(
    key: str, estimate: MemoryEstimate, max_memory_gb: float, dask: bool = False
) -> str | None:
    """One line naming the widest column and the fixes when `estimate` is over the
    budget, else None. `key` is the model's config path (`model.xgboost`); `dask`: the
    estimator can fit on a Dask cluster (xgboost), a fix to name."""
    if estimate.bytes <= max_memory_gb * GB:
        return None
    need = f"about {estimate.bytes / GB:.1f} GB"
    shape = f"{estimate.rows:,} training rows x {estimate.width:,} encoded columns"
    fixes = []
    if estimate.widths:
        column, width = max(estimate.widths.items(), key=lambda item: item[1])
        shape += f"; column {column!r} alone is {width:,} of them ({estimate.encoding})"
        if width > 1:
            fixes.append(
                f"bucket its rare levels ({key}.categorical.max_categories: 64) or encode it "
                f"in one column ({key}.categorical.encoding: target)"
            )
    fixes.append(f"fit on a sample (data.sample_rows: {min(50_000, estimate.rows // 2):,})")
    if dask:
        fixes.append(
            "fit on a Dask cluster (resources.dask_scheduler: local:2, or tcp://host:8786)"
        )
    fixes.append(f"or raise resources.max_memory_gb (now {max_memory_gb:g})")
    return (
        f"{key}: fitting would need {need} ({shape}), over the budget of "
        f"resources.max_memory_gb = {max_memory_gb:g}. Fix: " + ", ".join(fixes) + "."
    )


def guard_fit(
    key: str,
    spec: Any,
    frame: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    resources: Any,
    train_rows: int | None = None,
) -> MemoryEstimate:
    """Estimate fitting `spec` (a ModelSpec) on `frame` and raise `BudgetError` (one line,
    naming the column and the fixes) when it is over `resources.max_memory_gb`.
    `train_rows`: the training split's rows when `frame` is a sample of it (the encoding
    `auto` picks depends on them); default len(frame)."""
    from valuegate.models import (
        DASK_FIT,
        SPARSE_ONEHOT,
        categorical_encoding,
        categorical_limits,
    )

    encoding = categorical_encoding(spec, len(frame) if train_rows is None else train_rows)
    min_frequency, max_categories = categorical_limits(spec)
    estimate = estimate_fit(
        frame,
        numeric,
        categorical,
        encoding,
        min_frequency,
        max_categories,
        sparse=spec.estimator in SPARSE_ONEHOT and encoding == "onehot",
    )
    problem = memory_problem(
        key, estimate, resources.max_memory_gb, dask=spec.estimator in DASK_FIT
    )
    if problem:
        raise BudgetError(problem)
    return estimate
