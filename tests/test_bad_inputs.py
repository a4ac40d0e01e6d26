"""Broken configs and data files, run as a user would (`valuegate compose`, `valuegate
check`, the `prepare` stage) in a copy of the project: each must exit non-zero without a
traceback, name the key path / column / rows, and write nothing.

The commands run in this process through their entry points (tests/inprocess.py: the
same parsing and error handling, without ~5 s of imports per process); one case runs
`valuegate check` and the prepare stage as real processes (exit status, no traceback)."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import copy_project, run
from tests.inprocess import InProcess
from valuegate.cli import main as cli_main
from valuegate.stages import prepare

CLI = [sys.executable, "-m", "valuegate.cli"]
PREPARE = [sys.executable, "-m", "valuegate.stages.prepare"]


def table(rows: int = 80) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 80, rows),
            "income": rng.normal(3000, 500, rows).round(1),
            "amount": rng.integers(100, 5000, rows).astype(float),
            "region": rng.choice(["north", "south", "east"], rows),
            "when": pd.date_range("2021-01-01", periods=rows, freq="D").astype(str),
            "label": np.where(np.arange(rows) % 3 == 0, "bad", "good"),
        }
    )


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def with_inf(column: str, rows: list[int]) -> bytes:
    frame = table()
    frame[column] = frame[column].astype(float)
    frame.loc[rows, column] = np.inf
    return csv_bytes(frame)


def with_empty_dates(rows: list[int]) -> bytes:
    frame = table()
    frame.loc[rows, "when"] = None
    return csv_bytes(frame)


def duplicate_header() -> bytes:
    frame = table()
    text = frame.to_csv(index=False)
    header, rest = text.split("\n", 1)
    return (header.replace("region", "age", 1) + "\n" + rest).encode()


def latin1() -> bytes:
    frame = table()
    frame.loc[7, "region"] = "Nürnberg"
    return frame.to_csv(index=False).encode("latin-1")


def yes_no_labels() -> bytes:
    frame = table()
    frame["label"] = np.where(frame["label"] == "bad", "yes", "no")
    return csv_bytes(frame)


DATA = [
    "data.path=data/raw/case.csv",
    "data.name=case",
    "data.target=label",
    "data.positive_label=bad",
    "data.amount_column=null",
    "objective.constraints=[]",
    "model=xgboost",
]


@dataclass
class Case:
    id: str
    expect: list[str]  # every one must appear in stderr
    overrides: list[str] = field(default_factory=list)
    data: bytes | None = None  # written to data/raw/case.csv; run check and prepare
    conf_edit: tuple[str, str, str] | None = None  # (file in conf/, old, new)
    process: bool = False  # check and prepare as real processes, not in this one


CONFIG_CASES = [
    Case(
        "unknown param",
        ["model.xgboost.params.max_dept", "did you mean 'max_depth'"],
        ["+model.xgboost.params.max_dept=3"],
    ),
    Case(
        "negative max_depth",
        ["model.xgboost.params.max_depth", "-3", "greater equal to 0"],
        ["model.xgboost.params.max_depth=-3"],
    ),
    Case(
        "max_features typo",
        ["model.random_forest.params.max_features", "'sqr'", "sqrt"],
        ["model.random_forest.params.max_features=sqr"],
    ),
    Case(
        "search space name when tuning is skipped",
        ["model.xgboost.search_space.max_dept", "did you mean 'max_depth'"],
        ["+model.xgboost.search_space.max_dept={type: int, low: 2, high: 4}"],
    ),
    Case(
        "search space bound",
        ["model.xgboost.search_space.subsample", "2.0", "[0,1]"],
        ["model.xgboost.search_space.subsample.high=2"],
    ),
    Case(
        "feature listed twice",
        ["data.features", "['age'] more than once"],
        ["data.features.numeric=[age,income,age]"],
    ),
    Case(
        "feature numeric and categorical",
        ["data.features", "['age'] listed under both numeric and categorical"],
        ["data.features.numeric=[age]", "data.features.categorical=[age,region]"],
    ),
    Case(
        "impossible constraint",
        ["objective.constraints[0]", "'precision >= 1.01' can never be met", "between 0 and 1"],
        ['objective.constraints=["precision >= 1.01"]'],
    ),
    Case(
        "another dataset's name",
        ["data.name", "'german_credit'", "data/raw/case.csv", "registry"],
        ["data.path=data/raw/case.csv"],
    ),
    Case(
        "yaml syntax error",
        ["conf/model/xgboost.yaml:", "invalid YAML"],
        conf_edit=("model/xgboost.yaml", "    max_depth: 3\n", "    max_depth: [3\n"),
    ),
    Case(
        "tab in yaml",
        ["conf/tune/default.yaml:", "invalid YAML", "tab"],
        conf_edit=("tune/default.yaml", "n_folds: 5\n", "n_folds:\n\t5\n"),
    ),
]

DATA_CASES = [
    Case("duplicate columns", ["data.path", "'age' at columns [1, 4]"], data=duplicate_header()),
    Case(
        "inf in a feature",
        ["column 'income'", "infinite", "2 rows", "[3, 9]"],
        data=with_inf("income", [3, 9]),
    ),
    Case(
        "inf in the amount",
        ["data.amount_column", "column 'amount'", "[5]"],
        ["data.amount_column=amount"],
        data=with_inf("amount", [5]),
    ),
    Case(
        "time split with empty dates",
        ["data.time_column", "column 'when'", "2 rows", "[4, 11]"],
        ["data.split.method=time", "data.time_column=when"],
        data=with_empty_dates([4, 11]),
    ),
    Case("empty file", ["data.path", "'data/raw/case.csv' is empty"], data=b""),
    Case("latin-1 file", ["data.path", "not UTF-8", "line 9", "0xfc"], data=latin1(), process=True),
    Case(
        "yes/no labels with an unquoted yes",
        ["data.positive_label", "YAML boolean", 'positive_label: "yes"'],
        ["data.positive_label=true"],
        data=yes_no_labels(),
    ),
]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    project = copy_project(tmp_path_factory.mktemp("bad") / "project")
    base = ["-q", "compose", "--conf-dir", str(project / "conf"), "--params"]
    assert cli_main([*base, str(project / "params_base.yaml")]) == 0
    return project


@pytest.fixture
def here(monkeypatch, capsys) -> InProcess:
    return InProcess(monkeypatch, capsys)


def assert_refused(result, case: Case) -> None:
    assert result.returncode != 0, f"{case.id}: exit 0\n{result.stdout}"
    assert "Traceback" not in result.stderr, f"{case.id}:\n{result.stderr}"
    for text in case.expect:
        assert text in result.stderr, f"{case.id}: {text!r} not in:\n{result.stderr}"


@pytest.mark.parametrize("case", CONFIG_CASES, ids=lambda c: c.id)
def test_a_broken_config_is_refused_by_compose_and_check(
    project: Path, case: Case, here: InProcess
):
    conf = "conf"
    if case.conf_edit:
        conf = "conf_" + case.id.replace(" ", "_")
        shutil.rmtree(project / conf, ignore_errors=True)
        shutil.copytree(project / "conf", project / conf)
        name, old, new = case.conf_edit
        path = project / conf / name
        assert old in path.read_text()
        path.write_text(path.read_text().replace(old, new))
    params = project / f"params_{case.id.replace(' ', '_')}.yaml"
    compose = ["compose", *case.overrides, "--conf-dir", conf, "--params", params.name]
    result = here.cli(compose, project)
    expect = [e.replace("conf/", f"{conf}/") for e in case.expect]
    assert_refused(result, Case(case.id, expect))
    assert not params.exists()  # nothing written
    if case.conf_edit:
        # `valuegate check` reads params.yaml beside conf/: a broken conf/ is named too.
        check_dir = project / f"check_{conf}"
        shutil.rmtree(check_dir, ignore_errors=True)
        check_dir.mkdir()
        shutil.copytree(project / conf, check_dir / "conf")
        shutil.copy(project / "params_base.yaml", check_dir / "params.yaml")
        result = here.cli(["check", "--params", str(check_dir / "params.yaml")], project)
        assert_refused(result, Case(case.id, [e.replace(f"{conf}/", "conf/") for e in expect]))
        return
    # `valuegate check` catches the same in a params.yaml written by hand (or by DVC).
    raw = yaml.safe_load((project / "params_base.yaml").read_text())
    apply_overrides(raw, case.overrides)  # what compose refused to write
    params.write_text(yaml.safe_dump(raw))
    assert_refused(here.cli(["check", "--params", params.name], project), case)
    params.unlink()


def apply_overrides(raw: dict, overrides: list[str]) -> None:
    """Set `key=value` overrides in a composed dict (values parsed as YAML)."""
    for item in overrides:
        key, value = item.lstrip("+").split("=", 1)
        node = raw
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = yaml.safe_load(value)


@pytest.mark.parametrize("case", DATA_CASES, ids=lambda c: c.id)
def test_a_broken_data_file_is_refused_by_check_and_prepare(
    project: Path, case: Case, here: InProcess
):
    assert case.data is not None
    (project / "data" / "raw" / "case.csv").write_bytes(case.data)
    assert here.cli(["compose", *DATA, *case.overrides], project).returncode == 0
    if case.process:
        assert_refused(run([*CLI, "check"], project, check=False), case)
        assert_refused(run(PREPARE, project, check=False), case)
    else:
        assert_refused(here.cli(["check"], project), case)
        assert_refused(here.stage(prepare.main, [], project), case)
    assert not (project / "data" / "prepared").exists()  # nothing written
