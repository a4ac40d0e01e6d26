"""valuegate's drift monitor side by side with Evidently and NannyML (issue 15).

Same data for every tool, written once to Parquet in a temp dir by this script (seeded):

- speed: one window of 1M rows x 25 features against a 50k-row reference, the generator of
  bench/monitor.py (15 numeric features, 2% missing; 10 categorical with 30 Zipf levels),
  both drawn from the same distribution (no drift). Each tool runs in its own process,
  reads the two Parquet files, then is timed (wall clock, drift only, not the read) and
  reports its peak RSS (`resource` max RSS: data + tool).
- soundness: simulated windows (`--windows` per case) of the eleven unlike features of
  tests/test_monitor_soundness.py (normal, lognormal, uniform, coarse 0/1/2, constant,
  10% missing, two 8-level and one 2-level categorical, a beta "score"), reference and
  window drawn anew per window. No-drift cases at several (reference, window) sizes, a
  reference much smaller than the window among them; shift cases move x0's mean by 0.5 or
  0.2 standard deviations.

What "drift detected" means for each tool (each at its documented defaults):

- valuegate: `monitor.drift.drift_tests` with conf/monitor's defaults (alpha 0.05,
  min_distance 0.05; 10 quantile bins, 50 levels): a feature alerts when its two-sample
  test, Holm-adjusted over the window's features, is <= alpha AND its Jensen-Shannon
  distance >= 0.05. A window alerts when any feature does. Also shown with min_distance 0
  (the test alone), as tests/test_monitor_soundness.py runs it.
- Evidently 0.7: `Report([DataDriftPreset()])`, column types inferred. Per column it picks
  a method by size: reference <= 1000 rows: two-sample Kolmogorov-Smirnov for numeric,
  chi-square (or a proportions z-test for 2 levels) for categorical, drifted when p < 0.05,
  per column, not corrected; above 1000 rows: normed Wasserstein distance (numeric) or
  Jensen-Shannon distance (categorical), drifted when >= 0.1. The preset's dataset drift
  is "share of drifted columns >= 0.5". A window alerts here when any column is drifted
  (the dataset flag is reported too).
- NannyML 0.13: `UnivariateDriftCalculator(column_names=...)` with its defaults
  (Jensen-Shannon for continuous and categorical columns, the default chunker: 10 chunks
  of the data, thresholds from the reference's own chunks), fitted on the reference,
  calculated on the window. A window alerts when any column alerts in any of its chunks.

Peers run in their own venv (Evidently 0.7.x needs pandas 2; valuegate has pandas 3),
built once from bench/requirements-monitor-peers.txt into bench/.peers-monitor-venv
(git-ignored; never a project dependency, never run by the tests). A peer that does not
install or import is recorded with its error and the other goes on.

    .venv/bin/python bench/monitor_peers.py                  # speed + soundness, 100 windows
    .venv/bin/python bench/monitor_peers.py --windows 20 --rows 200000   # a quick check

Writes bench/results/monitor_peers.json (not tracked: it holds timings) and prints tables.
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
RESULTS = ROOT / "bench" / "results" / "monitor_peers.json"
VENV = ROOT / "bench" / ".peers-monitor-venv"
REQUIREMENTS = ROOT / "bench" / "requirements-monitor-peers.txt"
PEERS = ("evidently", "nannyml")
ALPHA, MIN_DISTANCE, BINS, MAX_CATEGORIES = 0.05, 0.05, 10, 50  # conf/monitor defaults

# (name, reference rows, window rows, shift of x0 in standard deviations)
CASES = [
    ("no drift 100 / 4000", 100, 4000, 0.0),
    ("no drift 1000 / 1000", 1000, 1000, 0.0),
    ("no drift 2000 / 5000", 2000, 5000, 0.0),
    ("x0 +0.5 sd 1000 / 1000", 1000, 1000, 0.5),
    ("x0 +0.5 sd 2000 / 5000", 2000, 5000, 0.5),
    ("x0 +0.2 sd 2000 / 5000", 2000, 5000, 0.2),
    ("x0 +0.5 sd 100 / 4000", 100, 4000, 0.5),
]
LEVELS = np.array(list("abcdefgh"))
LEVEL_P = np.array([0.5, 0.2, 0.12, 0.08, 0.05, 0.03, 0.015, 0.005])


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


# ------------------------------------------------------------------------------ the data
def draw(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    """The eleven features of tests/test_monitor_soundness.py `draw`; `shift` moves x0."""
    gappy = rng.exponential(size=n)
    gappy[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "x0": rng.normal(shift, 1.0, n),
            "x1": rng.normal(size=n),
            "x2": rng.lognormal(size=n),
            "x3": rng.uniform(size=n),
            "coarse": rng.integers(0, 3, n).astype(float),
            "constant": np.ones(n),
            "gappy": gappy,
            "c0": LEVELS[rng.choice(8, n, p=LEVEL_P)],
            "c1": LEVELS[rng.choice(8, n, p=LEVEL_P)],
            "c2": LEVELS[rng.choice(2, n, p=[0.9, 0.1])],
            "score": rng.beta(2, 5, n),
        }
    )


def write_cases(directory: Path, windows: int, seed: int) -> list[dict[str, Any]]:
    """Each case's reference and window rows, all windows in one Parquet file per role
    (column `window`); returns the case list with the paths."""
    rng = np.random.default_rng(seed)
    out = []
    for i, (name, n_ref, n_cur, shift) in enumerate(CASES):
        refs = [draw(rng, n_ref).assign(window=w) for w in range(windows)]
        curs = [draw(rng, n_cur, shift).assign(window=w) for w in range(windows)]
        ref_path, cur_path = directory / f"case{i}_ref.parquet", directory / f"case{i}_cur.parquet"
        pd.concat(refs, ignore_index=True).to_parquet(ref_path)
        pd.concat(curs, ignore_index=True).to_parquet(cur_path)
        out.append(
            {"name": name, "reference": n_ref, "window": n_cur, "shift": shift,
             "ref_path": str(ref_path), "cur_path": str(cur_path)}
        )  # fmt: skip
    return out


def write_speed(directory: Path, rows: int, reference: int) -> tuple[str, str]:
    sys.path.insert(0, str(ROOT / "bench"))
    from monitor import make_frame  # the generator of bench/monitor.py

    rng = np.random.default_rng(0)
    ref, cur = make_frame(rng, reference), make_frame(rng, rows)
    ref_path, cur_path = directory / "speed_ref.parquet", directory / "speed_cur.parquet"
    ref.to_parquet(ref_path)
    cur.to_parquet(cur_path)
    return str(ref_path), str(cur_path)


# ----------------------------------------------------------------- each tool on a window
def windows_of(path: str) -> dict[int, pd.DataFrame]:
    frame = pd.read_parquet(path)
    return {int(w): part.drop(columns="window") for w, part in frame.groupby("window")}


def valuegate_window(ref: pd.DataFrame, cur: pd.DataFrame, min_distance: float) -> set[str]:
    """The drifted columns by valuegate's monitor (profile of the reference as `package`
    builds it, then the window's tests)."""
    from valuegate.monitor.drift import drift_tests
    from valuegate.monitor.profile import (
        categorical_profile,
        current_counts,
        numeric_profile,
        reference_counts,
    )

    names, r, c, spacings = [], [], [], []
    for name in ref.columns:
        if pd.api.types.is_numeric_dtype(ref[name]):
            entry = numeric_profile(ref[name].to_numpy(), BINS)
        else:
            entry = categorical_profile(ref[name], MAX_CATEGORIES)
        names.append(name)
        r.append(reference_counts(entry))
        c.append(current_counts(entry, cur[name]))
        spacings.append(bool(entry.get("continuous", False)))
    tests = drift_tests(names, r, c, ALPHA, min_distance, spacings=spacings)
    return {t["name"] for t in tests if t["drifted"]}


