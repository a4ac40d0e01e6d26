"""The machine budget, from one place: threads for every library, and a memory guard.

`resources.threads` (default: the cores this process may run on) is applied to OpenMP and
BLAS through threadpoolctl and to the estimators' own `n_jobs` (`estimator_threads`), so a
stage never starts more threads than it has cores: on a busy machine a second thread per
core made training 11-18x slower (issue 14). `resources.max_memory_gb` is checked before a
fit: the process's peak is estimated as what it holds now plus the fit's encoded matrix
(rows x each categorical column's encoded width, at measured bytes per cell), and a fit
that would not fit stops with one line naming what is large (a wide column, or the rows)
and the fixes that would help, instead of swapping for an hour.
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

# What a single-process fit allocates beyond what the process already holds, per cell of
# the encoded matrix (training rows x encoded columns), by encoding. Measured, not derived:
# peak RSS (/proc/self/status VmHWM) after one xgboost fit (3 rounds: the peak comes
# before the rounds) minus RSS before it, rows of bench/dask_scale.py's table made as a
# stage holds them (24 float64 numeric columns, 6 text columns of 8 levels), load ~20:
#   python bench/dask_scale.py --rows 5000000 --table /tmp/t --only memory
# native (30 columns), with early stopping: 27.0 bytes/cell at 250k rows, 26.8 at 500k,
# 28.4 at 1M (28.5 without early stopping); onehot (72 columns), 500k rows: 20.0. The
# guard under-counted a 5M-row native fit when it took 20 per cell and nothing for what the
# process held (3.66 GiB estimated, 4.11 GiB peak). What the cells hold: the features'
# copy (`frame[features]`), the transformer's float64 blocks and their stacked copy, early
# stopping's fit/validation rows of it, xgboost's quantile matrix and gradients.
# target: not measured (taken as one-hot's).
CELL_BYTES = {"onehot": 22, "native": 30, "target": 22}
# Bytes per stored value of a sparse matrix (float64 value + int32 index), built twice.
SPARSE_VALUE_BYTES = 24
# A fixed part for small fits: none showed in the measurements above (the per-cell rate
# held down to 100k rows, 29 bytes/cell), so this is a margin for thread buffers and code
# loaded on a first fit.
FIT_FIXED_BYTES = 64 * 1024**2
# The estimate is multiplied by this before it is compared with the budget: the
# measurements vary by a few percent from run to run and with the data's shape.
SAFETY = 1.15
# A column worth naming in the message: its encoded block is at least this share of the
# encoded matrix; a fix worth offering saves at least this share of the estimate.
DOMINANT_SHARE = 0.1


@dataclass
class MemoryEstimate:
    """The estimated peak of a process fitting one model, in bytes: `held` (what the
    process holds before the fit: its RSS, or the feature columns when that is not known)
    plus `fit` (what the fit allocates; `bytes` = held + fit, the safety margin included).
    `widths`: each categorical column's encoded width (columns); `width` the whole
    matrix's; `costs`: bytes of the fit per categorical column's encoded block."""

    bytes: int
    rows: int
    width: int
    sparse: bool
    encoding: str
    widths: dict[str, int] = field(default_factory=dict)
    frame_bytes: int = 0
    held: int = 0
    fit: int = 0
    numeric: int = 0
    costs: dict[str, int] = field(default_factory=dict)


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


def process_rss() -> int | None:
    """This process's resident memory now, in bytes (Linux: /proc/self/status VmRSS);
    None where that file does not exist."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def estimate_fit(
    frame: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    encoding: str,
    min_frequency: int | None,
    max_categories: int | None,
    sparse: bool,
    held: int | None = None,
) -> MemoryEstimate:
    """The peak of a process fitting on the `numeric` and `categorical` columns of `frame`
    (n rows): `held` bytes it already holds (default: those columns, deep) plus the fit's
    own allocations, `FIT_FIXED_BYTES` + the encoded matrix (dense:
    n x width cells of `CELL_BYTES[encoding]`; sparse: one value per row and column), all
    times `SAFETY`."""
    rows = len(frame)
    widths = {
        c: encoded_width(frame[c], encoding, min_frequency, max_categories) for c in categorical
    }
    width = len(numeric) + sum(widths.values())
    cell = CELL_BYTES.get(encoding, CELL_BYTES["onehot"])
    if sparse:
        costs = {c: rows * SPARSE_VALUE_BYTES for c in categorical}
    else:
        costs = {c: rows * w * cell for c, w in widths.items()}
    numeric_cost = rows * len(numeric) * cell
    frame_bytes = sum(
        int(frame[c].memory_usage(index=False, deep=True)) for c in [*numeric, *categorical]
    )
    held = frame_bytes if held is None else held
    fit = FIT_FIXED_BYTES + numeric_cost + sum(costs.values())
    return MemoryEstimate(
        int((held + fit) * SAFETY), rows, width, sparse, encoding, widths, frame_bytes,
        held, fit, numeric_cost, costs,
    )  # fmt: skip


def _round_down(n: int) -> int:
    """n rounded down to two significant digits (1,234,567 -> 1,200,000)."""
    if n < 100:
        return max(1, n)
    scale = 10 ** (len(str(n)) - 2)
    return n // scale * scale


