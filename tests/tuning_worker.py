"""A worker process for the tuning tests: runs valuegate's study loop on a cheap objective
against a shared journal file.

Usage: python tuning_worker.py JOURNAL N_TRIALS WORKER SLEEP [--resume]
(--resume closes trials a killed process left running, as the tune stage does first)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import optuna

from valuegate.tuning import StopOnValue, create_study, fail_stale_running, open_storage, run_study


def main() -> None:
    journal, n_trials, worker, pause = (
        sys.argv[1],
        int(sys.argv[2]),
        int(sys.argv[3]),
        float(sys.argv[4]),
    )
    storage = open_storage(None, Path(journal))
    study = create_study("shared", storage, worker, False, False)
    if "--resume" in sys.argv:
        fail_stale_running(study, storage)

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        trial.set_user_attr("worker", worker)
        trial.set_user_attr("pid", os.getpid())
        time.sleep(pause)
        return x

    print(run_study(study, objective, n_trials, None, StopOnValue(0.0, 10_000)))


if __name__ == "__main__":
    main()
