"""Logging and progress bars for the `valuegate` command and the DVC stages.

Progress and status lines go through `logging` (logger "valuegate.*") to stderr; stdout is
kept for the results a user may pipe (`valuegate show`, `models list`, ...). The level:

- `valuegate -q ...` (quiet): warnings and errors only, no progress bars;
- default: progress lines (INFO), a bar where the work is long (on a terminal only);
- `valuegate -v ...`: debug lines too (timings of each step, what was read and skipped).

The command sets `VALUEGATE_LOG_LEVEL` for the processes it starts (tuning workers, stages
run in-process), and a DVC stage reads it, so `VALUEGATE_LOG_LEVEL=WARNING dvc exp run`
is the quiet pipeline. Bars are drawn only when stderr is a terminal: CI logs and files
get the log lines, never a redrawn bar.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

LOGGER = "valuegate"
ENV = "VALUEGATE_LOG_LEVEL"
"""The level's name (WARNING, INFO, DEBUG) for stages and child processes."""

QUIET, NORMAL, VERBOSE = -1, 0, 1
_LEVELS = {QUIET: logging.WARNING, NORMAL: logging.INFO, VERBOSE: logging.DEBUG}
_MARK = "_valuegate_handler"  # on the handler this module installed, to replace it


def level_for(verbosity: int) -> int:
    """-q -> WARNING, nothing -> INFO, -v (or more) -> DEBUG."""
    return _LEVELS[max(QUIET, min(VERBOSE, verbosity))]


def _level_from_env() -> int:
    name = os.environ.get(ENV, "").strip().upper()
    level = logging.getLevelName(name) if name else logging.INFO
    # an unknown name is not worth stopping a run for: the default level, said once below
    return level if isinstance(level, int) else logging.INFO


class _StderrHandler(logging.StreamHandler):
    """A StreamHandler to whatever `sys.stderr` is when a line is written (a redirect,
    pytest's capture), not the one it was when logging was set up."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass  # always the current sys.stderr


def setup_logging(verbosity: int | None = None, stream: TextIO | None = None) -> int:
    """Send the "valuegate" loggers to `stream` (stderr) at the level of `verbosity`
    (QUIET, NORMAL, VERBOSE), or of `VALUEGATE_LOG_LEVEL` when None (the stages). With a
    verbosity, the environment variable is set too, for the processes started from here.
    Calling it again replaces the handler (no doubled lines). Returns the level."""
    level = _level_from_env() if verbosity is None else level_for(verbosity)
    if verbosity is not None:
        os.environ[ENV] = logging.getLevelName(level)
    logger = logging.getLogger(LOGGER)
    for handler in list(logger.handlers):
        if getattr(handler, _MARK, False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    # debug lines say where they come from; progress lines are read by people
    pattern = "%(levelname)s %(name)s: %(message)s" if level <= logging.DEBUG else "%(message)s"
    handler.setFormatter(logging.Formatter(pattern))
    setattr(handler, _MARK, True)
    logger.addHandler(handler)
    logger.setLevel(level)
    name = os.environ.get(ENV, "")
    if name and not isinstance(logging.getLevelName(name.strip().upper()), int):
        logger.warning("%s=%r is not a level (DEBUG, INFO, WARNING, ERROR): using INFO", ENV, name)
    return level


@contextmanager
def command_logging(verbosity: int) -> Iterator[int]:
    """`setup_logging(verbosity)` for the length of one command, then the logger, its
    handlers and VALUEGATE_LOG_LEVEL as they were (a command run in-process, as the tests
    and `valuegate tune` running the evaluate stage do, leaves nothing behind)."""
    logger = logging.getLogger(LOGGER)
    level, handlers, env = logger.level, list(logger.handlers), os.environ.get(ENV)
    try:
        yield setup_logging(verbosity)
    finally:
        logger.setLevel(level)
        logger.handlers[:] = handlers
        if env is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = env


def show_progress(stream: Any = None, logger: logging.Logger | None = None) -> bool:
    """True when a bar may be drawn: `stream` (stderr) is a terminal and progress is not
    silenced (-q or VALUEGATE_LOG_LEVEL=WARNING) for `logger` ("valuegate")."""
    stream = stream if stream is not None else sys.stderr
    tty = getattr(stream, "isatty", lambda: False)()
    logger = logger if logger is not None else logging.getLogger(LOGGER)
    return bool(tty) and logger.isEnabledFor(logging.INFO)


class _NoBar:
    """What `progress` yields off a terminal: the tqdm calls used here, doing nothing."""

    n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        pass

    def refresh(self) -> None:
        pass


@contextmanager
def progress(
    desc: str, total: int | None = None, unit: str = "it", stream: Any = None
) -> Iterator[Any]:
    """A tqdm bar on stderr while the block runs (`bar.update(n)`, `bar.set_postfix_str`),
    or a stand-in that draws nothing when `show_progress` is False. While the bar is up,
    valuegate's log lines are printed above it instead of through it."""
    stream = stream if stream is not None else sys.stderr
    if not show_progress(stream):
        yield _NoBar()
        return
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    with (
        tqdm(
            total=total, desc=desc, unit=unit, file=stream, leave=False, dynamic_ncols=True
        ) as bar,
        logging_redirect_tqdm(loggers=[logging.getLogger(LOGGER)]),
    ):
        yield bar