def _without(estimate: MemoryEstimate, saved: int) -> int:
    """The estimate's bytes with `saved` bytes fewer allocated by the fit."""
    return int((estimate.held + estimate.fit - saved) * SAFETY)


def memory_problem(
    key: str,
    estimate: MemoryEstimate,
    max_memory_gb: float,
    dask: bool = False,
    one_column: str = "target",
) -> str | None:
    """One line naming what makes the fit large and the fixes that would help when
    `estimate` is over the budget, else None. `key` is the model's config path
    (`model.xgboost`); `dask`: the estimator can fit on a Dask cluster (xgboost), a fix
    to name; `one_column`: the encoding in one column per categorical that estimator
    takes (native for xgboost, else target).

    A column is named when its encoded block is at least DOMINANT_SHARE of the encoded
    matrix, with a fix only where it would save that share of the whole estimate: a
    one-column encoding for a column one-hot encoded into many, bucketing for one wider
    than 64 columns. When no
    column dominates (few levels each, or one column each already), the rows are what is
    large, and only fewer rows (a sample, a Dask cluster) or a larger budget help."""
    budget = max_memory_gb * GB
    if estimate.bytes <= budget:
        return None
    held = f"; {estimate.held / GB:.1f} GB of it held before the fit" if estimate.held else ""
    shape = f"{estimate.rows:,} training rows x {estimate.width:,} encoded columns"
    matrix = estimate.numeric + sum(estimate.costs.values()) or 1
    dominant = sorted(
        (c for c, cost in estimate.costs.items()
         if estimate.widths.get(c, 1) > 1 and cost >= DOMINANT_SHARE * matrix),
        key=lambda c: -estimate.costs[c],
    )[:3]  # fmt: skip
    fixes = []
    if dominant:
        shape += "; " + ", ".join(
            f"column {c!r} alone is {estimate.widths[c]:,} of them ({estimate.encoding})"
            for c in dominant
        )
        # a fix is offered when it would save a real share of the estimate: one column
        # each instead of `width` (the block shrinks to 1/width), or at most 64 levels
        names = ", ".join(repr(c) for c in dominant)
        saved = sum(estimate.costs[c] * (1 - 1 / estimate.widths[c]) for c in dominant)
        if saved * SAFETY >= DOMINANT_SHARE * estimate.bytes:
            fixes.append(
                f"encode {names} in one column ({key}.categorical.encoding: {one_column}; "
                f"about {_without(estimate, int(saved)) / GB:.1f} GB)"
            )
        wide = [c for c in dominant if estimate.widths[c] > 64]
        saved = sum(estimate.costs[c] * (1 - 64 / estimate.widths[c]) for c in wide)
        if wide and saved * SAFETY >= DOMINANT_SHARE * estimate.bytes:
            fixes.append(
                f"bucket rare levels ({key}.categorical.max_categories: 64; about "
                f"{_without(estimate, int(saved)) / GB:.1f} GB)"
            )
    elif estimate.held < estimate.fit:
        shape += (
            f"; no column's {estimate.encoding} encoding dominates (bucketing or "
            "re-encoding levels would not help): the rows do"
        )
    if estimate.held >= estimate.fit:
        shape += (
            "; most of it is what the process holds before fitting (the data read and "
            "the libraries)"
        )
    # rows that would fit: the fit's part grows with the rows, what is held does not
    per_row = (estimate.fit - FIT_FIXED_BYTES) / max(1, estimate.rows)
    room = budget / SAFETY - estimate.held - FIT_FIXED_BYTES
    fitting = _round_down(int(room / per_row)) if room > 0 and per_row > 0 else 0
    if fitting and fitting < estimate.rows:
        fixes.append(f"fit on a sample (data.sample_rows: {fitting:,})")
    else:  # what it holds fills the budget: a sample shrinks the data read, not the rest
        fixes.append(f"fit on a sample (data.sample_rows: {min(50_000, estimate.rows // 2):,})")
    if dask:
        fixes.append(
            "fit on a Dask cluster (resources.dask_scheduler: local:2, or tcp://host:8786)"
        )
    fixes.append(f"or raise resources.max_memory_gb (now {max_memory_gb:g})")
    return (
        f"{key}: fitting would bring this process to about {estimate.bytes / GB:.1f} GB "
        f"({shape}{held}), "
        f"over the budget of resources.max_memory_gb = {max_memory_gb:g}. Fix: "
        + ", ".join(fixes)
        + "."
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
    """Estimate the peak of this process fitting `spec` (a ModelSpec) on `frame` (what it
    holds now, `process_rss`, plus the fit: `estimate_fit`) and raise `BudgetError` (one
    line, naming what is large and the fixes) when it is over `resources.max_memory_gb`.
    `train_rows`: the training split's rows when `frame` is a sample of it (the encoding
    `auto` picks depends on them); default len(frame)."""
    from valuegate.config.schema import CATEGORICAL_ENCODINGS
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
        held=process_rss(),
    )
    allowed = CATEGORICAL_ENCODINGS.get(spec.estimator, ())
    problem = memory_problem(
        key,
        estimate,
        resources.max_memory_gb,
        dask=spec.estimator in DASK_FIT,
        one_column="native" if "native" in allowed else "target",
    )
    if problem:
        raise BudgetError(problem)
    return estimate
