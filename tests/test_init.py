"""`valuegate init DIR [--example NAME]`: a new git + DVC project that runs as is."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, tool_env
from valuegate import cli
from valuegate.scaffold import (
    EXAMPLES,
    data_readme,
    project_config_yaml,
    project_dvc_yaml,
    readme_commands,
)

MODELS = ["dummy", "linear", "xgboost", "random_forest", "hist_gradient_boosting"]


def test_project_dvc_yaml_drops_only_the_source_dependencies():
    text = (ROOT / "dvc.yaml").read_text()
    out = project_dvc_yaml(text)
    assert "src/valuegate" not in out
    spec, original = yaml.safe_load(out), yaml.safe_load(text)
    assert spec["stages"].keys() == original["stages"].keys()
    assert spec["plots"] == original["plots"]
    assert "conf" in spec["stages"]["prepare"]["deps"]  # the other deps stay


def test_the_example_becomes_the_default_and_its_data_readme_is_kept():
    config = project_config_yaml((ROOT / "conf" / "config.yaml").read_text(), EXAMPLES["diabetes"])
    defaults = yaml.safe_load(config)["defaults"]
    assert {"data": "diabetes"} in defaults and {"objective": "diabetes"} in defaults
    text = data_readme((ROOT / "data" / "raw" / "README.md").read_text(), ("diabetes.csv",))
    assert "`diabetes.csv`" in text and "german_credit.csv" not in text


@pytest.fixture(scope="module")
def initialised(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("init") / "credit"
    assert cli.main(["-q", "init", str(directory)]) == 0
    return directory


def test_init_writes_a_committed_git_and_dvc_project(initialised: Path, monkeypatch, capsys):
    for name in (
        "conf/config.yaml",
        "conf/data/german_credit.yaml",
        "dvc.yaml",
        "params.yaml",
        "data/raw/german_credit.csv",
        "README.md",
        "requirements.txt",
        "tests/test_project.py",
        ".github/workflows/valuegate.yml",
        ".dvc/config",
        ".dvc/plots/page.html",
        "docs/examples/applicant.json",
    ):
        assert (initialised / name).is_file(), name
    assert not (initialised / "conf" / "data" / "diabetes.yaml").exists()  # its data is not there
    assert not (initialised / "src").exists()
    git = ["git", "-C", str(initialised)]
    assert (
        subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True).stdout == ""
    )
    log = subprocess.run([*git, "log", "--oneline"], capture_output=True, text=True).stdout
    assert "valuegate init --example german-credit" in log
    workflow = yaml.safe_load((initialised / ".github/workflows/valuegate.yml").read_text())
    steps = [s.get("run", s.get("uses", "")) for s in workflow["jobs"]["pipeline"]["steps"]]
    assert "dvc repro" in steps and any(s.startswith("pytest") for s in steps)
    upload = next(
        s for s in workflow["jobs"]["pipeline"]["steps"] if "upload-artifact" in s.get("uses", "")
    )
    assert upload["with"]["path"] == "reports/run.html"
    assert readme_commands(initialised)[0] == "dvc exp run && valuegate show"
    # params.yaml is what `valuegate check` accepts (fresh: composed from this conf/); in
    # process (its process is not what is checked: tests/test_bad_inputs.py runs it as one)
    monkeypatch.chdir(initialised)
    assert cli.main(["check"]) == 0, capsys.readouterr().err


def test_init_refuses_a_folder_in_use_and_an_unknown_example(tmp_path, capsys):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    assert cli.main(["init", str(tmp_path / "used")]) != 0
    assert "is not empty" in capsys.readouterr().err
    assert (tmp_path / "used" / "notes.txt").read_text() == "mine"
    with pytest.raises(SystemExit):  # argparse: the choices are listed
        cli.main(["init", str(tmp_path / "new"), "--example", "titanic"])
    assert "german-credit" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


@pytest.mark.slow
def test_the_generated_readmes_first_command_runs(tmp_path: Path):
    """README command 1 of a new project, end to end (`dvc exp run && valuegate show`).

    On the regression example: this one run is also the suite's end-to-end check of the
    regression path through every stage (the German credit example, binary, is the shared
    full run of tests/conftest.py `ran_project`); one pipeline run instead of two."""
    directory = tmp_path / "fresh"
    # in process: `valuegate init` as a process is not what is checked (the module's
    # fixture and test_init_writes_a_committed_git_and_dvc_project check what it writes)
    assert cli.main(["-q", "init", str(directory), "--example", "diabetes"]) == 0
    first = readme_commands(directory)[0]
    assert first == "dvc exp run && valuegate show"  # the same command for every example
    done = subprocess.run(
        first, shell=True, cwd=directory, env=tool_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, f"{first}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "EUR" in done.stdout  # valuegate show's table, in money
    assert (directory / "reports" / "run.html").is_file()

    metrics = json.loads((directory / "metrics" / "evaluate.json").read_text())
    assert list(metrics["models"]) == MODELS
    for record in metrics["models"].values():
        assert record["value_per_period"] <= 0  # value = -cost
        assert "offset" in record and "rmse" in record
    dummy, linear = metrics["models"]["dummy"], metrics["models"]["linear"]
    assert linear["value_per_period"] > dummy["value_per_period"]
    # under-prediction costs 4x over-prediction: the chosen offset shifts predictions up
    assert linear["offset"] > 0
