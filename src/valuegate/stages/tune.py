"""Stage `tune`: Optuna on business value for the candidates that passed the gate.

Reads the gate's record (`reports/gate.json`). When no candidate passed, tuning is skipped
with the gate's reason, loudly, and `models/tuned/` stays empty. Otherwise each selected
candidate's study runs (or resumes: the journal `tuning/optuna.journal` persists across
reruns) until the stop-on-value rule, `tune.n_trials` or `tune.timeout` ends it; the best
params are refit on the training split and scored like any model. The work is
`pipeline.steps.tune`; this stage adds `tune.n_jobs - 1` worker processes to each study.

Writes `models/tuned/<name>/`, `reports/tune.json` (its numbers: `metrics/tune.json`) and
`plots/tune/<name>.csv`.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from valuegate.config import Config, load_params
from valuegate.data import Schema
from valuegate.errors import ArtifactError
from valuegate.io import atomic_dir
from valuegate.paths import TUNE_JOURNAL, TUNE_PLOTS
from valuegate.pipeline import steps
from valuegate.pipeline.tune import refit_best as refit_best
from valuegate.pipeline.tune import selected as selected
from valuegate.stages.common import (
    ASSESSED,
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

# by name: run as `python -m`, __name__ is __main__, outside valuegate's loggers
log = logging.getLogger("valuegate.stages.tune")


JOURNAL = TUNE_JOURNAL


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


def worker_processes(config: Config) -> steps.WorkerPool:
    """The tune step's worker pool for the stage: `tune.n_jobs - 1` processes per study,
    released once this process has closed trials a killed run left open, waited for
    after the study; a failed worker fails the stage."""

    @contextmanager
    def pool(candidate: str) -> Iterator[Callable[[str], None]]:
        workers = spawn_workers(candidate, config.tune.n_jobs)
        try:
            yield lambda _study: release_workers(workers, go=True)
        finally:
            release_workers(workers, go=False)
            failed = [w.args for w in workers if w.wait() != 0]
        if failed:
            raise ArtifactError(f"tuning workers failed: {failed}")

    return pool


def skipped_banner(record: dict[str, Any]) -> str:
    rule = "=" * 78
    lines = [rule, "tune: SKIPPED — no candidate passed the gate:"]
    lines += [f"tune:   {reason}" for reason in record["skipped_because"]]
    return "\n".join([*lines, rule])


def main(argv: list[str]) -> None:
    config = load_params()
    schema = check_data(config)
    gate = read_gate_record(config)
    splits = read_splits() if steps.selected(gate, config.tune.candidates) else {}
    tuned = steps.tune(config, schema, splits, gate, JOURNAL, worker_processes(config))
    if not tuned.models:
        log.warning(skipped_banner(tuned.record))  # loud: no tuning this run
    for _model, result in tuned.models:
        sample = result.sample
        rows = f"; on {sample['rows']:,} of {sample['of']:,} training rows" if sample else ""
        over = (
            f", {result.n_over_budget} of them over their time budget"
            if result.n_over_budget
            else ""
        )
        log.info(
            f"tune: {result.candidate}: best cross-validated value {result.best_value:,.0f} "
            f"{config.objective.currency}/{config.objective.period} after "
            f"{result.n_complete} complete + {result.n_pruned} pruned trials{over} "
            f"({result.stop_reason}; {result.folds['kind']} folds{rows}; "
            f"{result.seconds:.0f} s); params {result.best_params} (refit on every training row)"
        )
    write_outputs(config, tuned.models, tuned.record)


def write_outputs(
    config: Config,
    fitted: list[tuple[Any, Any]],
    record: dict[str, Any],
    root: Path = Path("."),
    schema: Schema | None = None,
) -> None:
    """`models/tuned/`, `plots/tune/` and `reports/tune.json` + `metrics/tune.json`
    (stamped with `config`'s lineage), each replaced whole and atomically: the stage's
    outputs, also when the `valuegate tune` command writes them."""
    with atomic_dir(root / TUNED) as tmp:
        for model, _ in fitted:
            write_fitted(model, tmp / model.name, config, schema)
        if not fitted:
            (tmp / "NOT_TUNED.txt").write_text(
                "The gate allowed no tuning; see reports/gate.json and reports/tune.json.\n"
            )
    (root / JOURNAL).parent.mkdir(parents=True, exist_ok=True)
    (root / JOURNAL).touch()
    with atomic_dir(root / TUNE_PLOTS) as tmp:
        for _model, result in fitted:
            # `model` names the candidate in the plot's legend (.dvc/plots/valuegate_tuning.json)
            trials = result.trials.assign(model=result.candidate)
            trials.to_csv(tmp / f"{result.candidate}.csv", index=False)
    write_record(
        root / TUNE_FILE, root / TUNE_METRICS, stamp(record, config, root / ASSESSED, schema)
    )


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
