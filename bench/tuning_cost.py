"""Benchmark: candidate defaults and the cost of a tuning trial (issue 18 items 2-3).

Two measurements, each printed (and written to bench/results/tuning_cost_<mode>.json):

`defaults` -- what the xgboost candidate's defaults earn, with and without early stopping.
    For each dataset and variant, `training.fit_model` fits the candidate as the pipeline
    does (cross-fitted operating point, `gate.cross_fit.folds=3`) and the one value model
    values it on the validation and test splits at that fixed point
    (`value_model(config).value_at_point`). Datasets: the embedded German credit example
    (1,000 rows, K-fold), a seeded sample of the employment example
    (`+experiment=employment`, `--employment-rows`, split by time) and a seeded synthetic
    table (interactions, a 30-level categorical, label noise). Values are deterministic
    (seeded); seconds are wall time on whatever else the machine runs.

`cost` -- trials a tuning run completes in a fixed wall time, against plain Optuna +
    xgboost measured in the same run on the same rows:
    - plain: `optuna.create_study()` in memory, TPE, one train/holdout split (80/20,
      stratified), xgboost with the candidate's params but without early stopping,
      objective ROC AUC: what a user writes in ten lines;
    - valuegate variants, each `TuningProblem.objective` in an in-memory study with the
      same search space: 5-fold CV without early stopping (the old default), then with
      early stopping in every fold, then with the fold pruner, then with the default
      fold rule of conf/tune (`tuning.effective_folds`).
    Each side gets `--seconds` of wall time; sides alternate over `--repeat` rounds so load
    from other processes hits both alike. The ratio printed is trials per second of the
    variant / of plain in the same round (median over rounds).

Usage:
    .venv/bin/python bench/tuning_cost.py defaults [--employment-rows 20000]
    .venv/bin/python bench/tuning_cost.py cost [--seconds 60 --repeat 2 --rows 4000]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from valuegate.business import value_model  # noqa: E402
from valuegate.config import compose_config  # noqa: E402
from valuegate.config.loading import validate  # noqa: E402
from valuegate.data import load_raw, prepare, target_vector  # noqa: E402

OLD_XGB = {
    "n_estimators": 300,
    "learning_rate": 0.05,
    "max_depth": 4,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
}
ES = {"rounds": 50, "validation_fraction": 0.15, "refit": False}
CAP = {"n_estimators": 2000, "learning_rate": 0.05, "subsample": 0.8, "colsample_bytree": 0.8}
# label: (estimator, params, early_stopping). Variants whose label starts with "hgb" run
# on the time-split dataset only: they ask whether HistGradientBoosting's own (random)
# validation part is good enough on time-ordered rows.
ROUNDS: dict[str, list[str]] = {
    "1": [
        "old: 300 trees, depth 4, no early stopping",
        "early stop, depth 3",
        "early stop, depth 3, refit",
        "early stop, depth 3, 100 rounds, 20%",
        "early stop, depth 2",
        "early stop, depth 4",
    ],
    "2": [
        "old: 300 trees, depth 4, no early stopping",
        "early stop, depth 2",
        "early stop, depth 2, min_child_weight 3",
        "early stop, depth 2, rate 0.1",
        "early stop, depth 3, min_child_weight 3",
        "hgb: own early stopping, random 15%",
        "hgb: early stop on the last 15%",
    ],
    "3": [
        "HGB before: 300 iterations (own early stopping only above 10,000 rows)",
        "HGB: early stopping wrapper, cap 2000",
    ],
}
HGB = {"learning_rate": 0.05, "max_iter": 2000, "max_leaf_nodes": 15, "l2_regularization": 1.0}
VARIANTS: dict[str, tuple[str, dict[str, Any], dict[str, Any] | None]] = {
    "old: 300 trees, depth 4, no early stopping": ("xgboost", OLD_XGB, None),
    "early stop, depth 3": ("xgboost", {**CAP, "max_depth": 3}, ES),
    "early stop, depth 3, refit": ("xgboost", {**CAP, "max_depth": 3}, {**ES, "refit": True}),
    "early stop, depth 3, 100 rounds, 20%": (
        "xgboost",
        {**CAP, "max_depth": 3},
        {**ES, "rounds": 100, "validation_fraction": 0.2},
    ),
    "early stop, depth 2": ("xgboost", {**CAP, "max_depth": 2}, ES),
    "early stop, depth 4": ("xgboost", {**CAP, "max_depth": 4}, ES),
    "early stop, depth 2, min_child_weight 3": (
        "xgboost",
        {**CAP, "max_depth": 2, "min_child_weight": 3},
        ES,
    ),
    "early stop, depth 2, rate 0.1": ("xgboost", {**CAP, "max_depth": 2, "learning_rate": 0.1}, ES),
    "early stop, depth 3, min_child_weight 3": (
        "xgboost",
        {**CAP, "max_depth": 3, "min_child_weight": 3},
        ES,
    ),
    "hgb: own early stopping, random 15%": (
        "hist_gradient_boosting",
        {**HGB, "early_stopping": True, "validation_fraction": 0.15, "n_iter_no_change": 50},
        None,
    ),
    "hgb: early stop on the last 15%": ("hist_gradient_boosting", HGB, ES),
    "HGB before: 300 iterations (own early stopping only above 10,000 rows)": (
        "hist_gradient_boosting",
        {**HGB, "max_iter": 300},
        None,
    ),
    "HGB: early stopping wrapper, cap 2000": ("hist_gradient_boosting", HGB, ES),
}


def synthetic(n: int = 3000, seed: int = 7) -> pd.DataFrame:
    """Binary label from interactions, a 30-level categorical and 15% label noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    level = rng.integers(0, 30, size=n)
    effect = rng.normal(scale=0.8, size=30)[level]
    logit = x[:, 0] * x[:, 1] + np.sin(2 * x[:, 2]) + 0.5 * x[:, 3] + effect - 0.8
    y = rng.random(n) < 1 / (1 + np.exp(-2 * logit))
    flip = rng.random(n) < 0.15
    y = np.where(flip, ~y, y)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(6)])
    frame["segment"] = [f"s{v:02d}" for v in level]
    frame["amount"] = np.round(rng.gamma(2.0, 500.0, size=n), 2)
    frame["label"] = np.where(y, "bad", "good")
    return frame


