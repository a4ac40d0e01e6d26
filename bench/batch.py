"""Benchmark: `valuegate predict` against a raw `predict_proba` over the same rows.

1. trains the German credit xgboost pipeline (the example's candidate, configured params)
   and writes a real bundle of it (valuegate.bundle.save_bundle) into a temporary registry;
2. writes the German credit rows repeated to `--rows` (default 1,000,000) into a Parquet
   file, and to `--big-rows` (default 5,000,000) for the memory comparison;
3. raw: one process reads the 1M-row file into a DataFrame, then times
   `pipeline.predict_proba` on it (model already loaded, data already in memory);
4. valuegate: times `valuegate predict --model champion --input rows.parquet --output
   out.parquet` as a subprocess (start-up, hash checks, streaming reads, validation,
   scoring, decision and expected value, atomic Parquet write all included) on the 1M-row
   and the 5M-row file; peak memory is the subprocess's own peak RSS (VmHWM).

Printed: rows/s of each, the ratio valuegate/raw (target >= 0.8), and peak memory at both
sizes (target: about the same). Results go to bench/results/batch.json.
Usage: python bench/batch.py [--rows 1000000] [--big-rows 5000000] [--chunk-size 100000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_rows(path: Path, n: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tests.deploy_helpers import raw_rows

    rows = pa.Table.from_pandas(raw_rows().drop(columns=["creditability"]), preserve_index=False)
    # 100,000-row row groups, like a real export: 1,000-row groups would make the file's
    # own metadata (read on open) grow with the row count (~150 MiB at 5M rows).
    base = pa.concat_tables([rows] * (100_000 // len(rows)))
    with pq.ParquetWriter(path, base.schema) as writer:
        written = 0
        while written < n:
            take = base.slice(0, min(len(base), n - written))
            writer.write_table(take)
            written += len(take)


# Runs the `valuegate` console script's entry point, then reports the process's own peak
# RSS (VmHWM). The child's ru_maxrss would not do: Linux carries the maximum across fork +
# exec, so it starts at this (large) benchmark process's RSS.
CHILD = """
import pathlib, sys
from valuegate.cli import main
try:
    code = main(sys.argv[2:])
finally:
    status = pathlib.Path("/proc/self/status").read_text()
    peak = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    pathlib.Path(sys.argv[1]).write_text(peak.split()[1])
sys.exit(code)
"""


def run_predict(registry: Path, source: Path, out: Path, chunk: int) -> tuple[float, float]:
    peak_file = out.with_suffix(".peak")
    cmd = [sys.executable, "-c", CHILD, str(peak_file), "predict", "--registry",
           str(registry), "--input", str(source), "--output", str(out), "--chunk-size",
           str(chunk)]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return seconds, int(peak_file.read_text()) / 1024  # kB -> MiB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--big-rows", type=int, default=5_000_000)
    parser.add_argument("--chunk-size", type=int, default=100_000)
    args = parser.parse_args()

    import pandas as pd
    from tests.deploy_helpers import make_bundle

    from valuegate.config import compose_config
    from valuegate.registry import Registry

    work = Path(tempfile.mkdtemp(prefix="vg-batch-bench-"))
    params = compose_config(ROOT / "conf", [])["model"]["xgboost"].get("params") or {}
    pipeline, _, schema = make_bundle(work / "registry" / "v1", params=dict(params))
    Registry(work / "registry").promote("v1")
    small, big = work / "rows.parquet", work / "big.parquet"
    write_rows(small, args.rows)
    write_rows(big, args.big_rows)

    frame = pd.read_parquet(small)[schema.features]
    started = time.perf_counter()
    pipeline.predict_proba(frame)
    raw_seconds = time.perf_counter() - started
    del frame

    vg_seconds, vg_mem = run_predict(work / "registry", small, work / "o1.parquet", args.chunk_size)
    big_seconds, big_mem = run_predict(work / "registry", big, work / "o2.parquet", args.chunk_size)
    results = {
        "rows": args.rows,
        "raw_rows_per_s": args.rows / raw_seconds,
        "valuegate_rows_per_s": args.rows / vg_seconds,
        "ratio": raw_seconds / vg_seconds,
        "peak_mib": {str(args.rows): vg_mem, str(args.big_rows): big_mem},
        "big_rows_per_s": args.big_rows / big_seconds,
        "settings": vars(args),
    }
    print(f"raw predict_proba   {results['raw_rows_per_s']:>12,.0f} rows/s ({args.rows:,} rows)")
    print(f"valuegate predict   {results['valuegate_rows_per_s']:>12,.0f} rows/s "
          f"(ratio {results['ratio']:.2f}, target >= 0.8)")  # fmt: skip
    print(f"peak memory: {vg_mem:,.0f} MiB at {args.rows:,} rows, {big_mem:,.0f} MiB at "
          f"{args.big_rows:,} rows ({results['big_rows_per_s']:,.0f} rows/s)")  # fmt: skip
    out = ROOT / "bench" / "results" / "batch.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
