"""Run the `valuegate` command and the DVC stages in this process, through the entry points
their processes run: `valuegate.cli.main(argv)` (the console script `valuegate` is
`sys.exit(main())`) and `stages.common.run_stage(main, argv)` (each stage's
`python -m valuegate.stages.X`). Same argument parsing, same handling that turns an
expected error into one line on stderr and an exit code; what differs is only the ~5 s of
imports a fresh process pays, which made a suite of refusal cases cost minutes.

What a real process adds (no traceback at exit, the exit status the shell sees) is
checked by at least one real subprocess in every file that uses this.

Nothing leaks between calls: the working directory is set with `monkeypatch.chdir` (put
back after the test), cli.main restores the logging it set up (`logs.command_logging`)
and the SIGTERM handler of `predict`, and a stage's logging set-up is undone here after
the call. (run_stage's malloc setting, `keep_freed_memory_for_reuse`, stays for the test
process, as in tests/test_pipeline_score.py: it changes how freed memory is reused, no
result.)"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from valuegate.logs import LOGGER


def _exit_code(exc: SystemExit) -> int:
    """The status a process exiting with `exc` has (as the interpreter computes it)."""
    if exc.code is None:
        return 0
    return exc.code if isinstance(exc.code, int) else 1


class InProcess:
    """`here.cli([...])` / `here.stage(main)` -> subprocess.CompletedProcess with the
    exit code and what the command printed to stdout and stderr."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
        self.monkeypatch, self.capsys = monkeypatch, capsys

    def _call(self, argv: list[str], cwd: Path | None, call: Callable[[], int]):
        if cwd is not None:
            self.monkeypatch.chdir(cwd)
        self.capsys.readouterr()  # only this command's output below
        try:
            code = call()
        except SystemExit as exc:  # argparse's usage errors (exit 2), --help, --version
            code = _exit_code(exc)
        out, err = self.capsys.readouterr()
        return subprocess.CompletedProcess(argv, code, out, err)

    def cli(self, argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
        """`valuegate ARGV` in `cwd` (default: the current directory)."""
        from valuegate.cli import main

        return self._call(["valuegate", *argv], cwd, lambda: main(list(argv)))

    def stage(
        self, main: Callable[[list[str]], None], argv: list[str] | None = None, cwd=None
    ) -> subprocess.CompletedProcess:
        """A stage's `main` as `python -m valuegate.stages.X ARGV` runs it, in `cwd`."""
        from valuegate.stages.common import run_stage

        logger = logging.getLogger(LOGGER)
        level, handlers = logger.level, list(logger.handlers)
        try:
            return self._call([main.__module__, *(argv or [])], cwd,
                              lambda: run_stage(main, list(argv or [])))  # fmt: skip
        finally:  # run_stage sets up the stage's logging for the process: undo it
            logger.setLevel(level)
            logger.handlers[:] = handlers
