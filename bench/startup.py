"""Start-up cost of the stage processes and the CLI: the CPU seconds (user + system) of a
fresh `python -c "import <module>"`, next to a raw `python -c "import pandas, sklearn"` in
the same run (what a stage that fits or loads a model needs at least), so the figures
compare on a loaded machine.

Every DVC stage is a fresh `python -m valuegate.stages.<name>` process (13 per full run of
the example: train runs once per candidate). This times the module's import only; a stage
imports more while it runs (sklearn for a fit or a metric, skops to load a bundle), which
`python -X importtime -m valuegate.stages.<name>` in a project that has run shows.

    python bench/startup.py [--repeats 5] [--modules valuegate.stages.monitor ...]

Prints, per module, the least CPU seconds over the repeats (the least is the one least
disturbed by other work) and the difference from the baseline. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys

BASELINE = "pandas, sklearn"
# The stage modules, each with how many processes of it a full run of the example starts
# (dvc.yaml: train@xgboost, train@random_forest, train@hist_gradient_boosting).
STAGES = {
    "prepare": 1,
    "assess": 1,
    "baseline": 1,
    "train": 3,
    "gate": 1,
    "tune": 1,
    "evaluate": 1,
    "package": 1,
    "report": 1,
    "score": 1,
    "monitor": 1,
}
# The CLI, and two references: what any sklearn import costs (sklearn.base imports
# scipy.stats), and what loading a bundle adds (skops.io lists every sklearn estimator at
# import, importing all of sklearn).
OTHERS = ["valuegate.cli", "sklearn.base", "skops.io"]


def cpu_of(module: str) -> float:
    """CPU seconds (user + system) of one `python -c "import <module>"` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--modules", nargs="*", help="modules to time (default: every stage)")
    args = parser.parse_args(argv)
    modules = args.modules or [f"valuegate.stages.{s}" for s in STAGES] + OTHERS
    # interleaved, so that a burst of load elsewhere touches every module alike
    times: dict[str, list[float]] = {m: [] for m in [BASELINE, *modules]}
    for _ in range(args.repeats):
        for module in times:
            times[module].append(cpu_of(module))
    base = min(times[BASELINE])
    print(f"{'module':<32} {'CPU s':>6} {'- base':>7}  (least of {args.repeats})")
    print(f"{'import ' + BASELINE + ' (base)':<32} {base:6.2f}")
    per_run = 0.0
    for module in modules:
        least = min(times[module])
        print(f"{module:<32} {least:6.2f} {least - base:+7.2f}")
        per_run += least * STAGES.get(module.removeprefix("valuegate.stages."), 0)
    if not args.modules:
        print(
            f"imports of the {sum(STAGES.values())} stage processes of one full run: "
            f"{per_run:.1f} CPU s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