def evidently_window(ref: pd.DataFrame, cur: pd.DataFrame) -> tuple[set[str], bool]:
    """Evidently's default data-drift preset: (drifted columns, dataset drift)."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    snapshot = Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)
    drifted, dataset, count = set(), False, None
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        kind = config.get("type", "")
        if kind.endswith("ValueDrift"):
            method, threshold = config.get("method", ""), float(config["threshold"])
            value = float(metric["value"])
            # Evidently's rule: a p-value method drifts below its threshold, a distance
            # at or above it (checked against its own drifted-column count below)
            if (value < threshold) if "p_value" in method else (value >= threshold):
                drifted.add(config["column"])
        elif kind.endswith("DriftedColumnsCount"):
            count = int(metric["value"]["count"])
            dataset = float(metric["value"]["share"]) >= float(config.get("drift_share", 0.5))
    if count is not None and len(drifted) != count:
        raise RuntimeError(f"read {len(drifted)} drifted columns, Evidently counted {count}")
    return drifted, dataset


def nannyml_window(ref: pd.DataFrame, cur: pd.DataFrame) -> tuple[set[str], bool]:
    """NannyML's default univariate drift: (columns alerting in any analysis chunk, -)."""
    import nannyml as nml

    calculator = nml.UnivariateDriftCalculator(column_names=list(ref.columns))
    calculator.fit(ref)
    table = calculator.calculate(cur).filter(period="analysis").to_df()
    drifted = set()
    for column in table.columns:
        if column[-1] == "alert" and bool(table[column].fillna(False).astype(bool).any()):
            drifted.add(column[0])
    return drifted, False


