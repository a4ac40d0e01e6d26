"""`valuegate train -m`: a Hydra multirun grid, in one process, valued like the pipeline.

Sweep overrides use Hydra's grammar and Hydra's own expansion (`a=1,2 b=x,y` is the
4-run cartesian product). Each run is composed from `conf/`, validated, trained
(baselines + candidates) and valued on the validation split exactly as the DVC stages do,
and written to its own directory `multirun/<date>/<time>/<n>/` (`params.yaml`,
`evaluation.json`, `overrides.txt`), as Hydra's multirun does. A summary table closes the
sweep (`summary.csv` beside the runs). A run whose overrides do not compose is reported
as invalid and the sweep goes on.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pandas as pd

from valuegate.business import value_model
from valuegate.config import compose_config, write_params
from valuegate.config.loading import deep_validate, validate
from valuegate.data import file_sha256, load_raw, prepare, target_vector
from valuegate.errors import ValuegateError
from valuegate.evaluation import evaluate_models
from valuegate.io import atomic_write_json, atomic_write_text
from valuegate.training import fit_model


def expand(overrides: list[str]) -> list[list[str]]:
    """Hydra's cartesian expansion of sweep overrides, one override list per run."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as exc:
        raise ValuegateError(f"cannot parse sweep overrides {overrides}: {exc}") from None
    batches = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    return [list(run) for batch in batches for run in batch]


def run_one(conf_dir: str, overrides: list[str], cache: dict[str, Any]) -> dict[str, Any]:
    """Compose, train and value one run; returns the evaluation summary."""
    raw = compose_config(conf_dir, overrides)
    source = f"{conf_dir}/ composed with {overrides}"
    config = deep_validate(validate(raw, source=source), source, conf_dir)
    data_key = json.dumps([config.data.model_dump(), config.seed], sort_keys=True, default=str)
    if data_key not in cache:
        frame = load_raw(config.data)
        cache[data_key] = prepare(frame, config.data, config.seed, file_sha256(config.data.path))
    splits, schema = cache[data_key]
    roles, predictions, points = {}, {}, {}
    for name, (role, spec) in config.all_models().items():
        fitted = fit_model(name, role, spec, config, schema, splits)
        scores = fitted.predictions
        roles[name] = role
        predictions[name] = scores.loc[scores["split"] == "valid", "score"].to_numpy()
        points[name] = fitted.info["operating_point"]  # fixed out of fold (issue 12)
    valid = splits["valid"]
    amount = valid[schema.amount_column].to_numpy(float) if schema.amount_column else None
    summary, _plots = evaluate_models(
        config,
        value_model(config),
        roles,
        target_vector(valid, config.data),
        predictions,
        amount,
        points=points,
    )
    return {"raw": raw, "summary": summary}


def multirun(conf_dir: str, overrides: list[str], root: str | Path = "multirun") -> Path:
    """Run every combination; returns the sweep directory."""
    runs = expand(overrides)
    now = dt.datetime.now()
    sweep_dir = Path(root) / now.strftime("%Y-%m-%d") / now.strftime("%H-%M-%S")
    rows: list[dict[str, Any]] = []
    cache: dict[str, Any] = {}
    for index, run in enumerate(runs):
        run_dir = sweep_dir / str(index)
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "overrides.txt", "\n".join(run) + "\n")
        print(f"[{index}] {' '.join(run)}", flush=True)
        try:
            result = run_one(conf_dir, run, cache)
        except ValuegateError as exc:
            print(f"[{index}] invalid: {exc}", flush=True)
            rows.append({"run": index, "overrides": " ".join(run), "status": f"invalid: {exc}"})
            continue
        summary = result["summary"]
        write_params(result["raw"], run_dir / "params.yaml")
        atomic_write_json(run_dir / "evaluation.json", summary)
        best = summary["best_candidate"]
        rows.append(
            {
                "run": index,
                "overrides": " ".join(run),
                "status": "ok",
                "best_candidate": best,
                "value_per_period": summary["models"][best]["value_per_period"],
                "uplift": summary["best_uplift"],
                "best_baseline": summary["best_baseline"],
                "currency": summary["currency"],
                "period": summary["period"],
            }
        )
    table = pd.DataFrame(rows)
    atomic_write_text(sweep_dir / "summary.csv", table.to_csv(index=False))
    return sweep_dir


def format_summary(sweep_dir: Path) -> str:
    table = pd.read_csv(sweep_dir / "summary.csv")
    lines = [f"Sweep of {len(table)} runs in {sweep_dir}/ (validation split):"]
    for row in table.itertuples():
        if row.status != "ok":
            lines.append(f"  [{row.run}] {row.overrides}: {row.status.splitlines()[0]}")
            continue
        lines.append(
            f"  [{row.run}] {row.overrides}: best {row.best_candidate} "
            f"{row.value_per_period:,.0f} {row.currency}/{row.period}, uplift "
            f"{row.uplift:,.0f} over {row.best_baseline}"
        )
    return "\n".join(lines)