def dataset(
    name: str, employment_rows: int, seed: int = 0
) -> tuple[Any, dict[str, pd.DataFrame], Any]:
    """(config, splits, schema) for one of: german_credit, employment, synthetic; `seed`
    is the config's seed (the split, the folds, the models)."""
    base = [
        "gate.cross_fit.folds=3",
        "gate.cross_fit.choice_resamples=20",
        "model=xgboost",
        f"seed={seed}",
    ]
    if name == "german_credit":
        config = validate(compose_config(ROOT / "conf", base))
        frame = load_raw(config.data, ROOT)
    elif name == "employment":
        config = validate(compose_config(ROOT / "conf", [*base, "+experiment=employment"]))
        frame = load_raw(config.data, ROOT)
        rows = np.sort(np.random.default_rng(0).choice(len(frame), employment_rows, replace=False))
        frame = frame.iloc[rows].reset_index(drop=True)  # still in time order
    else:
        config = validate(
            compose_config(
                ROOT / "conf",
                [
                    *base,
                    "data.path=synthetic.csv",
                    "data.target=label",
                    "data.positive_label=bad",
                    "data.amount_column=amount",
                    "data.id_column=null",
                    "data.time_column=null",
                    "data.features.numeric=[x0,x1,x2,x3,x4,x5]",
                    "data.features.categorical=[segment]",
                ],
            )
        )
        frame = synthetic()
    splits, schema = prepare(frame, config.data, config.seed, "")
    return config, splits, schema


def value_on(config, schema, splits, fitted) -> dict[str, float]:
    """Value per period on valid and test at the model's fixed point (one value model)."""
    from sklearn.metrics import roc_auc_score

    model = value_model(config)
    point = fitted.info["operating_point"]["value"]
    out = {}
    for split in ("valid", "test"):
        frame = splits[split]
        y = target_vector(frame, config.data)
        scores = fitted.predictions.loc[fitted.predictions["split"] == split, "score"]
        amount = frame[schema.amount_column].to_numpy(float) if schema.amount_column else None
        out[f"{split}_value"] = round(model.value_at_point(y, scores.to_numpy(), point, amount))
        out[f"{split}_auc"] = round(float(roc_auc_score(y, scores)), 4)
    return out