def run_tool(tool: str, ref: pd.DataFrame, cur: pd.DataFrame) -> tuple[set[str], bool]:
    if tool == "valuegate":
        return valuegate_window(ref, cur, MIN_DISTANCE), False
    if tool == "valuegate-test":
        return valuegate_window(ref, cur, 0.0), False
    if tool == "evidently":
        return evidently_window(ref, cur)
    return nannyml_window(ref, cur)


def worker(tool: str, job: dict[str, Any]) -> dict[str, Any]:
    """One tool, in this process: the speed case or the simulated cases of `job`."""
    import importlib.metadata as md
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    out: dict[str, Any] = {"tool": tool}
    if tool in PEERS:
        out["version"] = md.version(tool)
    if "speed" in job:
        ref, cur = pd.read_parquet(job["speed"][0]), pd.read_parquet(job["speed"][1])
        run_tool(tool, ref.iloc[:1000], cur.iloc[:1000])  # warm: imports, first-call setup
        start = time.perf_counter()
        drifted, dataset = run_tool(tool, ref, cur)
        out.update(
            seconds=time.perf_counter() - start,
            peak_mb=peak_mb(),
            rows=len(cur),
            drifted=sorted(drifted),
            dataset_drift=dataset,
        )
        return out
    cases = []
    for case in job["cases"]:
        refs, curs = windows_of(case["ref_path"]), windows_of(case["cur_path"])
        start = time.perf_counter()
        flags = [
            run_tool(tool, refs[w], curs[w]) for w in sorted(refs)[: case.get("windows", len(refs))]
        ]
        columns = len(next(iter(refs.values())).columns)
        undrifted = columns - (1 if case["shift"] else 0)
        cases.append(
            {
                "name": case["name"],
                "windows": len(flags),
                "any_alert": float(np.mean([bool(d) for d, _ in flags])),
                "x0_found": float(np.mean(["x0" in d for d, _ in flags])),
                "undrifted_column_alerts": float(
                    np.mean([len(d - {"x0"} if case["shift"] else d) / undrifted for d, _ in flags])
                ),
                "dataset_drift": float(np.mean([s for _, s in flags])),
                "seconds_per_window": (time.perf_counter() - start) / len(flags),
            }
        )
    out["cases"] = cases
    return out


# -------------------------------------------------------------------------- the driver
def peers_python() -> tuple[Path | None, str | None]:
    """The peers venv's python, built once; (None, error) when it cannot be built."""
    python = VENV / "bin" / "python"
    if not python.exists():
        for command in (
            ["python3.11", "-m", "venv", str(VENV)],
            [str(python), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)],
        ):
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode:
                return None, f"{' '.join(command)}: {done.stderr.strip()[-2000:]}"
    return python, None


