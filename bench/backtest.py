"""A backtest over 3 periods of ~70k rows (the employment example, 2016-2018) vs. a plain
script doing the same trainings and scorings with scikit-learn / xgboost directly, side by
side in one run (issue 16; target ratio <= 1.3).

valuegate side: `retrain.backtest.replay` with the real pipeline trainer (the whole
pipeline per distinct window: assessment, baselines, candidate, gate, tuning, evaluation;
then monitoring of every period, the deploy gate with its seed refits, the policies and
the paired bootstrap tally), exactly what `valuegate backtest` runs, minus writing.

Plain side, from what the valuegate side fitted (so both do the same fits on the same
rows): per distinct window, every model the pipeline fitted (baselines, candidates, tuned)
is cloned (`sklearn.base.clone`) and fitted on the training rows, and again on each of the
gate.cross_fit folds (the same folds: valuegate.folds.make_folds on the same capped rows,
as training.py makes them), then scores valid and test; each tuning trial fits tune's
folds (tuning.tuning_folds; the candidate's pipeline; a pruned trial counted as one fold,
a lower bound); each seed refit of the deploy gate fits the final model and its folds
again and scores valid and test; every (serving model, period) pair the replay valued is
scored once. Assessment, calibration, drift tests and bootstrap are not on the plain
side: they are what valuegate adds, and the ratio says what they cost.

Both sides' wall-clock and CPU seconds (`time.process_time`: every thread of this process)
are printed: on a machine other processes load, the wall-clock ratio moves with their load
between the two sides, the CPU ratio much less.

    python bench/backtest.py [--sample-rows N] [--trials 3] [OVERRIDE ...]
"""

from __future__ import annotations

import argparse
import logging
import resource
import time
from typing import Any

import numpy as np

# No scikit-learn / xgboost import at module level: valuegate must be imported first, so
# its OMP_WAIT_POLICY=PASSIVE is set before libgomp loads (valuegate/__init__.py). With
# `from sklearn.base import clone` up here the OpenMP threads spun, on both sides: five
# xgboost fits of 3,000 rows took 9-36 CPU s instead of 1.8 at load 6.

FIXED = ["+experiment=employment", "model=[xgboost]"]


def cross_fit_folds(config: Any, schema: Any, train: Any, y: np.ndarray) -> list:
    """The gate.cross_fit folds training.cross_fit_scores fits, as (fit rows, score rows)
    positions of `train`: the same capped rows, the same fold maker."""
    from valuegate.folds import make_folds
    from valuegate.training import cross_fit_rows

    time_ordered = config.data.split.method == "time"
    rows = cross_fit_rows(len(train), config.gate.cross_fit.max_rows, time_ordered, config.seed)
    groups = train[schema.id_column].to_numpy()[rows] if schema.id_column else None
    folds = make_folds(
        y[rows], schema.task, config.gate.cross_fit.folds, config.seed,
        time_ordered=time_ordered, groups=groups,
    )  # fmt: skip
    return [(rows[a], rows[b]) for a, b in folds]


def plain(results: dict[str, Any], record: dict[str, Any], periods: list, config: Any) -> dict:
    """The same fits and scorings with sklearn / xgboost directly; returns counts."""
    from sklearn.base import clone

    from valuegate.data import clean_categoricals, target_vector
    from valuegate.tuning import tuning_folds

    fits = scores = 0
    served = {}
    for until, result in results.items():
        splits, schema = result.data
        features = schema.features
        train = splits["train"]
        x, y = train[features], target_vector(train, config.data)
        folds = cross_fit_folds(config, schema, train, y)
        for fitted in result.models.values():
            model = clone(fitted.pipeline).fit(x, y)
            fits += 1
            for fit_rows, score_rows in folds:
                clone(fitted.pipeline).fit(x.iloc[fit_rows], y[fit_rows]).predict_proba(
                    x.iloc[score_rows]
                )
                fits += 1
            for split in ("valid", "test"):
                model.predict_proba(splits[split][features])
                scores += 1
            if fitted.name == result.evaluation["final"]["model"]:
                served[f"until {until}"] = (model, schema)
        if result.tuned is not None:
            for tuned, study in result.tuned.models:
                base = result.models[tuned.name.removesuffix("_tuned")]
                _kind, trial_folds = tuning_folds(config, schema, train, y)
                n_folds = len(trial_folds)
                trials = study.n_complete * n_folds + study.n_pruned  # pruned: >= 1 fold
                for t in range(trials):
                    fit_rows, score_rows = trial_folds[t % n_folds]
                    clone(base.pipeline).fit(x.iloc[fit_rows], y[fit_rows]).predict_proba(
                        x.iloc[score_rows]
                    )
                    fits += 1
    # the deploy gate's seed refits: the final model and its folds, per seed, per challenger
    seeds = config.deploy.seed_stability.seeds
    compared = {
        step["challenger"]
        for policy in record["policies"].values()
        for step in policy["periods"]
        if "uplift" in (step.get("deploy") or {})
    }
    for key in compared:
        result = results[key.removeprefix("until ")]
        splits, schema = result.data
        final = result.models[result.evaluation["final"]["model"]]
        train = splits["train"]
        x, y = train[schema.features], target_vector(train, config.data)
        for _ in range(seeds):
            model = clone(final.pipeline).fit(x, y)
            for split in ("valid", "test"):  # training.fit_model scores both
                model.predict_proba(splits[split][schema.features])
            fits += 1
            for fit_rows, score_rows in cross_fit_folds(config, schema, train, y):
                clone(final.pipeline).fit(x.iloc[fit_rows], y[fit_rows]).predict_proba(
                    x.iloc[score_rows]
                )
                fits += 1
    pairs = {
        (step["served_by"], str(step["period"]))
        for policy in record["policies"].values()
        for step in policy["periods"]
    }
    frames = {str(p.label): p.frame for p in periods}
    for key, label in sorted(pairs):
        model, schema = served[key]
        frame = clean_categoricals(frames[label], schema.categorical)
        model.predict_proba(frame[schema.features])
        scores += 1
    return {"fits": fits, "scorings": scores}