def run_defaults(args: argparse.Namespace) -> dict[str, Any]:
    from valuegate.config.schema import ModelSpec
    from valuegate.training import fit_model

    results: dict[str, Any] = {}
    for name in ("german_credit", "employment", "synthetic"):
        # The time-split employment sample's 15,000 test rows value a model steadily; the
        # small tables' 200-600 test rows do not, so they are averaged over seeds.
        seeds = [0] if name == "employment" else list(range(args.seeds))
        labels = [
            label
            for label in ROUNDS[args.round]
            if name == "employment" or not label.startswith("hgb")
        ]
        rows: dict[str, list[dict[str, float]]] = {label: [] for label in labels}
        for seed in seeds:
            config, splits, schema = dataset(name, args.employment_rows, seed)
            unit = f"{config.objective.currency}/{config.objective.period}"
            for label in labels:
                estimator, params, early = VARIANTS[label]
                threads = {"n_jobs": 1} if estimator == "xgboost" else {}
                spec = ModelSpec.model_validate(
                    {
                        "estimator": estimator,
                        "params": {**params, **threads},
                        "early_stopping": early,
                    }
                )
                started = time.perf_counter()
                fitted = fit_model("xgboost", "candidate", spec, config, schema, splits)
                row = value_on(config, schema, splits, fitted)
                estimator = fitted.pipeline.named_steps["estimator"]
                cap = params.get("n_estimators", params.get("max_iter"))
                row["trees"] = int(
                    getattr(estimator, "n_rounds_", getattr(estimator, "n_iter_", cap))
                )
                row["seconds"] = time.perf_counter() - started
                rows[label].append(row)
        print(f"\n{name}: {len(splits['train'])} training rows, {unit}, mean of seeds {seeds}")
        results[name] = {"unit": unit, "train_rows": len(splits["train"]), "seeds": seeds}
        results[name]["variants"] = {}
        for label, runs in rows.items():
            mean = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
            results[name]["variants"][label] = {**mean, "runs": runs}
            print(
                f"  {label:45s} valid {mean['valid_value']:>12,.0f} test "
                f"{mean['test_value']:>12,.0f}  AUC {mean['valid_auc']:.3f}/"
                f"{mean['test_auc']:.3f}  trees {mean['trees']:>6.0f}  {mean['seconds']:5.1f} s",
                flush=True,
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["defaults", "cost"])
    parser.add_argument("--employment-rows", type=int, default=20000)
    parser.add_argument("--seeds", type=int, default=3, help="seeds for the small tables")
    parser.add_argument("--round", choices=sorted(ROUNDS), default="2", help="variant set")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--rows", type=int, default=4000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results = run_defaults(args) if args.mode == "defaults" else run_cost(args)
    suffix = f"{args.mode}_{args.round}" if args.mode == "defaults" else args.mode
    out = ROOT / "bench" / "results" / f"tuning_cost_{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {out.relative_to(ROOT)}")


OLD_SPACE = {
    "max_depth": {"type": "int", "low": 2, "high": 8},
    "learning_rate": {"type": "float", "low": 0.01, "high": 0.3, "log": True},
    "n_estimators": {"type": "int", "low": 100, "high": 800, "step": 50},
    "subsample": {"type": "float", "low": 0.5, "high": 1.0},
    "min_child_weight": {"type": "float", "low": 0.5, "high": 10, "log": True},
}


def cost_sides(rows: int) -> dict[str, dict[str, Any]]:
    """The tuning set-ups compared, by label: spec (params, early stopping, space), folds,
    pruner. The first is plain Optuna + xgboost on one holdout."""
    from valuegate.config import compose_config

    new = validate(compose_config(ROOT / "conf", ["model=xgboost"])).model["xgboost"]
    new_space = {k: v.model_dump(exclude_none=True) for k, v in new.search_space.items()}
    new_params = {**new.params, "n_jobs": 1}
    early = new.early_stopping.model_dump() if new.early_stopping else None
    old = {"params": {**OLD_XGB, "n_jobs": 1}, "early_stopping": None, "search_space": OLD_SPACE}
    es = {"params": new_params, "early_stopping": early, "search_space": new_space}
    return {
        "plain Optuna + xgboost, one holdout": {"spec": old, "folds": 0, "pruner": None},
        "valuegate before: 5 folds, median pruner": {
            "spec": old,
            "folds": 5,
            "pruner": "median",
        },
        "5 folds + early stopping, median pruner": {"spec": es, "folds": 5, "pruner": "median"},
        "5 folds + early stopping, successive halving": {
            "spec": es,
            "folds": 5,
            "pruner": "successive_halving",
        },
        "3 folds + early stopping, median pruner": {"spec": es, "folds": 3, "pruner": "median"},
    }


