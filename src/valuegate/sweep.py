"""`valuegate train -m`: a grid of Hydra overrides, each run through the whole pipeline in
memory (valuegate.pipeline.run: prepare, assess with its remedies, baselines, candidates,
the gate, tuning where the gate passes, evaluation), the same steps `dvc repro` runs.

Sweep overrides use Hydra's override grammar (`a=1,2 b=x,y` is the 4-run cartesian
product, `range(...)`, `choice(...)`, `glob(...)` too), expanded with Hydra's public plugin
API (hydra.core.override_parser, what sweeper plugins build on) in the order Hydra's basic
sweeper uses; each run is composed with Hydra's Compose API from `conf/` and validated.
We do not hand the sweep to `@hydra.main`: our CLI is argparse (hydra.main owns sys.argv
and exits the process), and Hydra's basic launcher aborts the whole sweep when one run's
overrides do not compose, while a sweep here reports such a run and goes on.

Each run writes to its own directory `multirun/<date>/<time>/<n>/`, as Hydra's multirun
lays them out: `overrides.txt`, `params.yaml` (the composed config) and the records the
stages write, at the same paths (reports/, metrics/, plots/; valuegate.stages.outputs). A
summary table closes the sweep (`summary.csv` beside the runs) with the gate's decision
per run. A run whose overrides do not compose is reported as invalid, a run whose data the
assessment blocks as blocked (not valued), and the sweep goes on.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from valuegate.config import compose_config, write_params
from valuegate.config.loading import deep_validate, validate
from valuegate.errors import ConfigError, ValuegateError
from valuegate.io import atomic_write_text
from valuegate.paths import ASSESS_REPORT, TUNE_JOURNAL

log = logging.getLogger(__name__)

SUMMARY_FILE = "summary.csv"


def expand(overrides: list[str]) -> list[list[str]]:
    """The runs of a sweep: one override list per run, the cartesian product of every
    sweep override's values (a key given twice keeps its first place, its last values),
    in Hydra's basic-sweeper order."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as exc:
        raise ConfigError(f"cannot parse sweep overrides {overrides}: {exc}") from None
    per_key: dict[str, list[str]] = {}
    for override in parsed:
        key = override.get_key_element()
        if not override.is_sweep_override():
            per_key[key] = [f"{key}={override.get_value_element_as_str()}"]
        elif override.is_discrete_sweep():
            per_key[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:
            raise ConfigError(
                f"{override.input_line}: an interval sweep has no finite list of runs; "
                "use a list (a,b,c), range(start,stop,step) or choice(...)"
            )
    return [list(run) for run in itertools.product(*per_key.values())]


def compose(conf_dir: str | Path, overrides: list[str]) -> tuple[dict[str, Any], Any]:
    """(the composed dict, the validated Config) of one run; ConfigError names the
    problem when the overrides do not compose or validate."""
    raw = compose_config(conf_dir, overrides)
    source = f"{conf_dir}/ composed with {overrides}"
    return raw, deep_validate(validate(raw, source=source), source, conf_dir)


def gate_columns(gate: dict[str, Any] | None) -> dict[str, Any]:
    """The gate's decision in a summary row: passed / refused, the candidate it is about
    (the best passing one; when none passed, the one with the highest uplift lower bound)
    and that candidate's uplift lower bound (money per period)."""
    if gate is None:
        return {"gate": "", "gate_candidate": "", "uplift_ci_lower": None}
    candidates = gate["candidates"]
    name = gate["best_passing"] or max(candidates, key=lambda n: candidates[n]["ci_lower"])
    return {
        "gate": "passed" if gate["best_passing"] else "refused",
        "gate_candidate": name,
        "uplift_ci_lower": candidates[name]["ci_lower"],
    }


def run_one(
    conf_dir: str | Path,
    overrides: list[str],
    run_dir: Path,
    cache: dict[str, Any],
    tune: bool = True,
) -> dict[str, Any]:
    """Compose, run the pipeline in memory, write the run's records into `run_dir`;
    returns its summary row (without `run` and `overrides`). `cache` keeps the raw tables
    read so far (keyed by the data config) and the data prepared and assessed so far, so
    a grid over model or objective settings reads, prepares and assesses once."""
    from valuegate.data import load_raw, source_sha256
    from valuegate.pipeline import run, steps
    from valuegate.pipeline.common import as_recorded
    from valuegate.stages.outputs import write_result

    raw, config = compose(conf_dir, overrides)
    write_params(raw, run_dir / "params.yaml")
    data_key = json.dumps(config.data.model_dump(), sort_keys=True, default=str)
    if data_key not in cache:
        cache[data_key] = (load_raw(config.data), source_sha256(config.data))
    frame, digest = cache[data_key]
    cache.setdefault("pipeline", {})
    result = run(
        config,
        frame,
        digest,
        journal=run_dir / TUNE_JOURNAL,
        raise_blocked=False,
        tune=tune,
        cache=cache["pipeline"],
    )
    write_result(result, run_dir, data=False)
    row: dict[str, Any] = {"status": "ok", **gate_columns(result.gate)}
    error = result.error
    if result.stopped == "blocked" and result.assessed is not None:
        # name the run's own report, not the project's
        error = steps.blocked_error(result.assessed.assessment, run_dir / ASSESS_REPORT)
    if result.stopped is not None:
        row["status"] = f"{result.stopped}: {str(error).splitlines()[0] if error else ''}"
    tuned = [m.name for m, _ in result.tuned.models] if result.tuned else []
    row["tuned"] = " ".join(tuned)
    summary = result.evaluation
    if summary is not None:
        best = summary["best_candidate"]
        row.update(
            final_model=summary["final"]["model"],
            final_value_per_period=summary["final"]["valid"]["value_per_period"],
            best_candidate=best,
            value_per_period=summary["models"][best]["value_per_period"],
            uplift=summary["best_uplift"],
            best_baseline=summary["best_baseline"],
        )
    row.update(currency=config.objective.currency, period=config.objective.period)
    return as_recorded(row)  # numbers as the run's JSON records hold them


def multirun(
    conf_dir: str | Path,
    overrides: list[str],
    root: str | Path = "multirun",
    tune: bool = True,
) -> Path:
    """Run every combination; returns the sweep directory (`root/<date>/<time>/`)."""
    runs = expand(overrides)
    now = dt.datetime.now()
    sweep_dir = Path(root) / now.strftime("%Y-%m-%d") / now.strftime("%H-%M-%S")
    rows: list[dict[str, Any]] = []
    cache: dict[str, Any] = {}
    for index, run in enumerate(runs):
        run_dir = sweep_dir / str(index)
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "overrides.txt", "\n".join(run) + "\n")
        log.info("[%d/%d] %s", index, len(runs), " ".join(run))
        head = {"run": index, "overrides": " ".join(run)}
        try:
            row = run_one(conf_dir, run, run_dir, cache, tune=tune)
        except ValuegateError as exc:
            # A run that cannot compose, or whose data or models fail: reported, not fatal.
            log.info("[%d] %s: %s", index, exc.kind, exc)
            rows.append({**head, "status": f"invalid: {exc}"})
            continue
        log.info("[%d] %s", index, row["status"])
        rows.append({**head, **row})
    atomic_write_text(sweep_dir / SUMMARY_FILE, pd.DataFrame(rows).to_csv(index=False))
    return sweep_dir


