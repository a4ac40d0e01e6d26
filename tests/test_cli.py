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