def time_side(side: dict[str, Any], X, y, seconds: float, seed: int) -> tuple[int, float]:  # noqa: N803
    """(trials finished, wall seconds) of one side run for `seconds`."""
    import optuna
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    from valuegate.business import BinaryValueModel
    from valuegate.config.schema import ModelSpec
    from valuegate.folds import make_folds
    from valuegate.models import build_pipeline, predict_scores
    from valuegate.tuning import StopOnValue, TuningProblem, create_study, run_study, suggest

    spec = ModelSpec.model_validate({"estimator": "xgboost", **side["spec"]})
    numeric = [c for c in X.columns if c != "segment"]
    started = time.perf_counter()
    if side["folds"] == 0:
        fit, hold = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=0)

        def objective(trial: optuna.Trial) -> float:
            params = {**spec.params, **suggest(trial, spec.search_space)}
            trial_spec = spec.model_copy(update={"params": params})
            pipeline = build_pipeline("plain", trial_spec, "binary", numeric, ["segment"], seed)
            pipeline.fit(X.iloc[fit], y[fit])
            return roc_auc_score(y[hold], predict_scores(pipeline, X.iloc[hold], "binary"))

        study = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed)
        )
        study.optimize(objective, timeout=seconds)
        return len(study.trials), time.perf_counter() - started
    value = {"tp": (-200.0, 0.0), "fp": (-50.0, 0.0), "fn": (-1000.0, 0.0), "tn": (0.0, 0.0)}
    problem = TuningProblem(
        key="model.xgboost",
        spec=spec,
        task="binary",
        numeric=numeric,
        categorical=["segment"],
        X=X,
        y=y,
        amount=None,
        value_model=BinaryValueModel(values=value, volume=1000),
        constraints=[],
        folds=make_folds(y, "binary", side["folds"], seed),
        seed=seed,
        estimator_overrides={},
    )
    study = create_study("cost", None, seed, True, False, side["pruner"])
    run_study(study, problem.objective, 10**6, seconds, StopOnValue(0, 10**9))
    finished = [t for t in study.trials if t.state.is_finished()]
    return len(finished), time.perf_counter() - started


def run_cost(args: argparse.Namespace) -> dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    frame = synthetic(args.rows, seed=11)
    X = frame.drop(columns=["label", "amount"])  # noqa: N806
    y = (frame["label"] == "bad").to_numpy(int)
    sides = cost_sides(args.rows)
    rates: dict[str, list[float]] = {label: [] for label in sides}
    counts: dict[str, list[int]] = {label: [] for label in sides}
    plain = next(iter(sides))
    print(f"{args.rows} rows, {args.seconds:g} s per side, {args.repeat} rounds, 1 thread")
    for round_ in range(args.repeat):
        for label, side in sides.items():
            trials, wall = time_side(side, X, y, args.seconds, seed=round_)
            rates[label].append(trials / wall)
            counts[label].append(trials)
            print(f"  round {round_}: {label:46s} {trials:4d} trials in {wall:5.1f} s", flush=True)
    results: dict[str, Any] = {"rows": args.rows, "seconds": args.seconds, "sides": {}}
    print("\ntrials per second, ratio to plain Optuna in the same round (median of rounds):")
    for label in sides:
        ratio = statistics.median(r / p for r, p in zip(rates[label], rates[plain], strict=True))
        results["sides"][label] = {"trials": counts[label], "ratio_to_plain": round(ratio, 3)}
        print(f"  {label:46s} {statistics.median(rates[label]):6.2f}/s  x{ratio:.2f}")
    return results


if __name__ == "__main__":
    main()
