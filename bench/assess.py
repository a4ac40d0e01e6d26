"""Benchmark: the whole data assessment against one xgboost fit on the same data.

The issue's target: on 1,000,000 rows x 30 features, the assessment takes at most twice
one xgboost fit (the `train@xgboost` candidate, conf/model/xgboost.yaml, n_jobs=2) on the
same training split, in the same run; its peak memory is at most 3x the in-memory size of
the data (`DataFrame.memory_usage(deep=True)` of the three splits).

Steps, each in its own process so that each peak RSS (VmHWM) is its own:
1. generate the seeded synthetic table of bench/pipeline.py (`generate_synthetic`);
2. prepare it (`valuegate.data.prepare`, stratified 60/20/20) into Parquet splits, as the
   `prepare` stage does;
3. the assessment as the `assess` stage does it: read the splits, `assess()`, render the
   HTML report; times each part and reads VmHWM;
4. one xgboost fit on the training split through valuegate's pipeline (preprocessing +
   XGBClassifier with the candidate's params), timed around `fit` only.

Usage: python bench/assess.py [--rows 1000000] [--features 30] [--keep]
Writes bench/results/assess-<rows>.json. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
RATIO_TARGET = 2.0
MEMORY_TARGET = 3.0


def peak_rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def step_generate(path: Path, rows: int, features: int, seed: int) -> dict:
    sys.path.insert(0, str(REPO / "bench"))
    from pipeline import generate_synthetic

    return generate_synthetic(path, rows, features, seed)


def data_config():
    from valuegate.config.schema import DataConfig

    return DataConfig(
        name="synthetic",
        path="synthetic.parquet",
        task="binary",
        target="target",
        positive_label="bad",
    )


def config(seed: int):
    from valuegate.config import compose_config
    from valuegate.config.loading import validate

    raw = compose_config(REPO / "conf", [f"seed={seed}"])
    raw["data"] = data_config().model_dump()
    return validate(raw)


def step_prepare(raw_path: Path, out: Path, seed: int) -> dict:
    import pandas as pd

    from valuegate.data import prepare

    splits, schema = prepare(pd.read_parquet(raw_path), data_config(), seed, "bench")
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in splits.items():
        frame.to_parquet(out / f"{name}.parquet", index=False)
    (out / "schema.json").write_text(json.dumps(schema.to_dict()))
    return {"rows": schema.rows}


def step_assess(prepared: Path, seed: int) -> dict:
    from valuegate.assess.assessment import assess
    from valuegate.assess.report import render_html
    from valuegate.stages.assess import assess_data
    from valuegate.stages.common import read_schema, read_splits

    cfg = config(seed)
    start = time.perf_counter()
    schema, splits = read_schema(prepared), read_splits(prepared)
    read_seconds = time.perf_counter() - start
    data_mb = sum(f.memory_usage(deep=True).sum() for f in splits.values()) / 2**20
    rss_after_read = peak_rss_mb()
    start = time.perf_counter()
    assessment = assess(assess_data(splits, schema, cfg), cfg.assess, seed)
    assess_seconds = time.perf_counter() - start
    start = time.perf_counter()
    page = render_html(assessment, "bench", "conf/assess/default.yaml")
    report_seconds = time.perf_counter() - start
    return {
        "read_seconds": round(read_seconds, 2),
        "assess_seconds": round(assess_seconds, 2),
        "report_seconds": round(report_seconds, 2),
        "stage_seconds": round(read_seconds + assess_seconds + report_seconds, 2),
        "check_seconds": assessment.seconds,
        "data_mb": round(data_mb, 1),
        "peak_rss_after_read_mb": round(rss_after_read, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "report_kb": round(len(page) / 1024, 1),
        "findings": assessment.counts(),
        "finding_ids": [f.id for f in assessment.findings if f.severity != "info"],
        "sampling": assessment.sampling,
    }


def step_xgboost(prepared: Path, seed: int) -> dict:
    from valuegate.data import target_vector
    from valuegate.models import build_pipeline
    from valuegate.stages.common import read_schema, read_splits

    cfg = config(seed)
    schema = read_schema(prepared)
    train = read_splits(prepared, names=("train",))["train"]
    spec = cfg.model["xgboost"]
    pipeline = build_pipeline(
        "model.xgboost", spec, "binary", schema.numeric, schema.categorical, seed
    )
    start = time.perf_counter()
    pipeline.fit(train[schema.features], target_vector(train, cfg.data))
    return {
        "fit_seconds": round(time.perf_counter() - start, 2),
        "params": spec.params,
        "train_rows": len(train),
    }


STEPS = {
    "generate": step_generate,
    "prepare": step_prepare,
    "assess": step_assess,
    "xgboost": step_xgboost,
}


def run_step(name: str, *args: str) -> dict:
    """One step in its own process; its JSON result is the last line of its stdout."""
    done = subprocess.run(
        [sys.executable, __file__, "--step", name, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    if done.returncode != 0:
        raise SystemExit(f"step {name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary data")
    parser.add_argument("--step", choices=list(STEPS), help=argparse.SUPPRESS)
    parser.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.step:
        if args.step == "generate":
            out = step_generate(Path(args.paths[0]), args.rows, args.features, args.seed)
        elif args.step == "prepare":
            out = step_prepare(Path(args.paths[0]), Path(args.paths[1]), args.seed)
        else:
            out = STEPS[args.step](Path(args.paths[0]), args.seed)
        print(json.dumps(out, default=str))
        return 0

    work = Path(tempfile.mkdtemp(prefix="valuegate-bench-assess-"))
    raw, prepared = work / "synthetic.parquet", work / "prepared"
    common = ["--rows", str(args.rows), "--features", str(args.features), "--seed", str(args.seed)]
    data = run_step("generate", *common, str(raw))
    run_step("prepare", *common, str(raw), str(prepared))
    assessed = run_step("assess", *common, str(prepared))
    fitted = run_step("xgboost", *common, str(prepared))
    ratio = assessed["stage_seconds"] / fitted["fit_seconds"]
    memory = assessed["peak_rss_mb"] / assessed["data_mb"]
    result = {
        "rows": args.rows,
        "features": args.features,
        "data": data,
        "assess": assessed,
        "xgboost": fitted,
        "time_ratio": round(ratio, 2),
        "time_ratio_assess_only": round(assessed["assess_seconds"] / fitted["fit_seconds"], 2),
        "memory_ratio": round(memory, 2),
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"assess-{args.rows}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{args.rows:,} rows x {args.features} features; data in memory "
        f"{assessed['data_mb']:.0f} MB\n"
        f"assessment (stage: read {assessed['read_seconds']:.1f} s + assess "
        f"{assessed['assess_seconds']:.1f} s + report {assessed['report_seconds']:.1f} s) = "
        f"{assessed['stage_seconds']:.1f} s; one xgboost fit "
        f"({fitted['train_rows']:,} training rows) {fitted['fit_seconds']:.1f} s; ratio "
        f"{ratio:.2f} (target <= {RATIO_TARGET:g})\n"
        f"per check: {assessed['check_seconds']}\n"
        f"peak RSS {assessed['peak_rss_mb']:.0f} MB = {memory:.2f}x the data "
        f"(target <= {MEMORY_TARGET:g}x); after reading the data: "
        f"{assessed['peak_rss_after_read_mb']:.0f} MB\n"
        f"findings: {assessed['findings']} {assessed['finding_ids']}"
    )
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"kept {work}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
