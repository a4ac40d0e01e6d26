"""Beyond one machine (issue 14 item 5): a 5M x 30 Parquet table, batch scoring flat in
memory, and an xgboost fit on a 2-worker local Dask cluster against the memory a
single-process fit of the same rows needs. (Named dask_scale.py, not distributed.py: run
as a script, bench/ comes first on sys.path, and a bench/distributed.py would shadow
Dask's own `distributed` package.)

The table is generated here, seeded, part by part (never whole in memory): 24 numeric
columns and 6 categorical ones (8 levels each), a binary target from a logistic model
with an interaction, written as Parquet part files of 250,000 rows (`parts/`) and, for
the single-process scorer (which reads one file), as one file of the same row groups.

Each measurement runs in its own process (peak RSS is per process), in this order:
1. the single-process path on all rows: the rows read into one process and the memory
   guard every single-process fit passes first (`resources.guard_fit`, 4 GB budget):
   its estimate and the one-line error it stops with (naming the fixes), and how soon;
2. the same xgboost model (100 trees, depth 6, no early stopping; the encoding the
   pipeline picks for that many rows) fitted in one process on 1M rows, and on the Dask
   cluster (`resources.dask_scheduler: local:2`, the run's 4 GB shared by the two
   workers) on all rows: wall time, peak RSS of the process and of each worker, and the
   ratios of time and of rows per second to the one-process 1M fit; then the one-process
   fit of all rows with 2 trees, for its peak RSS (a memory probe: the peak comes before
   the first round);
3. `valuegate predict` (single process, chunks of 100,000 rows) with a bundle fitted on
   20,000 rows, on the first 1M rows and on all rows: wall time, peak RSS;
4. (last, the least needed figure) the Dask fit on 1M rows;
5. (`--only memory`, not part of the default run) what one single-process fit allocates
   per encoded cell, the measurements behind `resources.CELL_BYTES`: 250k, 500k and 1M
   rows of the table's shape, made as a stage holds them (float64 numbers, text
   categoricals as Python strings; generated in the process, not read), one
   xgboost fit of 3 rounds (native with and without early stopping, one-hot with it),
   peak RSS (VmHWM) minus RSS before the fit, against the guard's estimate of the fit.

    python bench/dask_scale.py                   # 5,000,000 rows
    python bench/dask_scale.py --rows 2000000    # smaller
    python bench/dask_scale.py --only guard fit  # some parts: score | guard | fit | memory
    python bench/dask_scale.py --table /tmp/t    # keep the table there, reuse it next time

Results: bench/results/distributed.json (one entry per size).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, this file's directory comes first on sys.path, and this file's name
# would shadow the `distributed` package (Dask's) for every import of it.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results" / "distributed.json"
PART_ROWS = 250_000
NUMERIC = [f"x{i}" for i in range(24)]
CATEGORICAL = [f"c{i}" for i in range(6)]
LEVELS = [f"level_{j}" for j in range(8)]
PARAMS = {"n_estimators": 100, "max_depth": 6, "learning_rate": 0.1, "tree_method": "hist"}


def part(seed: int, number: int, rows: int) -> pd.DataFrame:
    """Rows of part `number`: its own seeded generator, so any part is made alone."""
    rng = np.random.default_rng([seed, number])
    x = rng.normal(size=(rows, len(NUMERIC))).astype(np.float32)
    frame = pd.DataFrame(x, columns=NUMERIC)
    codes = rng.integers(0, len(LEVELS), size=(rows, len(CATEGORICAL)))
    for i, column in enumerate(CATEGORICAL):
        frame[column] = pd.Categorical.from_codes(codes[:, i], LEVELS).astype(str)
    logit = x[:, 0] - 0.8 * x[:, 1] + 0.6 * x[:, 2] * x[:, 3] + 0.4 * (codes[:, 0] > 4) - 1.0
    frame["label"] = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "bad", "good")
    return frame


def write_table(directory: Path, rows: int, seed: int) -> dict[str, Path]:
    """parts/part-NNN.parquet and one.parquet (the same rows) under `directory`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = directory / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    writer = None
    for number, start in enumerate(range(0, rows, PART_ROWS)):
        table = pa.Table.from_pandas(part(seed, number, min(PART_ROWS, rows - start)))
        pq.write_table(table, parts / f"part-{number:03d}.parquet")
        if writer is None:
            writer = pq.ParquetWriter(directory / "one.parquet", table.schema)
        writer.write_table(table)
    writer.close()
    return {"parts": parts, "one": directory / "one.parquet"}


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args: list[str]) -> dict[str, Any]:
    """Run this script's `--child ...` in a fresh process; its JSON line."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1:] or ["failed"]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def data_config() -> Any:
    from valuegate.config.schema import DataConfig

    return DataConfig(
        name="bench", path="x", target="label", task="binary", positive_label="bad",
        features={"numeric": NUMERIC, "categorical": CATEGORICAL},
    )  # fmt: skip


def spec() -> Any:
    from valuegate.config.schema import ModelSpec

    return ModelSpec(estimator="xgboost", params=PARAMS)


# ------------------------------------------------------------------ child processes


def make_bundle(directory: Path, source: Path) -> None:
    import pyarrow.parquet as pq

    from valuegate.bundle import save_bundle, validate_chunk
    from valuegate.data import target_vector
    from valuegate.models import build_pipeline

    frame = pq.ParquetFile(source).read_row_group(0).to_pandas().head(20_000)
    data = data_config()
    pipeline = build_pipeline("model.xgboost", spec(), "binary", NUMERIC, CATEGORICAL, 0)
    pipeline.fit(frame[NUMERIC + CATEGORICAL], target_vector(frame, data))
    from types import SimpleNamespace

    from valuegate.bundle import input_schema
    from valuegate.config import compose_config
    from valuegate.config.loading import validate

    shape = SimpleNamespace(numeric=NUMERIC, categorical=CATEGORICAL, amount_column=None,
                            features=NUMERIC + CATEGORICAL,
                            categories={c: LEVELS for c in CATEGORICAL})  # fmt: skip
    fields = input_schema(shape, frame)
    objective = validate(compose_config(ROOT / "conf", [])).objective  # any money rule
    manifest = {
        "version": "bench",
        "model": {"name": "xgboost", "task": "binary"},
        "input": {"fields": fields, "amount_column": None},
        "decision": {"kind": "threshold", "value": 0.5},
        "objective": objective.model_dump(),
        "data": {"name": "bench"},
    }
    check = validate_chunk(frame.head(2000), fields)[0]
    save_bundle(directory, pipeline, manifest, check)


def run_score(bundle_dir: str, source: str, rows: int) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from valuegate.bundle import load_bundle
    from valuegate.serving.batch import predict_file

    bundle = load_bundle(bundle_dir)
    if rows < pq.ParquetFile(source).metadata.num_rows:  # the first `rows` rows, one file
        cut = Path(source).with_name(f"first-{rows}.parquet")
        if not cut.exists():
            reader = pq.ParquetFile(source)
            writer = pq.ParquetWriter(cut, reader.schema_arrow)
            for group in range(rows // PART_ROWS):
                writer.write_table(reader.read_row_group(group))
            writer.close()
        source = str(cut)
    started = time.perf_counter()
    summary = predict_file(bundle, source, Path(source).with_suffix(".scored.parquet"))
    return {"rows": summary["rows_scored"], "seconds": time.perf_counter() - started,
            "peak_rss_mb": peak_mb()}  # fmt: skip


def run_guard(source: str, rows: int) -> dict[str, Any]:
    """The single-process fit's memory guard (`resources.guard_fit`, what
    `training.fit_model` calls before any fit) on all `rows` rows read into this process:
    its estimate, the one-line BudgetError it stops with and how soon."""
    import pyarrow.parquet as pq

    from valuegate.config.schema import ResourcesConfig
    from valuegate.errors import BudgetError
    from valuegate.models import categorical_encoding
    from valuegate.resources import GB, guard_fit

    started = time.perf_counter()
    reader = pq.ParquetFile(source)
    frame = pd.concat(
        [reader.read_row_group(g).to_pandas() for g in range(-(-rows // PART_ROWS))],
        ignore_index=True,
    ).head(rows)
    read = time.perf_counter() - started
    started = time.perf_counter()
    budget = ResourcesConfig(max_memory_gb=4)
    try:
        estimate = guard_fit("model.xgboost", spec(), frame, NUMERIC, CATEGORICAL, budget)
        refused, needed = None, estimate.bytes / GB
    except BudgetError as exc:
        refused, needed = str(exc), None
    return {"rows": len(frame), "read_seconds": read,
            "guard_seconds": time.perf_counter() - started, "estimated_gb": needed,
            "encoding": categorical_encoding(spec(), len(frame)),
            "refused_with": refused, "peak_rss_mb": peak_mb()}  # fmt: skip


def run_fit_single(source: str, rows: int, trees: int | None = None) -> dict[str, Any]:
    """One in-process fit of the first `rows` rows; `trees` (a memory probe) fits only
    that many rounds: the peak is set before the first round (the frame, its encoding and
    xgboost's quantile matrix), the rounds add time, not memory."""
    import pyarrow.parquet as pq

    from valuegate.data import target_vector
    from valuegate.models import build_pipeline, categorical_encoding
    from valuegate.resources import apply_threads

    apply_threads(None)
    reader = pq.ParquetFile(source)
    frame = pd.concat(
        [reader.read_row_group(g).to_pandas() for g in range(rows // PART_ROWS)],
        ignore_index=True,
    )
    read_mb = peak_mb()
    started = time.perf_counter()
    # train_rows: the encoding the pipeline's own fit of these rows gets (training.fit_model
    # passes it; `auto` is xgboost's native categoricals above models.NATIVE_ABOVE_ROWS), as
    # fit_on_dask does: the two fits build the same model
    model = spec()
    if trees is not None:
        model = model.model_copy(update={"params": {**PARAMS, "n_estimators": trees}})
    pipeline = build_pipeline("model.xgboost", model, "binary", NUMERIC, CATEGORICAL, 0,
                              train_rows=len(frame))  # fmt: skip
    pipeline.fit(frame[NUMERIC + CATEGORICAL], target_vector(frame, data_config()))
    return {"rows": len(frame), "seconds": time.perf_counter() - started,
            "encoding": categorical_encoding(spec(), len(frame)),
            "peak_rss_after_read_mb": read_mb, "peak_rss_mb": peak_mb(),
            "trees": trees or PARAMS["n_estimators"]}  # fmt: skip


def run_fit_dask(parts: str, rows: int) -> dict[str, Any]:
    import dask.dataframe as dd

    from valuegate.config.schema import ResourcesConfig
    from valuegate.distributed import dask_client
    from valuegate.distributed.train import fit_on_dask

    files = sorted(Path(parts).glob("*.parquet"))[: rows // PART_ROWS]
    resources = ResourcesConfig(dask_scheduler="local:2", max_memory_gb=4)
    with dask_client(resources) as client:
        frame = dd.read_parquet([str(f) for f in files])
        started = time.perf_counter()
        fit = fit_on_dask(client, "model.xgboost", spec(), data_config(), NUMERIC, CATEGORICAL,
                          0, frame, sample_rows=resources.dask_sample_rows)  # fmt: skip
        seconds = time.perf_counter() - started
        workers = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"rows": fit.info["rows"], "seconds": seconds, "peak_rss_mb": peak_mb(),
            "worker_peak_rss_mb": sorted(workers.values()), "info": fit.info}  # fmt: skip


def _status_bytes(key: str) -> int:
    """A line of /proc/self/status (VmRSS: resident now, VmHWM: its peak), in bytes."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def held_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    """`rows` rows of the table's shape, made in the dtypes a stage holds its split in
    (float64 numbers, text categoricals as Python strings: data.clean_categoricals),
    leaving no freed memory behind that the fit could reuse and hide."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, len(NUMERIC))), columns=NUMERIC)
    levels = np.array(LEVELS, dtype=object)
    codes = rng.integers(0, len(LEVELS), size=(rows, len(CATEGORICAL)))
    for i, column in enumerate(CATEGORICAL):
        frame[column] = levels[codes[:, i]]
    logit = frame["x0"].to_numpy() - 0.8 * frame["x1"].to_numpy() + 0.4 * (codes[:, 0] > 4)
    frame["label"] = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "bad", "good")
    return frame


def run_memory(rows: int, encoding: str, early: bool) -> dict[str, Any]:
    """What one in-process fit of `rows` rows adds to the peak RSS (VmHWM after it minus
    VmRSS before it), per encoded cell, and what the guard estimates for it."""
    import gc

    from valuegate.config.schema import ModelSpec
    from valuegate.data import target_vector
    from valuegate.models import build_pipeline, fit_pipeline
    from valuegate.resources import apply_threads, estimate_fit, process_rss

    apply_threads(None)
    frame = held_frame(rows)
    gc.collect()
    params = {**PARAMS, "n_estimators": 3}  # the peak comes before the rounds
    early_stopping = {"rounds": 50, "validation_fraction": 0.15} if early else None
    model = ModelSpec(estimator="xgboost", params=params, categorical={"encoding": encoding},
                      early_stopping=early_stopping)  # fmt: skip
    held = process_rss() or 0
    estimate = estimate_fit(frame, NUMERIC, CATEGORICAL, encoding, 5, 64, False, held=held)
    pipeline = build_pipeline("model.xgboost", model, "binary", NUMERIC, CATEGORICAL, 0,
                              train_rows=rows)  # fmt: skip
    fit_pipeline(pipeline, frame[NUMERIC + CATEGORICAL], target_vector(frame, data_config()))
    added = _status_bytes("VmHWM") - held
    return {"rows": rows, "encoding": encoding, "early_stopping": early,
            "width": estimate.width, "held_mb": held / 2**20, "fit_added_mb": added / 2**20,
            "bytes_per_cell": added / (rows * estimate.width),
            "guard_fit_estimate_mb": estimate.fit / 2**20,
            "guard_estimate_mb": estimate.bytes / 2**20,
            "peak_rss_mb": _status_bytes("VmHWM") / 2**20}  # fmt: skip


CHILDREN = {
    "memory": lambda a: run_memory(int(a[0]), a[1], a[2] == "early"),
    "bundle": lambda a: make_bundle(Path(a[0]), Path(a[1])) or {},
    "score": lambda a: run_score(a[0], a[1], int(a[2])),
    "guard": lambda a: run_guard(a[0], int(a[1])),
    "fit_single": lambda a: run_fit_single(a[0], int(a[1])),
    "fit_memory": lambda a: run_fit_single(a[0], int(a[1]), trees=2),
    "fit_dask": lambda a: run_fit_dask(a[0], int(a[1])),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="+", choices=["score", "guard", "fit", "memory"])
    parser.add_argument(
        "--table", type=Path, help="generate the table here, or reuse the one already there"
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child[0]](args.child[1:]), default=str))
        return
    small = min(1_000_000, args.rows)
    result: dict[str, Any] = {"rows": args.rows, "columns": len(NUMERIC) + len(CATEGORICAL),
                              "load_before": os.getloadavg()}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="vg-distributed-") as scratch:
        tmp = str(args.table or scratch)
        paths = {"parts": Path(tmp) / "parts", "one": Path(tmp) / "one.parquet"}
        if not table_is(paths["one"], args.rows):
            started = time.perf_counter()
            paths = write_table(Path(tmp), args.rows, args.seed)
            result["generate_seconds"] = time.perf_counter() - started
            print(f"generated {args.rows:,} rows in {result['generate_seconds']:.0f} s", flush=True)
        parts = set(args.only or ["score", "guard", "fit"])
        if "guard" in parts:
            # the single-process path on all rows: the guard stops it before any fit
            result["guard"] = child(["guard", str(paths["one"]), str(args.rows)])
            print(json.dumps(result["guard"], indent=1), flush=True)
            save(args.rows, result)
        if "memory" in parts:  # only when asked: --only memory
            sizes = [n for n in (250_000, 500_000, 1_000_000) if n <= args.rows]
            runs = [(n, "native", w) for n in sizes for w in ("early", "plain")]
            runs += [(min(500_000, args.rows), "onehot", "early")]
            result["memory"] = [
                child(["memory", str(n), encoding, early]) for n, encoding, early in runs
            ]
            print(json.dumps(result["memory"], indent=1), flush=True)
            save(args.rows, result)
        if "fit" in parts:
            fits = result["fit"] = {}
            # last, the single-process fit of all rows, for its memory: 2 trees, not 100
            runs = [
                ("single", "fit_single", "one", small),
                ("dask", "fit_dask", "parts", args.rows),
                ("single memory probe", "fit_memory", "one", args.rows),
            ]
            for name, kind, where, n in runs[: 2 if small == args.rows else 3]:
                fits[f"{name} {n:,}"] = child([kind, str(paths[where]), str(n)])
                ratios(fits, small)
                print(json.dumps(fits, indent=1, default=str), flush=True)
                save(args.rows, result)
        if "score" in parts:
            bundle = str(Path(tmp) / "bundle")
            child(["bundle", bundle, str(paths["one"])])
            result["score"] = {
                f"{n:,}": child(["score", bundle, str(paths["one"]), str(n)])
                for n in sorted({small, args.rows})
            }
            print(json.dumps(result["score"], indent=1), flush=True)
            save(args.rows, result)
        if "fit" in parts and small != args.rows:  # last: the least needed figure
            fits[f"dask {small:,}"] = child(["fit_dask", str(paths["parts"]), str(small)])
            ratios(fits, small)
            print(json.dumps(fits, indent=1, default=str), flush=True)
            save(args.rows, result)


def table_is(one: Path, rows: int) -> bool:
    """True when `one` is a whole table of `rows` rows (a reused --table)."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(one).metadata.num_rows == rows
    except (OSError, ValueError):
        return False


def ratios(fits: dict[str, Any], small: int) -> None:
    """Each fit's time and per-row throughput against the single-process fit of `small`
    rows (the same run, the same machine load)."""
    single = fits.get(f"single {small:,}", {})
    for value in fits.values():
        if single.get("seconds") and "seconds" in value:
            value["ratio_to_single_1M"] = value["seconds"] / single["seconds"]
            value["rows_per_second"] = value["rows"] / value["seconds"]
            value["throughput_ratio_to_single_1M"] = value["rows_per_second"] / (
                single["rows"] / single["seconds"]
            )


def save(rows: int, result: dict[str, Any]) -> None:
    """Write (so far) this size's entry of bench/results/distributed.json."""
    result["load_now"] = os.getloadavg()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    # a part run alone (--only) keeps the entry's other parts from earlier runs
    previous[str(rows)] = {**previous.get(str(rows), {}), **result}
    RESULTS.write_text(json.dumps(previous, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
