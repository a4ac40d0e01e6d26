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
gate.cross_fit folds (forward-chaining blocks of the time-ordered training rows), then
scores valid and test; each tuning trial fits tune's folds (the candidate's pipeline; a
pruned trial counted as one fold, a lower bound); each seed refit of the deploy gate
fits the final model and its folds again; every (serving model, period) pair the replay
valued is scored once. Assessment, calibration, drift tests and bootstrap are not on the
plain side: they are what valuegate adds, and the ratio says what they cost.

    python bench/backtest.py [--sample-rows N] [--trials 3] [OVERRIDE ...]
"""

from __future__ import annotations

import argparse
import logging
import resource
import time
from typing import Any

import numpy as np
from sklearn.base import clone

FIXED = ["+experiment=employment", "model=[xgboost]"]
# On the employment data the retrain window's time-ordered splits repeat whole rows
# across splits (different people, distinct ids, the same 16 coded attributes); the
# assessment blocks that unless accepted (docs/retrain.md, "Backtest").
ACCEPT = (
    'assess.accept=[{id:"duplicates:cross_split",reason:"distinct people (ids) who share '
    'every coded attribute"}]'
)


def forward_blocks(n: int, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """k forward-chaining folds of n time-ordered rows: fit on the blocks before, score one."""
    edges = np.linspace(0, n, k + 1).astype(int)
    return [(np.arange(0, edges[i]), np.arange(edges[i], edges[i + 1])) for i in range(1, k)]


def plain(results: dict[str, Any], record: dict[str, Any], periods: list, config: Any) -> dict:
    """The same fits and scorings with sklearn / xgboost directly; returns counts."""
    from valuegate.data import clean_categoricals, target_vector

    fits = scores = 0
    served = {}
    for until, result in results.items():
        splits, schema = result.data
        features = schema.features
        train = splits["train"]
        x, y = train[features], target_vector(train, config.data)
        folds = forward_blocks(len(train), config.gate.cross_fit.folds)
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
                n_folds = (study.folds or {}).get("n_folds", config.tune.n_folds)
                trial_folds = forward_blocks(len(train), n_folds + 1)
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
            clone(final.pipeline).fit(x, y).predict_proba(splits["test"][schema.features])
            fits += 1
            for fit_rows, score_rows in forward_blocks(len(train), config.gate.cross_fit.folds):
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

    overrides = [*FIXED, ACCEPT, f"tune.n_trials={args.trials}", *args.overrides]
    if args.sample_rows:
        overrides.append(f"data.sample_rows={args.sample_rows}")
    _, config = compose("conf", overrides)
    raw = load_raw(config.data)
    first, periods = split_periods(config, raw)
    rows = {str(p.label): len(p.frame) for p in periods}

    results: dict[str, Any] = {}
    started = time.perf_counter()
    trainer = pipeline_trainer(config, raw, file_sha256(config.data.path), keep=results)
    record = replay(config, first, periods, trainer)
    ours = time.perf_counter() - started

    started = time.perf_counter()
    counts = plain(results, record, periods, config)
    theirs = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"overrides: {' '.join(overrides[:2] + overrides[3:])} (+ the accept of bench docs)")
    print(f"periods replayed: {rows}; first model: data up to {first}")
    print(
        f"policies: {len(record['policies'])}; distinct trainings: "
        f"{record['distinct_trainings']}; plain side: {counts['fits']} fits, "
        f"{counts['scorings']} scorings"
    )
    print(f"valuegate backtest: {ours:8.1f} s")
    print(f"plain script:       {theirs:8.1f} s")
    print(f"ratio:              {ours / theirs:8.2f}x (target <= 1.3); peak RSS {peak:,.0f} MB")
    print(f"winner: {record['verdict']}")


if __name__ == "__main__":
    main()
