"""`valuegate retrain --window 2017 [--labels FILE] [--rule sliding] [--dry-run]`.

Optionally appends new labelled rows as the window's file (retrain/labels.py), then runs
the real stages through `dvc exp run -S retrain.window.until=<window> ...`: assess (the
new rows too), baselines, candidates, gate, tune, evaluate and package, whose deploy gate
compares the retrained model with the champion on the newest period's held-out rows.
There is no second training path: this module only composes the overrides, calls DVC and
reads reports/deploy.json. Status goes to stderr (DVC's own output too), the result, one
paragraph, to stdout.

Exit codes: 0 the retrain ran (promoted or not: the paragraph says which and why);
2 bad input (config, labels, window: one line naming the key or file); 3 the new data
failed the assessment, or the gate refused under gate.strict / deploy.strict (nothing
promoted); 5 the pipeline failed otherwise (DVC's message above).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from valuegate.errors import GateRefusedError, ValuegateError
from valuegate.io import atomic_write_bytes

log = logging.getLogger(__name__)

LOCK_FILE = Path("dvc.lock")
# The lock as it was before the running `dvc exp run` (in DVC's git-ignored tmp/), and the
# mark that a run is under way; both gone once the run ends, killed or not.
LOCK_GUARD = Path(".dvc/tmp/valuegate-retrain")


class RetrainFailedError(ValuegateError):
    """`dvc exp run` failed for another reason than the assessment or a strict gate."""

    kind = "retrain failed"
    exit_code = 5


def _money(value: float) -> str:
    return f"{round(value):,d}"


def periods_text(rows_per_period: dict[str, int], most: int = 6) -> str:
    """The window's periods and their rows, for one line: every period when there are at
    most `most`, else the first and last three, the count and the total (a date column
    makes every day a period: hundreds)."""
    items = [f"{p} ({n:,} rows)" for p, n in rows_per_period.items()]
    if len(items) <= most:
        return ", ".join(items)
    total = sum(rows_per_period.values())
    return (
        f"{len(items)} periods, {total:,} rows: {', '.join(items[:3])}, ..., "
        f"{', '.join(items[-3:])}"
    )


def result_paragraph(record: dict[str, Any], window: dict[str, Any], unit: str) -> str:
    """One paragraph on the retrain: promoted or not and why, the uplift over the champion
    with its interval, decision churn and seed spread (reports/deploy.json `record`;
    `window`: schema.json's record of the window, {} without one; `unit`: e.g. USD/month)."""
    where = ""
    if window:
        periods = periods_text(window["rows_per_period"])
        where = (
            f"Retrained on the {window['rule']} window up to {window['until']}: {periods}; "
            f"tested on the last {window['holdout']:.0%} of {window['test_period']}. "
        )
    version = record.get("version")
    promoted = bool(version) and record.get("champion_after") == version
    if promoted:
        head = f"Promoted: {version} is the champion now."
    elif version:
        stays = record.get("champion_after")
        head = f"Packaged as {version}, not promoted; the champion stays {stays}."
    else:
        head = f"Not promoted; the champion stays {record.get('champion_after') or 'none'}."
    parts = [where + head, f"Why: {record.get('reason', 'no reason recorded')}."]
    versus = record.get("versus_champion")
    if versus:
        parts.append(
            f"Uplift over {versus['champion']}: {_money(versus['observed_uplift'])} {unit} "
            f"({versus['confidence']:.4g} bounds {_money(versus['ci_lower'])} to "
            f"{_money(versus['ci_upper'])}) on {versus['rows']:,} rows neither model saw."
        )
    churn = record.get("churn")
    if churn and churn.get("applies"):
        parts.append(
            f"Decisions flip on {churn['flipped_share']:.1%} of cases "
            f"({churn['new_acts']['share']:.1%} newly acted on, worth "
            f"{_money(churn['new_acts']['value_per_period'])} {unit}; "
            f"{churn['new_holds']['share']:.1%} no longer, worth "
            f"{_money(churn['new_holds']['value_per_period'])} {unit})."
        )
    stability = record.get("seed_stability")
    if stability:
        parts.append(
            f"Seed spread: {_money(stability['spread'])} {unit} over "
            f"{len(stability['seeds']) + 1} seeds"
            + (" (the uplift is within it: noise)." if stability["noise"] else ".")
        )
    return " ".join(parts)


def _overrides(args: Any) -> list[str]:
    out = list(args.overrides)
    out.append(f"retrain.window.until={args.window}")
    if args.rule:
        out.append(f"retrain.window.rule={args.rule}")
    return out


def _check_period(config: Any, rows: Any, window: Any) -> None:
    """Appended rows belong to the window they are appended as."""
    import pandas as pd

    from valuegate.errors import DataError

    column = config.data.time_column
    if column is None or column not in rows.columns:
        return
    from valuegate.retrain.window import same_period

    values = list(pd.unique(rows[column]))
    dates = not pd.api.types.is_numeric_dtype(rows[column])
    if not same_period(values, window, dates).all():
        shown = sorted({str(v) for v in values})[:10]
        raise DataError(
            f"--labels: column {column!r} of the new rows holds {shown}, not only the window "
            f"{window!r}: append one period at a time (--window names it)."
        )


def run_command(args: Any) -> int:
    """The command (see the module docstring); returns the exit code."""
    from valuegate.config.loading import compose_config, validate
    from valuegate.retrain.labels import append, labelled_rows

    overrides = _overrides(args)
    config = validate(compose_config(args.conf_dir, overrides), source="conf/ + overrides")
    new_rows = None
    if args.labels:
        new_rows = labelled_rows(config.data, args.labels, args.rows, args.id_column)
        _check_period(config, new_rows, args.window)
        target, count = append(config.data, new_rows, args.window, dry_run=args.dry_run)
        verb = "would append" if args.dry_run else "appended"
        log.info(
            f"{verb} {count:,} labelled rows as {target}"
            if count
            else f"{target} holds these rows already"
        )
    command = ["dvc", "exp", "run", *[x for o in overrides for x in ("-S", o)]]
    if args.dry_run:
        return _dry_run(config, new_rows, command)
    log.info("running: %s", " ".join(command))
    # DVC of this interpreter's environment (`python -m dvc`): the console script may run
    # from a virtualenv whose bin/ is not on PATH.
    with guarded_lock():
        done = subprocess.run(
            [sys.executable, "-m", *command], stdout=sys.stderr, stderr=sys.stderr, check=False
        )
    if done.returncode != 0:
        blocked = _blocked()
        if blocked:
            raise GateRefusedError(
                f"the new data failed the assessment ({blocked}): no model was trained on "
                "them and the champion is unchanged; see reports/assessment.html"
            )
        raise RetrainFailedError(
            f"`{' '.join(command)}` failed (exit {done.returncode}; its message is above); "
            "the champion is unchanged unless the package stage had finished."
        )
    record = json.loads(Path("reports/deploy.json").read_text())
    schema_path = Path("data/prepared/schema.json")
    window = json.loads(schema_path.read_text()).get("window", {}) if schema_path.is_file() else {}
    unit = f"{config.objective.currency}/{config.objective.period}"
    print(result_paragraph(record, window, unit))
    return 0


def restore_lock_of_a_killed_run(root: Path = Path(".")) -> bool:
    """Put back dvc.lock as it was before a retrain that was killed; True if one was.

    DVC rewrites dvc.lock in place, stage after stage: a retrain killed while DVC writes it
    leaves a truncated file that every later DVC command refuses ("'./dvc.lock' validation
    failed"). The lock of before the killed run is put back whole (or removed, if there was
    none); the stages that run had finished rerun, or come back from DVC's run cache."""
    guard = root / LOCK_GUARD
    if not (guard / "running").is_file():
        return False
    saved, lock = guard / LOCK_FILE.name, root / LOCK_FILE
    if saved.is_file():
        os.replace(saved, lock)
    else:
        lock.unlink(missing_ok=True)
    # The killed `dvc exp run` had also staged its lock in git's index: put the entry back
    # to the commit's. Left staged, a lock put back equal to the commit's (a committed run)
    # makes DVC's next `exp run` fail ("Stash apply resulted in merge conflicts").
    # Not a git repo, no commit yet or no git: nothing staged to put back.
    with suppress(OSError):
        subprocess.run(["git", "reset", "-q", "--", LOCK_FILE.name], cwd=root, capture_output=True)
    (guard / "running").unlink()
    log.warning("an earlier retrain was killed: dvc.lock is back as it was before that run")
    return True


@contextmanager
def guarded_lock(root: Path = Path(".")) -> Iterator[None]:
    """Keep dvc.lock as it is before the run until DVC exits (see
    `restore_lock_of_a_killed_run`, which the next retrain calls if this one is killed or
    interrupted)."""
    restore_lock_of_a_killed_run(root)
    guard, lock = root / LOCK_GUARD, root / LOCK_FILE
    guard.mkdir(parents=True, exist_ok=True)
    if lock.is_file():
        atomic_write_bytes(guard / LOCK_FILE.name, lock.read_bytes())
    else:
        (guard / LOCK_FILE.name).unlink(missing_ok=True)
    atomic_write_bytes(guard / "running", b"")
    yield
    # only once DVC has exited: interrupted (Ctrl-C), it may have stopped mid-write too
    (guard / "running").unlink()
    (guard / LOCK_FILE.name).unlink(missing_ok=True)


def _blocked() -> str | None:
    """The assessment's blocking findings when the last run stopped there, else None."""
    path = Path("reports/assessment.json")
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except ValueError:
        return None
    if not record.get("blocked"):
        return None
    found = record.get("blocking") or record.get("blocking_findings") or []
    names = [f.get("id", str(f)) if isinstance(f, dict) else str(f) for f in found]
    return ", ".join(names[:5]) or "blocking findings"


def _dry_run(config: Any, new_rows: Any, command: list[str]) -> int:
    """The window the run would train on (the prepare step in memory, with the rows that
    would be appended), and the command; nothing is written."""
    import pandas as pd

    from valuegate.data import load_raw
    from valuegate.pipeline import steps

    raw = load_raw(config.data)
    if new_rows is not None:
        raw = pd.concat([raw, new_rows[list(raw.columns)]], ignore_index=True)
    splits, schema = steps.prepare(raw, config, "dry-run")
    sizes = ", ".join(f"{name} {len(frame):,}" for name, frame in splits.items())
    periods = periods_text(schema.window["rows_per_period"])
    print(
        f"Dry run: would train on the {schema.window['rule']} window up to "
        f"{schema.window['until']} ({periods}; splits {sizes}; test = the "
        f"last {schema.window['holdout']:.0%} of {schema.window['test_period']}), by running "
        f"`{' '.join(command)}`. Nothing was written."
    )
    return 0