def call(python: Path | str, tool: str, job: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run `worker` in a subprocess of `python`; its result, or the exact failure."""
    # NML_DISABLE_USAGE_LOGGING: NannyML sends usage analytics by default; a bench must not
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "NML_DISABLE_USAGE_LOGGING": "1"}
    if tool in PEERS:  # the peer venv must not see valuegate's src on its path
        env.pop("PYTHONPATH", None)
    try:
        done = subprocess.run(
            [str(python), __file__, "--worker", tool, json.dumps(job)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return {"tool": tool, "error": f"timed out after {timeout:.0f} s"}
    if done.returncode:
        return {"tool": tool, "error": done.stderr.strip()[-1500:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="speed window rows")
    parser.add_argument("--reference", type=int, default=50_000, help="speed reference rows")
    parser.add_argument("--windows", type=int, default=100, help="simulated windows per case")
    parser.add_argument("--peer-rows", type=int, default=None, help="speed rows for peers")
    parser.add_argument("--peer-windows", type=int, default=None, help="windows for peers")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per peer job")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-sim", action="store_true")
    parser.add_argument("--seed", type=int, default=20261130)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], json.loads(args.worker[1]))))
        return

    python, venv_error = peers_python()
    tools = ["valuegate", "valuegate-test", *PEERS]
    result: dict[str, Any] = {
        "command": " ".join(["python", *sys.argv]),
        "load": os.getloadavg(),
        "venv_error": venv_error,
        "speed": [],
        "soundness": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_speed:
            ref_path, cur_path = write_speed(Path(tmp), args.rows, args.reference)
            peer_cur = cur_path
            if args.peer_rows and args.peer_rows < args.rows:  # said in the table, not scaled
                peer_cur = str(Path(tmp) / "speed_cur_peer.parquet")
                pd.read_parquet(cur_path).iloc[: args.peer_rows].to_parquet(peer_cur)
            speed_tools = ["valuegate", *PEERS]
            if peer_cur != cur_path:  # ours at the peers' size too: a ratio on the same rows
                speed_tools.insert(1, "valuegate-small")
            for tool in speed_tools:
                if tool in PEERS and python is None:
                    result["speed"].append({"tool": tool, "error": venv_error})
                    continue
                job = {"speed": [ref_path, cur_path if tool == "valuegate" else peer_cur]}
                print(f"speed: {tool} ...", file=sys.stderr, flush=True)
                own = python if tool in PEERS else sys.executable
                result["speed"].append(call(own, tool.removesuffix("-small"), job, args.timeout))
        if not args.skip_sim:
            cases = write_cases(Path(tmp), args.windows, args.seed)
            # the peers' first windows (fewer when they are slow; the table says how many)
            few = [{**c, "windows": args.peer_windows or args.windows} for c in cases]
            for tool in tools:
                if tool in PEERS and python is None:
                    result["soundness"].append({"tool": tool, "error": venv_error})
                    continue
                print(f"soundness: {tool} ...", file=sys.stderr, flush=True)
                own = sys.executable if tool.startswith("valuegate") else python
                job = {"cases": few if tool in PEERS else cases}
                result["soundness"].append(call(own, tool, job, args.timeout))
    result["load_after"] = os.getloadavg()
    report(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


def report(result: dict[str, Any]) -> None:
    if result["speed"]:
        print("| tool | window rows x 25 | drift s | peak RSS MB | columns flagged (no drift) |")
        print("|---|---|---|---|---|")
        for s in result["speed"]:
            # the ratio is against valuegate on the same rows
            base = next(
                (
                    b
                    for b in result["speed"]
                    if b["tool"] == "valuegate" and b.get("rows") == s.get("rows")
                ),
                {},
            )
            if "error" in s:
                print(f"| {s['tool']} | - | failed: {s['error'].splitlines()[-1][:120]} | | |")
                continue
            ratio = s["seconds"] / base["seconds"] if "seconds" in base else float("nan")
            print(
                f"| {s['tool']} {s.get('version', '')} | {s['rows']:,} | {s['seconds']:.2f} "
                f"({ratio:.1f}x) | {s['peak_mb']:.0f} | {len(s['drifted'])} of 25 |"
            )
    if result["soundness"]:
        print("\nshare of windows with any drift alert (columns flagged among undrifted ones)")
        ok = [s for s in result["soundness"] if "error" not in s]
        names = [c["name"] for c in ok[0]["cases"]] if ok else []
        print("| case | " + " | ".join(s["tool"] for s in ok) + " |")
        print("|---|" + "---|" * len(ok))
        for i, name in enumerate(names):
            cells = []
            for s in ok:
                c = s["cases"][i]
                cell = f"{c['any_alert']:.2f} ({c['undrifted_column_alerts']:.3f})"
                if "+" in name:
                    cell += f" x0 {c['x0_found']:.2f}"
                cells.append(cell)
            print(f"| {name} | " + " | ".join(cells) + " |")
        for s in result["soundness"]:
            if "error" in s:
                print(f"{s['tool']} failed: {s['error']}")


if __name__ == "__main__":
    main()