def breakdown(results: dict[str, Any]) -> dict[str, float]:
    """Wall-clock seconds of the valuegate side's trainings by part, as the pipeline
    records them: the assessment's checks, the models' final fits, their gate.cross_fit
    fits, the tuning studies (trials; the tuned model's refit is under fit/cross-fit); and
    `assess:<check>` per assessment check (summed over windows)."""
    out = {"assess": 0.0, "fit": 0.0, "cross-fit": 0.0, "tune trials": 0.0}
    for result in results.values():
        if result.assessed is not None:
            out["assess"] += sum(result.assessed.assessment.seconds.values())
            for check, seconds in result.assessed.assessment.seconds.items():
                out[f"assess:{check}"] = out.get(f"assess:{check}", 0.0) + seconds
        for fitted in result.models.values():
            out["fit"] += fitted.fit_seconds
            out["cross-fit"] += fitted.cross_fit_seconds
        if result.tuned is not None:
            out["tune trials"] += sum(study.seconds for _, study in result.tuned.models)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample-rows", type=int, default=None, help="data.sample_rows")
    parser.add_argument("--trials", type=int, default=3, help="tune.n_trials")
    parser.add_argument("overrides", nargs="*", help="more Hydra overrides of conf/")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from valuegate.data import file_sha256, load_raw
    from valuegate.retrain.backtest import pipeline_trainer, replay, split_periods
    from valuegate.sweep import compose

    overrides = [*FIXED, f"tune.n_trials={args.trials}", *args.overrides]
    if args.sample_rows:
        overrides.append(f"data.sample_rows={args.sample_rows}")
    _, config = compose("conf", overrides)
    raw = load_raw(config.data)
    first, periods = split_periods(config, raw)
    rows = {str(p.label): len(p.frame) for p in periods}

    results: dict[str, Any] = {}
    started, cpu = time.perf_counter(), time.process_time()
    trainer = pipeline_trainer(config, raw, file_sha256(config.data.path), keep=results)
    record = replay(config, first, periods, trainer)
    ours, ours_cpu = time.perf_counter() - started, time.process_time() - cpu

    started, cpu = time.perf_counter(), time.process_time()
    counts = plain(results, record, periods, config)
    theirs, theirs_cpu = time.perf_counter() - started, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"overrides: {' '.join(overrides)}")
    print(f"periods replayed: {rows}; first model: data up to {first}")
    print(
        f"policies: {len(record['policies'])}; distinct trainings: "
        f"{record['distinct_trainings']}; plain side: {counts['fits']} fits, "
        f"{counts['scorings']} scorings"
    )
    print(f"                    {'wall s':>8}  {'CPU s':>8}")
    print(f"valuegate backtest: {ours:8.1f}  {ours_cpu:8.1f}")
    print(f"plain script:       {theirs:8.1f}  {theirs_cpu:8.1f}")
    print(
        f"ratio:              {ours / theirs:8.2f}x {ours_cpu / theirs_cpu:8.2f}x (target <= 1.3); "
        f"peak RSS {peak:,.0f} MB"
    )
    parts = breakdown(results)
    checks = sorted((k for k in parts if k.startswith("assess:")), key=parts.get, reverse=True)
    main_parts = ", ".join(f"{k} {v:.1f} s" for k, v in parts.items() if ":" not in k)
    print(f"valuegate trainings by part (wall): {main_parts}")
    print("costliest checks (wall): " + ", ".join(f"{k[7:]} {parts[k]:.1f} s" for k in checks[:4]))
    print(f"winner: {record['verdict']}")


if __name__ == "__main__":
    main()