def _money(value: Any) -> str:
    return f"{float(value):,.0f}"


def format_summary(sweep_dir: Path) -> str:
    """The summary table as lines: per run the gate's decision (passed / refused, on which
    candidate, its uplift lower bound), then the best candidate's value and uplift; blocked
    and invalid runs with their reason."""
    table = pd.read_csv(sweep_dir / SUMMARY_FILE, keep_default_na=False)
    lines = [f"Sweep of {len(table)} runs in {sweep_dir}/ (validation split):"]
    for row in table.itertuples():
        if row.status != "ok" and not str(row.status).startswith("gate refused"):
            lines.append(f"  [{row.run}] {row.overrides}: {row.status.splitlines()[0]}")
            continue
        unit = f"{row.currency}/{row.period}"
        gate = (
            f"gate {row.gate} ({row.gate_candidate}, uplift lower bound "
            f"{_money(row.uplift_ci_lower)} {unit})"
        )
        if row.status != "ok":  # gate.strict: nothing valued after the gate
            lines.append(f"  [{row.run}] {row.overrides}: {gate}; stopped ({row.status})")
            continue
        tuned = f", tuned {row.tuned}" if row.tuned else ""
        lines.append(
            f"  [{row.run}] {row.overrides}: {gate}{tuned}; best {row.best_candidate} "
            f"{_money(row.value_per_period)} {unit}, uplift {_money(row.uplift)} over "
            f"{row.best_baseline}; final {row.final_model}"
        )
    return "\n".join(lines)
