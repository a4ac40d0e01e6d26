"""Stage `tune`: Optuna on business value for the candidates that passed the gate.

Reads the gate's record (`reports/gate.json`). When no candidate passed, tuning is skipped
with the gate's reason, loudly, and `models/tuned/` stays empty. Otherwise each selected
candidate's study runs (or resumes: the journal `tuning/optuna.journal` persists across
reruns) until the stop-on-value rule, `tune.n_trials` or `tune.timeout` ends it; the best
params are refit on the training split and scored like any model.

Writes `models/tuned/<name>/`, `reports/tune.json` (its numbers: `metrics/tune.json`) and
`plots/tune/<name>.csv`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from valuegate.config import Config, load_params
from valuegate.data import Schema
from valuegate.errors import ArtifactError
from valuegate.io import atomic_dir
from valuegate.stages.common import (
    PLOTS,
    TUNE_FILE,
    TUNE_METRICS,
    TUNED,
    check_data,
    read_gate_record,
    read_splits,
    run_stage,
    stamp,
    write_fitted,
    write_record,
)

JOURNAL = Path("tuning/optuna.journal")


def selected(gate: dict[str, Any], which: str) -> list[str]:
    if not gate["passed"]:
        return []
    return [gate["best_passing"]] if which == "best" else list(gate["passed"])


def spawn_workers(candidate: str, count: int) -> list[subprocess.Popen]:
    """Extra processes joining the same study (the stage itself is worker 0).

    They start at once, so their imports and data loading overlap worker 0's, then wait
    for a line on stdin (`release_workers`) before they open the study.
    """
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "valuegate.cli",
                "tune",
                "--worker",
                "--candidate",
                candidate,
                "--worker-index",
                str(index),
                "--await-release",
            ],
            stdin=subprocess.PIPE,
        )
        for index in range(1, count)
    ]


def release_workers(workers: list[subprocess.Popen], go: bool) -> None:
    """Let waiting workers open the study (`go`) or tell them to exit without running."""
    for worker in workers:
        if worker.stdin is None or worker.stdin.closed:
            continue
        try:
            if go:
                worker.stdin.write(b"go\n")
            worker.stdin.close()
        except BrokenPipeError:
            pass  # the worker already died; its exit code reports it


def await_release() -> None:
    """In a worker: block until worker 0 releases it; exit quietly if told not to run."""
    if sys.stdin.readline().strip() != "go":
        raise SystemExit(0)


def main(argv: list[str]) -> None:
    config = load_params()
    schema = check_data(config)
    gate = read_gate_record(config)
    names = selected(gate, config.tune.candidates)
    splits = read_splits() if names else {}
    record: dict[str, Any] = {"tuning_allowed": bool(names), "studies": {}}
    if not names:
        reasons = [d["reason"] for d in gate["candidates"].values()]
        record["skipped_because"] = reasons
        print("=" * 78)
        print("tune: SKIPPED — no candidate passed the gate:")
        for reason in reasons:
            print(f"tune:   {reason}")
        print("=" * 78)
    if names:
        # Optuna and the estimators are imported only when there is something to tune.
        from valuegate.tuning import tune_candidate
    fitted = []
    for name in names:
        workers = spawn_workers(name, config.tune.n_jobs)
        try:
            result = tune_candidate(
                config,
                schema,
                splits["train"],
                name,
                JOURNAL,
                # Only once this process has closed trials left running by a killed run.
                on_study_ready=lambda _study, w=workers: release_workers(w, go=True),
            )
        finally:
            release_workers(workers, go=False)
            failed = [w.args for w in workers if w.wait() != 0]
        if failed:
            raise ArtifactError(f"tuning workers failed: {failed}")
        # No timings in a git-tracked record (they differ on every run); printed below.
        record["studies"][name] = {k: v for k, v in result.summary().items() if k != "seconds"}
        fitted.append((refit_best(config, schema, splits, result), result))
        print(
            f"tune: {name}: best cross-validated value {result.best_value:,.0f} "
            f"{config.objective.currency}/{config.objective.period} after "
            f"{result.n_complete} complete + {result.n_pruned} pruned trials "
            f"({result.stop_reason}; {result.folds['kind']} folds; {result.seconds:.0f} s); "
            f"params {result.best_params}"
        )
    write_outputs(config, fitted, record)


def refit_best(config: Config, schema: Schema, splits: dict[str, pd.DataFrame], result: Any):
    """The study's best params refit on the training split and scored like any model
    (training.fit_model: out-of-fold calibration and operating point). The one refit path,
    for the stage and for the `valuegate tune` command."""
    from valuegate.training import fit_model
    from valuegate.tuning import tuned_spec

    name = result.candidate
    spec = tuned_spec(config.model[name], result.best_params)
    model = fit_model(f"{name}_tuned", "tuned", spec, config, schema, splits)
    model.info.update({"tuned_from": name, "study": result.study, "forced": result.forced})
    return model


def write_outputs(config: Config, fitted: list[tuple[Any, Any]], record: dict[str, Any]) -> None:
    """`models/tuned/`, `plots/tune/` and `reports/tune.json` + `metrics/tune.json`
    (stamped with `config`'s lineage), each replaced whole and atomically: the stage's
    outputs, also when the `valuegate tune` command writes them."""
    with atomic_dir(TUNED) as tmp:
        for model, _ in fitted:
            write_fitted(model, tmp / model.name, config)
        if not fitted:
            (tmp / "NOT_TUNED.txt").write_text(
                "The gate allowed no tuning; see reports/gate.json and reports/tune.json.\n"
            )
    JOURNAL.parent.mkdir(parents=True, exist_ok=True)
    JOURNAL.touch()
    with atomic_dir(PLOTS / "tune") as tmp:
        for _model, result in fitted:
            result.trials.to_csv(tmp / f"{result.candidate}.csv", index=False)
    write_record(TUNE_FILE, TUNE_METRICS, stamp(record, config))


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
