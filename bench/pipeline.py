"""Benchmark: the DVC pipeline against one plain Python process doing the same work.

For each dataset this script

1. copies the project (the files git tracks plus untracked-not-ignored ones, without
   .venv, data/prepared, models, metrics, plots) into a temporary directory and makes it
   a git repository (DVC needs one);
2. for `synthetic`, generates a seeded binary dataset (Parquet) and `conf/data/synthetic.yaml`
   in the copy, then composes `params.yaml` there with `valuegate compose`;
3. runs the plain baseline: ONE Python process that reads the raw file, splits it, fits
   every baseline and candidate in params.yaml, scores valid and test, runs the gate (and
   tuning when the gate allows it) and the final evaluation, without DVC, without a process
   per stage and without writing models (see `plain`);
4. runs `dvc repro --force evaluate` in the copy (the graph up to the final evaluation;
   `package` and `score`, the deploy stages after it, are not part of the comparison);
5. prints wall-clock seconds, the ratio pipeline/plain and peak memory, and writes them
   to bench/results/pipeline-<dataset>.json.

The point is to measure orchestration overhead (process start-ups, imports per stage,
Parquet round trips, model files, DVC hashing and caching), so both sides run the same
steps: the stages are thin adapters over `valuegate.pipeline.steps` (prepare, assess,
fit_baselines / fit_candidate, gate, tune, evaluate), and the plain side calls those steps
in one process, in memory. Every subprocess runs the copy's `src/` (put first
on PYTHONPATH), so edits made to the repo during a run do not leak into it.

Memory. Each measured Python process gets a tiny `sitecustomize` hook (generated into
the temporary directory, active only when VALUEGATE_BENCH_PROCLOG is set) that appends
its command line, wall time and VmHWM (its own peak resident set, from /proc/self/status)
to a JSON-lines file when it exits. VmHWM is used rather than getrusage's ru_maxrss
because Linux seeds a process's ru_maxrss with the peak RSS of the process it was
(v)forked from, so a stage spawned by DVC would report at least DVC's own peak. The whole
process tree's peak is also taken from `os.wait4` on the top process (its ru_maxrss is
the max RSS of the largest single process in the tree: the child or any descendant it
waited for), which needs no hook. To keep that figure clean, this (parent) process stays
small: it imports no numpy or pandas, and data generation runs in its own subprocess.

Usage: see bench/README.md. A benchmark, not a test: exit 0 unless a subprocess fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"

RATIO_TARGET = 1.3
RATIO_TARGET_ROWS = 1_000_000
MEMORY_TARGET_MB = 4096.0

# Never copied into the project copy (outputs, the venv, this benchmark's results). A
# `.gitignore` below them is still copied: it is configuration, not output.
SKIP_PREFIXES = (
    ".venv/",
    "data/prepared/",
    "data/assessed/",
    "models/",
    "metrics/",
    "plots/",
    "bench/results/",
)

# The dvc.yaml stages whose work `plain` does (see plain()).
MIRRORED_STAGES = ("prepare", "assess", "baseline", "train", "gate", "tune", "evaluate")
# The stage `dvc repro --force` is pointed at: it and everything upstream of it are timed.
TARGET_STAGE = "evaluate"
# Downstream of the target (the deploy stages, the run report, monitoring): not run, not compared.
NOT_TIMED_STAGES = ("package", "report", "score", "monitor")

HOOK_ENV = "VALUEGATE_BENCH_PROCLOG"
HOOK_SOURCE = '''\
"""Written by valuegate's bench/pipeline.py: when VALUEGATE_BENCH_PROCLOG is set, append
this process's command line, wall time and peak RSS (VmHWM) to that file at exit."""
import os as _vgb_os

if _vgb_os.environ.get("VALUEGATE_BENCH_PROCLOG"):
    import atexit as _vgb_atexit
    import time as _vgb_time

    _vgb_start_wall = _vgb_time.time()
    _vgb_start = _vgb_time.perf_counter()

    def _vgb_record():
        import json
        import sys

        seconds = _vgb_time.perf_counter() - _vgb_start
        times = _vgb_os.times()  # this process's CPU (all its threads), not its children's
        hwm_kb = None
        try:
            with open("/proc/self/status") as handle:
                for line in handle:
                    if line.startswith("VmHWM:"):
                        hwm_kb = int(line.split()[1])
                        break
        except OSError:
            pass
        record = {
            "pid": _vgb_os.getpid(),
            "argv": list(getattr(sys, "orig_argv", sys.argv)),
            "start": _vgb_start_wall,
            "seconds": seconds,
            "cpu_seconds": times.user + times.system,
            "peak_rss_kb": hwm_kb,
        }
        with open(_vgb_os.environ["VALUEGATE_BENCH_PROCLOG"], "a") as handle:
            handle.write(json.dumps(record) + "\\n")

    _vgb_atexit.register(_vgb_record)
