"""The command line: every option explains itself and its default; --version; show's money."""

from __future__ import annotations

import argparse
import importlib.metadata

import pytest

import valuegate
from valuegate import cli
from valuegate.report import summary_table


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """Every documented option and positional, without -h and the hidden (SUPPRESS) ones."""
    return [
        a
        for a in parser._actions
        if not isinstance(a, argparse._HelpAction | argparse._SubParsersAction)
        and a.help != argparse.SUPPRESS
    ]


def test_every_command_and_option_has_help_that_shows_its_default():
    parser = cli.build_parser()
    commands = _subparsers(parser)
    assert {"compose", "check", "tune", "train", "models", "predict", "serve", "show"} <= set(
        commands
    )
    lacking, no_default = [], []
    for name, sub in {"valuegate": parser, **commands}.items():
        formatter = sub._get_formatter()
        for action in _options(sub):
            where = f"{name} {'/'.join(action.option_strings) or action.dest}"
            if not action.help:
                lacking.append(where)
                continue
            shown = formatter._expand_help(action) if action.help else ""
            # a required option or a positional with a fixed set of choices has no default
            needs_default = not action.required and action.dest != "version"
            if needs_default and "default" not in shown:
                no_default.append(where)
    assert not lacking, f"options without help: {lacking}"
    assert not no_default, f"options whose help does not show the default: {no_default}"


def test_help_text_shows_argparse_defaults(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["predict", "--help"])
    assert stop.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "(default: champion)" in text
    assert "(default: utf-8)" in text
    assert "(default: deploy.batch.chunk_size)" in text


def test_version_comes_from_the_package_metadata(monkeypatch, capsys):
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "9.8.7")
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == "valuegate 9.8.7"


def test_version_of_an_uninstalled_tree_is_the_source_version(monkeypatch):
    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert cli.package_version() == valuegate.__version__


def _summary(task_point: dict) -> dict:
    model = {
        "role": "baseline",
        "value_per_period": 114000.0,
        "uplift": 0.0,
        "constraints_met": True,
        **task_point,
    }
    return {
        "currency": "EUR",
        "period": "month",
        "rows": 200,
        "volume": 2000,
        "models": {"linear": model},
        "best_candidate": None,
    }


@pytest.mark.parametrize(
    ("point", "shown"),
    [({"threshold": 0.1666}, "threshold 0.167"), ({"offset": 1234.5}, "offset +1,234")],
)
def test_show_prints_money_and_large_offsets_with_separators(point, shown):
    table = summary_table(_summary(point))
    assert "114,000 EUR" in table
    assert shown in table
    assert "e+0" not in table  # never 1.14e+05


# ------------------------------------------------------------ -q / -v, progress (17.3)


@pytest.fixture
def fresh_logging(monkeypatch):
    """Undo what cli.main's setup_logging does to the process (level, handler, env)."""
    import logging

    from valuegate import logs

    monkeypatch.delenv(logs.ENV, raising=False)
    logger = logging.getLogger(logs.LOGGER)
    level, handlers = logger.level, list(logger.handlers)
    yield
    logger.setLevel(level)
    logger.handlers[:] = handlers


@pytest.fixture
def compose_args(tmp_path):
    from tests.conftest import ROOT

    return ["compose", "--conf-dir", str(ROOT / "conf"), "--params", str(tmp_path / "p.yaml")]


def test_every_command_takes_quiet_and_verbose():
    parser = cli.build_parser()
    for name, sub in _subparsers(parser).items():
        flags = {s for a in sub._actions for s in a.option_strings}
        assert {"-q", "--quiet", "-v", "--verbose"} <= flags, name


@pytest.mark.usefixtures("fresh_logging")
def test_progress_lines_go_to_stderr_and_quiet_silences_them(capsys, compose_args):
    assert cli.main(compose_args) == 0
    out, err = capsys.readouterr()
    assert out == "" and "wrote " in err  # status on stderr: stdout is for results
    # -q before or after the command
    for argv in (["-q", *compose_args], [*compose_args, "-q"]):
        assert cli.main(argv) == 0
        assert capsys.readouterr() == ("", ""), argv


@pytest.mark.usefixtures("fresh_logging")
def test_verbose_adds_debug_lines_and_sets_the_level_for_child_processes(capsys, compose_args):
    import os

    from valuegate import logs

    assert cli.main(compose_args) == 0
    assert "DEBUG" not in capsys.readouterr().err
    assert cli.main([*compose_args, "-v"]) == 0
    err = capsys.readouterr().err
    assert "DEBUG valuegate.cli: valuegate " in err and "'command': 'compose'" in err
    # while a command runs, the processes it starts (tuning workers, stages) follow it;
    # afterwards the process is as it was (commands run in-process leave nothing behind)
    with logs.command_logging(logs.VERBOSE):
        assert os.environ[logs.ENV] == "DEBUG"
    assert logs.ENV not in os.environ
    with pytest.raises(SystemExit):  # one or the other
        cli.main(["-q", "-v", *compose_args])


@pytest.mark.usefixtures("fresh_logging")
def test_a_stage_reads_its_level_from_the_environment(monkeypatch, capsys):
    import logging

    from valuegate import logs

    monkeypatch.setenv(logs.ENV, "WARNING")
    assert logs.setup_logging() == logging.WARNING
    monkeypatch.setenv(logs.ENV, "loud")
    assert logs.setup_logging() == logging.INFO
    assert "VALUEGATE_LOG_LEVEL='loud' is not a level" in capsys.readouterr().err


class _Terminal:
    """A stream that says it is a terminal, for the bar."""

    def __init__(self) -> None:
        import io

        self.buffer = io.StringIO()

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return self.buffer.write(text)

    def flush(self) -> None:
        pass


@pytest.mark.usefixtures("fresh_logging")
def test_a_bar_is_drawn_on_a_terminal_only_and_not_when_quiet():
    import io

    from valuegate import logs

    def draw(stream) -> None:
        with logs.progress("assess", total=3, unit="check", stream=stream) as bar:
            for _ in range(3):
                bar.update()

    logs.setup_logging(logs.NORMAL)
    terminal, log_file = _Terminal(), io.StringIO()
    draw(terminal)
    draw(log_file)
    assert "assess: " in terminal.buffer.getvalue() and "/3 [" in terminal.buffer.getvalue()
    assert log_file.getvalue() == ""  # CI logs and files: no bar
    logs.setup_logging(logs.QUIET)
    quiet = _Terminal()
    draw(quiet)
    assert quiet.buffer.getvalue() == ""


@pytest.mark.usefixtures("fresh_logging")
def test_batch_scoring_draws_a_bar_on_a_terminal(tmp_path, monkeypatch):
    import sys

    from tests.deploy_helpers import make_bundle, raw_rows
    from valuegate import logs
    from valuegate.bundle import load_bundle
    from valuegate.serving.batch import predict_file

    make_bundle(tmp_path / "v1")
    raw_rows(50).to_parquet(tmp_path / "in.parquet")
    logs.setup_logging(logs.NORMAL)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    bundle = load_bundle(tmp_path / "v1")
    predict_file(bundle, tmp_path / "in.parquet", tmp_path / "out.parquet", chunk_size=20)
    drawn = terminal.buffer.getvalue()
    assert "score in.parquet: " in drawn and "/50 [" in drawn