'''

SYNTHETIC_CONFIG = """\
# Written by bench/pipeline.py into a temporary copy of the project (never the repo).
name: synthetic
path: data/raw/synthetic.parquet
format: auto
task: binary
target: target
positive_label: bad
id_column: null
time_column: null
amount_column: null                # the german_credit objective has no per_amount value
features:
  numeric: null
  categorical: null
  drop: []
split:
  method: stratified
  train: 0.6
  valid: 0.2
  test: 0.2
"""


class BenchError(Exception):
    """A subprocess failed; the message holds its command and output tail."""


@dataclass
class Measured:
    seconds: float
    tree_peak_rss_mb: float  # wait4 ru_maxrss: largest single process in the tree
    stdout: Path
    stderr: Path
    cpu_seconds: float  # user + system CPU of the process tree
    other_cpu_seconds: float  # CPU used meanwhile by processes outside the tree


def _busy_cpu_seconds() -> float:
    """Machine-wide non-idle CPU seconds since boot (from /proc/stat; 0 if unavailable)."""
    try:
        with open("/proc/stat") as handle:
            fields = [int(v) for v in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _tail(path: Path, lines: int = 40) -> str:
    if not path.is_file():
        return ""
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def _mb(kb: float | None) -> float | None:
    return None if kb is None else round(kb / 1024.0, 1)


def bench_env(project: Path, hook_dir: Path, proclog: Path | None = None) -> dict[str, str]:
    """The environment of every subprocess: the venv's bin first on PATH, the copy's src
    first on PYTHONPATH (after the hook), no DVC analytics daemon."""
    env = dict(os.environ)
    env["PATH"] = sysconfig.get_path("scripts") + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = os.pathsep.join([str(hook_dir), str(project / "src")])
    env["DVC_NO_ANALYTICS"] = "1"
    env.pop(HOOK_ENV, None)
    if proclog is not None:
        env[HOOK_ENV] = str(proclog)
    return env


def wait_for_quiet(max_wait: float, quiet_cpus: float) -> float:
    """Wait (up to `max_wait` s) until other processes use < `quiet_cpus` CPUs over 10 s;
    this process is idle meanwhile, so the machine's busy time is theirs. Returns the CPUs
    they used in the last window."""
    deadline = time.monotonic() + max_wait
    while True:
        busy = _busy_cpu_seconds()
        time.sleep(10.0)
        used = (_busy_cpu_seconds() - busy) / 10.0
        if used < quiet_cpus or time.monotonic() >= deadline:
            return used
        print(f"  waiting: other processes use {used:.2f} CPUs ...", flush=True)


def run_checked(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run an unmeasured helper command; raise BenchError with its output tail on error."""
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
        raise BenchError(f"{' '.join(cmd)} failed (exit {done.returncode}) in {cwd}:\n{tail}")
    return done.stdout


def run_measured(cmd: list[str], cwd: Path, env: dict[str, str], logs: Path) -> Measured:
    """Run `cmd` to completion; wall-clock seconds and the tree's peak RSS from wait4."""
    stdout, stderr = logs.with_suffix(".stdout"), logs.with_suffix(".stderr")
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        busy = _busy_cpu_seconds()
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err)
        # Per-child rusage (not RUSAGE_CHILDREN, which accumulates over every child):
        # ru_maxrss is the max RSS of the largest single process among this child and the
        # descendants it waited for (kB on Linux).
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        busy = _busy_cpu_seconds() - busy
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must not wait again
    if proc.returncode != 0:
        raise BenchError(
            f"{' '.join(cmd)} failed (exit {proc.returncode}) in {cwd}.\n"
            f"--- stdout tail ({stdout}) ---\n{_tail(stdout)}\n"
            f"--- stderr tail ({stderr}) ---\n{_tail(stderr)}"
        )
    cpu = usage.ru_utime + usage.ru_stime
    return Measured(seconds, usage.ru_maxrss / 1024.0, stdout, stderr, cpu, max(0.0, busy - cpu))


# ------------------------------------------------------------------ project copy


def copy_project(dest: Path) -> int:
    """Copy tracked + untracked-not-ignored files into `dest`; return how many."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    copied = 0
    for raw in listed.split(b"\0"):
        rel = raw.decode()
        if not rel:
            continue
        if rel.startswith(SKIP_PREFIXES) and Path(rel).name != ".gitignore":
            continue
        source = REPO / rel
        if not source.is_file():  # staged but deleted in the working tree
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        copied += 1
    return copied


def git_snapshot(project: Path) -> None:
    ident = ["-c", "user.name=valuegate-bench", "-c", "user.email=bench@valuegate.invalid"]
    run_checked(["git", "-c", "init.defaultBranch=main", "init", "-q"], project)
    run_checked(["git", "add", "-A"], project)
    run_checked(
        [
            "git",
            *ident,
            "-c",
            "commit.gpgsign=false",
            "commit",
            "-q",
            "--no-verify",
            "-m",
            "bench snapshot",
        ],
        project,
    )


# ------------------------------------------------------------------ synthetic data


def generate_synthetic(path: Path, rows: int, features: int, seed: int) -> dict[str, Any]:
    """Write a seeded binary dataset: ~4/5 numeric and ~1/5 categorical (string) features,
    target `bad`/`good` from a logistic model with linear, non-linear, interaction and
    categorical effects; 25% `bad`. Runs in its own subprocess (see the module doc)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    n_cat = max(1, round(features / 5))
    n_num = features - n_cat
    data: dict[str, Any] = {}

    # Numeric: correlated Gaussians, a few skewed amounts and counts, 1% missing in some.
    mix = rng.normal(size=(n_num, n_num)) * 0.3 + np.eye(n_num)
    base = rng.standard_normal((rows, n_num)) @ mix
    base /= base.std(axis=0)
    numeric = []
    for j in range(n_num):
        name = f"num_{j:02d}"
        column = base[:, j]
        if j % 6 == 4:
            column = np.exp(0.8 * column) * 1000.0  # skewed, amount-like
        elif j % 6 == 5:
            column = rng.poisson(np.exp(0.5 * column)).astype(float)  # count-like
        numeric.append(column)
        if j % 8 == 3:
            column = column.copy()
            column[rng.random(rows) < 0.01] = np.nan
        data[name] = column

    # Categorical: string levels with uneven frequencies.
    effects = []
    for k in range(n_cat):
        levels = 3 + k % 6
        probs = rng.dirichlet(np.full(levels, 2.0))
        codes = rng.choice(levels, size=rows, p=probs)
        names = np.array([f"c{k}_level_{i}" for i in range(levels)], dtype=object)
        data[f"cat_{k:02d}"] = names[codes]
        effects.append(rng.normal(0.0, 0.6, size=levels)[codes])

    # Signal: linear in the first numerics, non-linear and interaction terms, categories.
    z = [np.nan_to_num(c, nan=0.0) for c in numeric]
    scaled = [(c - c.mean()) / (c.std() or 1.0) for c in z]
    weights = rng.normal(0.0, 1.0, size=min(10, n_num))
    signal = sum(w * scaled[j] for j, w in enumerate(weights))
    if n_num >= 14:
        signal = signal + 1.2 * np.sin(2.0 * scaled[10]) + 0.8 * scaled[11] * scaled[12]
        signal = signal + 1.0 * (scaled[13] > 0.8)
    signal = signal + sum(effects)
    signal = 1.6 * (signal - signal.mean()) / signal.std()
    latent = signal + rng.logistic(size=rows)
    bad = latent > np.quantile(latent, 0.75)
    data["target"] = np.where(bad, "bad", "good").astype(object)

    frame = pd.DataFrame(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return {
        "rows": rows,
        "features": features,
        "numeric": n_num,
        "categorical": n_cat,
        "positive_rate": round(float(bad.mean()), 4),
        "file_mb": round(path.stat().st_size / 2**20, 1),
    }


# ------------------------------------------------------------------ plain baseline


def plain(project: Path, out: Path) -> None:
    """The plain baseline, in this process: the pipeline's steps (valuegate.pipeline.steps:
    prepare, assess, baselines and candidates, gate, tune, evaluate: exactly what the
    stages in src/valuegate/stages/*.py call) chained in memory, without DVC, without a
    process per stage, without Parquet round trips and without writing models or records.
    Tuning, when the gate allows it, runs here in-process (tune.n_jobs extra worker
    processes are not started; n_trials is a cap across workers anyway), with a fresh Optuna
    journal beside `out`, outside the project. What the ratio then measures is the cost of
    orchestration alone: the same work, once through `dvc repro` and once through the steps."""
    os.chdir(project)
    mark = [time.perf_counter()]
    import valuegate
    from valuegate.assess.report import render_html
    from valuegate.config import load_params
    from valuegate.data import file_sha256, load_raw
    from valuegate.errors import ValuegateError
    from valuegate.pipeline import steps
    from valuegate.report import summary_table
    from valuegate.stages.common import keep_freed_memory_for_reuse

    # Every stage process runs with this allocator setting (run_stage), and so does the
    # in-process CLI; without it the plain side paid ~4 s of page faults at 1M rows that
    # the stages do not (bench/README.md), which flattered the ratio.
    keep_freed_memory_for_reuse()
    config = load_params()
    part_seconds: dict[str, float] = {}
    # CPU seconds too (all threads of this process): on a shared machine the wall clock
    # measures the other load as much as the work; CPU seconds compare like with like.
    part_cpu: dict[str, float] = {}
    cpu_mark = [time.process_time()]

    def part(name: str) -> None:
        """Seconds since the previous mark, booked to the stage `name` mirrors."""
        now, cpu = time.perf_counter(), time.process_time()
        part_seconds[name] = round(part_seconds.get(name, 0.0) + now - mark[0], 3)
        part_cpu[name] = round(part_cpu.get(name, 0.0) + cpu - cpu_mark[0], 2)
        mark[0], cpu_mark[0] = now, cpu

    part("imports and config")
    raw = load_raw(config.data)
    splits, schema = steps.prepare(raw, config, file_sha256(Path(config.data.path)))
    del raw
    part("prepare")

    # assess: every check, any remedies, and the HTML report the stage renders (not written)
    try:
        assessed = steps.assess(splits, schema, config)
    except ValuegateError as exc:
        raise SystemExit(f"plain: {exc}") from None
    render_html(assessed.assessment, f"Data assessment: {config.data.name}", steps.ACCEPT_FILE)
    splits, schema = assessed.splits, assessed.schema
    part("assess")

    # baseline, train@*: each model fitted and scored; its pipeline is dropped at once (the
    # gate and the evaluation read scores and points only; a stage process holds one model
    # at a time too), so the peak memory compares like with like.
    models: dict[str, Any] = {}

    def keep(fitted: Any) -> None:
        fitted.pipeline = None
        models[fitted.name] = fitted

    for fitted in steps.fit_baselines(config, schema, splits).values():
        keep(fitted)
    part("baseline")
    for name in config.model:
        keep(steps.fit_candidate(config, schema, splits, name))
        part(f"train@{name}")

    gate = steps.gate(config, schema, splits["valid"], steps.scored(models))
    if steps.gate_refusal(config, gate) is not None:
        raise SystemExit("plain: no candidate passed the gate and gate.strict is true")
    part("gate")

    journal = out.with_suffix(".optuna.journal")
    journal.unlink(missing_ok=True)
    tuned = steps.tune(config, schema, splits, gate, journal)
    for fitted, _study in tuned.models:
        keep(fitted)
    part("tune")

    summary, _plots = steps.evaluate(
        config, schema, splits["valid"], splits["test"], steps.scored(models)
    )
    print(summary_table(summary))
    part("evaluate")
    result = {
        "valuegate_module": valuegate.__file__,
        "fit_seconds": {n: round(m.fit_seconds, 3) for n, m in models.items()},
        "part_seconds": part_seconds,
        "part_cpu_seconds": part_cpu,
        "tuned": [study.candidate for _fitted, study in tuned.models],
        "final_model": summary["final"]["model"],
        "final_test_value_per_period": summary["final"]["test"]["value_per_period"],
        "value_per_period": {n: r["value_per_period"] for n, r in summary["models"].items()},
    }
    out.write_text(json.dumps(result, indent=2))


# ------------------------------------------------------------------ one dataset


def process_label(argv: list[str]) -> str:
    """A readable name for a recorded process: `train@xgboost`, `dvc repro --force`, ..."""
    if "-m" in argv:
        i = argv.index("-m")
        module, rest = argv[i + 1], argv[i + 2 :]
        if module.startswith("valuegate.stages."):
            stage = module.rsplit(".", 1)[1]
            return stage + (f"@{rest[0]}" if rest else "")
        return " ".join([module, *rest])
    if len(argv) > 2 and argv[2] == "--plain":
        return "plain baseline"
    script = Path(argv[1]).name if len(argv) > 1 else Path(argv[0]).name
    return " ".join([script, *argv[2:4]])


def read_proclog(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for record in sorted(records, key=lambda r: r["start"]):
        record["label"] = process_label(record["argv"])
        record["peak_rss_mb"] = _mb(record.pop("peak_rss_kb"))
        record["seconds"] = round(record["seconds"], 3)
        record["cpu_seconds"] = round(record.get("cpu_seconds", 0.0), 2)
    return sorted(records, key=lambda r: r["start"])


def pipeline_stages(project: Path) -> tuple[list[str], list[str]]:
    """The stage names in the copy's dvc.yaml, and those `plain` does not do the work of."""
    import yaml  # small; this process stays free of numpy and pandas

    stages = list((yaml.safe_load((project / "dvc.yaml").read_text()) or {}).get("stages", {}))
    stages = [s for s in stages if s not in NOT_TIMED_STAGES]
    return stages, [s for s in stages if s not in MIRRORED_STAGES]


def stage_import_seconds(project: Path, env: dict[str, str]) -> float:
    """Best of 3: a fresh interpreter importing what a model stage imports (the stage
    module, then valuegate.training: scikit-learn and the estimators)."""
    code = "import valuegate.stages.train, valuegate.training"
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        run_checked([sys.executable, "-c", code], project, env)
        best = min(best, time.perf_counter() - started)
    return round(best, 3)


def run_dataset(name: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix=f"valuegate-bench-{name}-", dir=workdir))
    project, hook_dir = root / "project", root / "hook"
    project.mkdir()
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(HOOK_SOURCE)
    print(f"[{name}] project copy: {project}", flush=True)
    copied = copy_project(project)
    git_snapshot(project)
    env = bench_env(project, hook_dir)

    data_info: dict[str, Any]
    if name == "synthetic":
        print(f"[{name}] generating {args.rows:,} rows x {args.features} features ...", flush=True)
        raw = project / "data" / "raw" / "synthetic.parquet"
        out = run_checked(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--generate",
                str(raw),
                "--rows",
                str(args.rows),
                "--features",
                str(args.features),
                "--seed",
                str(args.seed),
            ],
            project,
            env,
        )
        data_info = json.loads(out.strip().splitlines()[-1])
        (project / "conf" / "data" / "synthetic.yaml").write_text(SYNTHETIC_CONFIG)
        overrides = ["data=synthetic"]
    else:
        data_info = {}
        overrides = []
    overrides += list(args.set or [])
    run_checked(["valuegate", "compose", *overrides], project, env)
    stage_names, unmirrored = pipeline_stages(project)
    if unmirrored:
        print(
            f"[{name}] WARNING: dvc.yaml has stages the plain baseline does not mirror: "
            f"{', '.join(unmirrored)}; the ratio overstates the overhead.",
            flush=True,
        )
    # Compile the copy's sources now, so neither timed run pays for it.
    run_checked([sys.executable, "-m", "compileall", "-q", "src"], project, env)

    plain_cmd = [sys.executable, str(Path(__file__).resolve()), "--plain", str(project)]

    def quiet(name: str) -> None:
        if args.max_wait > 0:
            used = wait_for_quiet(args.max_wait, args.quiet_cpus)
            if used >= args.quiet_cpus:
                print(f"[{name}] machine still busy ({used:.2f} CPUs); measuring anyway")

    plain_runs: list[Measured] = []
    pipe_runs: list[Measured] = []
    plain_logs: list[Path] = []
    pipe_logs: list[Path] = []
    for rep in range(1, args.repeat + 1):
        tag = f" (run {rep}/{args.repeat})" if args.repeat > 1 else ""
        plain_logs.append(root / f"plain-{rep}.jsonl")
        pipe_logs.append(root / f"pipeline-{rep}.jsonl")
        quiet(name)
        print(f"[{name}] plain baseline (one process){tag} ...", flush=True)
        plain_runs.append(
            run_measured(
                [*plain_cmd, "--plain-out", str(root / f"plain-{rep}.json")],
                project,
                bench_env(project, hook_dir, plain_logs[-1]),
                root / f"plain-{rep}",
            )
        )
        quiet(name)
        print(f"[{name}] pipeline: dvc repro --force {TARGET_STAGE}{tag} ...", flush=True)
        # The study journal persists across `dvc repro` (persist: true); a rerun would
        # resume a finished study and run no trials, so every run starts without one.
        (project / "tuning" / "optuna.journal").unlink(missing_ok=True)
        pipe_runs.append(
            run_measured(
                ["dvc", "repro", "--force", TARGET_STAGE],
                project,
                bench_env(project, hook_dir, pipe_logs[-1]),
                root / f"pipeline-{rep}",
            )
        )

    # With --repeat, each side's fastest run counts (the least disturbed by other load);
    # peak memory is the max over all runs.
    best_plain = min(range(args.repeat), key=lambda i: plain_runs[i].seconds)
    best_pipe = min(range(args.repeat), key=lambda i: pipe_runs[i].seconds)
    plain_run, pipe_run = plain_runs[best_plain], pipe_runs[best_pipe]
    plain_result = json.loads((root / f"plain-{best_plain + 1}.json").read_text())
    plain_procs = [p for log in plain_logs for p in read_proclog(log)]
    pipe_procs = read_proclog(pipe_logs[best_pipe])
    all_stages = [
        p
        for log in pipe_logs
        for p in read_proclog(log)
        if "valuegate.stages." in " ".join(p["argv"])
    ]
    stages = [p for p in pipe_procs if "valuegate.stages." in " ".join(p["argv"])]
    largest = max(all_stages, key=lambda p: p["peak_rss_mb"] or 0.0, default=None)
    stage_seconds = sum(p["seconds"] for p in stages)

    # Same figures on both sides? (evaluate.json is the pipeline's valuation.)
    evaluated = json.loads((project / "metrics" / "evaluate.json").read_text())["models"]
    diffs = [
        abs(evaluated[n]["value_per_period"] - v)
        for n, v in plain_result["value_per_period"].items()
        if n in evaluated
    ]
    same_models = set(evaluated) == set(plain_result["value_per_period"])
    pipe_final = json.loads((project / "metrics" / "evaluate.json").read_text()).get("final")
    if pipe_final:  # the metrics hold numbers only: the final model's name is in the report
        final_name = json.loads((project / "reports" / "evaluation.json").read_text())["final"]
        same_models = same_models and final_name["model"] == plain_result["final_model"]
        diffs.append(
            abs(pipe_final["test_value_per_period"] - plain_result["final_test_value_per_period"])
        )

    schema = json.loads((project / "data" / "prepared" / "schema.json").read_text())
    rows = sum(schema["rows"].values())
    ratio = pipe_run.seconds / plain_run.seconds
    peak_stage_mb = largest["peak_rss_mb"] if largest else pipe_run.tree_peak_rss_mb
    plain_peak_mb = max(
        (p["peak_rss_mb"] or 0.0 for p in plain_procs),
        default=max(r.tree_peak_rss_mb for r in plain_runs),
    )
    ratio_applies = name == "synthetic" and rows >= RATIO_TARGET_ROWS
    result: dict[str, Any] = {
        "dataset": name,
        "rows": rows,
        "features": len(schema["numeric"]) + len(schema["categorical"]),
        "numeric_features": len(schema["numeric"]),
        "categorical_features": len(schema["categorical"]),
        "data": data_info,
        "models": list(plain_result["value_per_period"]),
        "pipeline_seconds": round(pipe_run.seconds, 3),
        "plain_seconds": round(plain_run.seconds, 3),
        "ratio": round(ratio, 3),
        "pipeline_peak_stage_rss_mb": peak_stage_mb,
        "pipeline_peak_stage": largest["label"] if largest else None,
        "pipeline_tree_peak_rss_mb": round(max(r.tree_peak_rss_mb for r in pipe_runs), 1),
        "plain_peak_rss_mb": plain_peak_mb,
        "plain_tree_peak_rss_mb": round(max(r.tree_peak_rss_mb for r in plain_runs), 1),
        "repeats": args.repeat,
        "pipeline_seconds_all": [round(r.seconds, 3) for r in pipe_runs],
        "plain_seconds_all": [round(r.seconds, 3) for r in plain_runs],
        "pipeline_cpu_seconds": round(pipe_run.cpu_seconds, 2),
        "plain_cpu_seconds": round(plain_run.cpu_seconds, 2),
        # the same ratio in CPU seconds of each process tree: what the wall-clock ratio
        # would be on an idle machine if both sides used the cores alike; far steadier
        # than the wall clock when other processes compete for the CPUs
        "cpu_ratio": round(pipe_run.cpu_seconds / max(plain_run.cpu_seconds, 1e-9), 3),
        # CPU seconds other processes on the machine used during each run: contention.
        "other_cpu_seconds_during_pipeline": round(pipe_run.other_cpu_seconds, 2),
        "other_cpu_seconds_during_plain": round(plain_run.other_cpu_seconds, 2),
        "stage_seconds_total": round(stage_seconds, 3),
        "outside_stage_seconds": round(pipe_run.seconds - stage_seconds, 3),
        "stage_import_seconds": stage_import_seconds(project, env),
        "pipeline_processes": [
            {k: p[k] for k in ("label", "seconds", "cpu_seconds", "peak_rss_mb")}
            for p in pipe_procs
        ],
        "plain_fit_seconds": plain_result["fit_seconds"],
        "plain_part_seconds": plain_result["part_seconds"],
        "plain_part_cpu_seconds": plain_result.get("part_cpu_seconds", {}),
        "stages": stage_names,
        "stages_not_mirrored_by_plain": unmirrored,
        "tuned": plain_result["tuned"],
        "final_model": plain_result["final_model"],
        "valuation_matches": bool(same_models and diffs and max(diffs) <= 1e-6),
        "valuation_max_abs_diff": max(diffs) if diffs else None,
        "valuegate_module": plain_result["valuegate_module"],
        "targets": {
            "ratio_max": RATIO_TARGET,
            "ratio_applies": ratio_applies,
            "ratio_met": ratio <= RATIO_TARGET,
            "peak_stage_rss_mb_max": MEMORY_TARGET_MB,
            "peak_met": peak_stage_mb <= MEMORY_TARGET_MB,
        },
        "files_copied": copied,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if args.keep:
        result["project_copy"] = str(project)
        print(f"[{name}] kept: {root}", flush=True)
    else:
        shutil.rmtree(root, ignore_errors=True)
    return result


def report(r: dict[str, Any]) -> str:
    t = r["targets"]
    ratio_note = (
        ("met" if t["ratio_met"] else "NOT met")
        if t["ratio_applies"]
        else f"n/a (target is for {RATIO_TARGET_ROWS:,} synthetic rows)"
    )

    def runs(side: str) -> str:
        values = r[f"{side}_seconds_all"]
        return (
            ""
            if len(values) < 2
            else "  (fastest of " + ", ".join(f"{v:.2f}" for v in values) + ")"
        )

    other_pipe = r["other_cpu_seconds_during_pipeline"]
    other_plain = r["other_cpu_seconds_during_plain"]
    # Noisy when other processes took more than 5% of one CPU during either run.
    busy = other_pipe > 0.05 * r["pipeline_seconds"] or other_plain > 0.05 * r["plain_seconds"]
    lines = [
        f"== {r['dataset']}: {r['rows']:,} rows x {r['features']} features "
        f"({r['numeric_features']} numeric, {r['categorical_features']} categorical); "
        f"models: {', '.join(r['models'])}",
        f"stages: {', '.join(r['stages'])}; tuned: {', '.join(r['tuned']) or 'none (gate)'}; "
        f"final model: {r['final_model']}",
        f"pipeline (dvc repro --force {TARGET_STAGE}):"
        f" {r['pipeline_seconds']:9.2f} s{runs('pipeline')}",
        f"plain (one process):          {r['plain_seconds']:9.2f} s{runs('plain')}",
        f"ratio pipeline/plain:         {r['ratio']:9.2f}   target <= {RATIO_TARGET}: {ratio_note}",
        f"ratio in CPU seconds:         {r.get('cpu_ratio', float('nan')):9.2f}   "
        f"(pipeline {r['pipeline_cpu_seconds']:.1f} / plain {r['plain_cpu_seconds']:.1f})",
        f"peak RSS, largest stage:      {r['pipeline_peak_stage_rss_mb']:9.1f} MB "
        f"({r['pipeline_peak_stage']}); whole dvc tree {r['pipeline_tree_peak_rss_mb']:.1f} MB",
        f"peak RSS, plain process:      {r['plain_peak_rss_mb']:9.1f} MB",
        f"peak stage <= {MEMORY_TARGET_MB:.0f} MB:         {'met' if t['peak_met'] else 'NOT met'}",
        "pipeline processes (seconds from interpreter start-up to exit, peak RSS), beside the"
        " plain process's seconds for the same work:",
    ]
    parts = r.get("plain_part_seconds", {})
    cpu_parts = r.get("plain_part_cpu_seconds", {})
    for p in r["pipeline_processes"]:
        same, same_cpu = parts.get(p["label"]), cpu_parts.get(p["label"])
        lines.append(
            f"  {p['label']:<34}{p['seconds']:9.2f} s {p['peak_rss_mb'] or 0:9.1f} MB"
            + (f" {p['cpu_seconds']:8.1f} CPU s" if p.get("cpu_seconds") is not None else "")
            + (f"   plain {same:7.2f} s" if same is not None else "")
            + (f" {same_cpu:8.1f} CPU s" if same_cpu is not None else "")
        )
    if "imports and config" in parts:
        lines.append(f"  plain: imports and config {parts['imports and config']:.2f} s")
    lines += [
        f"  time outside stage processes (DVC: start-up, hashing, caching, locks): "
        f"{r['outside_stage_seconds']:.2f} s",
        f"  a fresh interpreter importing a model stage's modules: "
        f"{r['stage_import_seconds']:.2f} s",
        "plain fit seconds: "
        + ", ".join(f"{n} {s:.2f}" for n, s in r["plain_fit_seconds"].items()),
        f"valuation matches the pipeline's evaluate.json: "
        f"{'yes' if r['valuation_matches'] else 'NO'} "
        f"(max |diff| in value_per_period, final on test included: "
        f"{r['valuation_max_abs_diff']})",
        f"CPU seconds used: pipeline {r['pipeline_cpu_seconds']:.1f}, plain "
        f"{r['plain_cpu_seconds']:.1f}; by other processes meanwhile: {other_pipe:.1f} "
        f"during the pipeline, {other_plain:.1f} during plain ({r['machine']['cpus']} CPUs)"
        + ("\n  WARNING: other processes competed for the CPUs; timings are noisy" if busy else ""),
    ]
    if r["stages_not_mirrored_by_plain"]:
        lines.append(
            "WARNING: the plain baseline does not do the work of stages "
            f"{', '.join(r['stages_not_mirrored_by_plain'])}; the ratio overstates the overhead"
        )
    return "\n".join(lines)


def result_path(name: str, args: argparse.Namespace) -> Path:
    default = args.rows == RATIO_TARGET_ROWS and args.features == 30
    suffix = "" if name == "example" or default else f"-{args.rows}x{args.features}"
    return RESULTS_DIR / f"pipeline-{name}{suffix}.json"


# ------------------------------------------------------------------ entry point


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Time `dvc repro --force` against one plain Python process doing the "
        "same loads, fits and predictions; print the ratio and peak memory."
    )
    parser.add_argument(
        "--dataset",
        choices=["example", "synthetic", "both"],
        default="both",
        help="the embedded example, the synthetic dataset, or both (example first)",
    )
    parser.add_argument(
        "--rows",
        type=int,
        default=RATIO_TARGET_ROWS,
        help="synthetic rows (default 1,000,000; e.g. 20000 for a quick smoke run)",
    )
    parser.add_argument("--features", type=int, default=30, help="synthetic features")
    parser.add_argument("--seed", type=int, default=0, help="synthetic data seed")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run each side N times (alternating) and keep each side's fastest run",
    )
    parser.add_argument(
        "--max-wait",
        type=float,
        default=600.0,
        help="before each measured run, wait up to this many seconds for the machine to be "
        "quiet (0: do not wait)",
    )
    parser.add_argument(
        "--quiet-cpus",
        type=float,
        default=0.2,
        help="quiet: other processes used fewer CPUs than this over 10 s (default 0.2)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where the temporary project copies go (default: the system temp dir)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the project copies (and logs) afterwards"
    )
    parser.add_argument(
        "--set",
        action="append",
        metavar="OVERRIDE",
        help="extra Hydra override for both sides, e.g. --set 'model=[xgboost]' (repeatable)",
    )
    # Internal modes, run in subprocesses by this script.
    parser.add_argument("--plain", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--plain-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.plain is not None:
        plain(args.plain.resolve(), args.plain_out.resolve())
        return 0
    if args.generate is not None:
        info = generate_synthetic(args.generate, args.rows, args.features, args.seed)
        print(json.dumps(info))
        return 0
    if args.rows < 1000 or args.features < 2:
        print("--rows must be >= 1000 and --features >= 2", file=sys.stderr)
        return 2

    names = ["example", "synthetic"] if args.dataset == "both" else [args.dataset]
    workdir = (args.workdir or Path(tempfile.gettempdir())).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    for name in names:
        try:
            result = run_dataset(name, args, workdir)
        except BenchError as exc:
            print(f"[{name}] FAILED: {exc}", file=sys.stderr)
            print(f"[{name}] the project copy is left under {workdir} for a look.", file=sys.stderr)
            return 1
        path = result_path(name, args)
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(report(result))
        print(f"(written to {path.relative_to(REPO)})\n", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
