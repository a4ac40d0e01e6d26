"""`valuegate init DIR [--example NAME]`: a new git + DVC project that runs as is.

The templates are this repository's own files, not copies of them: `conf/`, `dvc.yaml`
(as `dvc/pipeline.yaml`), `.dvc/config` and `.dvc/plots/` (the offline plots page), the
example's data under `data/raw/` and its request example. They are found under
`valuegate/_project/`, a folder of symlinks into the repository: in a source tree (an
editable install, or running from a clone) they resolve to the repository's files, and a
wheel build copies what they point at into the package (pyproject: package-data). The
generated project then gets:

- `conf/` with the chosen example's data and objective as the defaults (the other
  examples' data and objective files are left out: their data is not there);
- `dvc.yaml` without the dependencies on valuegate's source files (the project has none:
  after upgrading valuegate, `dvc repro -f` reruns everything);
- `params.yaml` composed from that `conf/` (what `dvc exp run` would write);
- a README with its two commands, `tests/test_project.py`, `requirements.txt` and a GitHub
  Actions workflow that installs them, runs `dvc repro` and the tests, and uploads
  `reports/run.html`;
- `git init` + one commit (DVC experiments need a commit to start from).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from valuegate.errors import ValuegateError

log = logging.getLogger(__name__)


class InitError(ValuegateError):
    """`valuegate init` cannot make the project (the message says why and what to do)."""

    kind = "init error"


@dataclass(frozen=True)
class Example:
    """One embedded example: its config group choices and its data file."""

    data: str  # conf/data/<data>.yaml (also conf/objective/<data>*.yaml)
    objective: str
    files: tuple[str, ...]  # under data/raw/
    what: str


EXAMPLES: dict[str, Example] = {
    "german-credit": Example(
        "german_credit",
        "german_credit",
        ("german_credit.csv",),
        "credit applications (1,000 rows, binary: reject a likely bad applicant), EUR/month",
    ),
    "employment": Example(
        "employment",
        "employment",
        ("employment_ma.parquet",),
        "US Census employment, Massachusetts 2015-2018 (277,677 rows, time-ordered, binary: "
        "an outreach programme), USD/month",
    ),
    "diabetes": Example(
        "diabetes",
        "diabetes",
        ("diabetes.csv",),
        "diabetes progression (442 rows, regression: an asymmetric cost of error)",
    ),
}
DEFAULT_EXAMPLE = "german-credit"
# the repository's dvc.yaml, by another name: DVC reads every file called dvc.yaml in a
# repository as a pipeline, this one too (its foreach needs params this folder lacks)
PIPELINE = Path("dvc") / "pipeline.yaml"
REQUEST_EXAMPLES = {"german-credit": ("applicant.json",)}  # docs/examples/, for /docs


def template_root() -> Path:
    """Where the templates are: the package's `_project/` (symlinks into the repository in
    a source tree, their contents in a wheel)."""
    root = Path(str(resources.files("valuegate") / "_project"))
    if not (root / "conf" / "config.yaml").is_file() or not (root / PIPELINE).is_file():
        raise InitError(
            f"valuegate's project templates are missing from {root} (a broken install): "
            "reinstall valuegate (pip install --force-reinstall valuegate)."
        )
    return root


def _copy(source: Path, target: Path) -> None:
    """A file or a folder, following symlinks (the templates are symlinks)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    else:
        shutil.copyfile(source, target)


def project_dvc_yaml(text: str) -> str:
    """The repository's dvc.yaml without its dependencies on valuegate's own source files
    (`- src/valuegate/...` lines): a project has valuegate installed, not its source."""
    return "".join(
        line
        for line in text.splitlines(keepends=True)
        if not re.match(r"\s*-\s+src/valuegate(/|\s*$)", line)
    )


def project_config_yaml(text: str, example: Example) -> str:
    """conf/config.yaml with the example's data and objective as the defaults."""
    out = re.sub(r"(?m)^(\s*- data:\s*)\S+", rf"\g<1>{example.data}", text)
    return re.sub(r"(?m)^(\s*- objective:\s*)\S+", rf"\g<1>{example.objective}", out)


def data_readme(text: str, files: tuple[str, ...]) -> str:
    """The sections of data/raw/README.md that describe `files`."""
    head, *sections = re.split(r"(?m)^(?=## )", text)
    kept = [s for s in sections if any(f"`{name}`" in s.splitlines()[0] for name in files)]
    return head + "".join(kept)


def readme(name: str, example_name: str, example: Example) -> str:
    return f"""# {name}

A valuegate project: an ML model gated on business value. Made by
`valuegate init --example {example_name}`:
{example.what}.

```sh
dvc exp run && valuegate show
valuegate check && dvc repro && pytest -q
```

The first command runs the whole pipeline (prepare, assess, baselines, candidates, the
gate, tuning, evaluation, the deploy gate) and prints every model's value per period; the
business report is `reports/run.html`, `dvc plots show` draws the curves (offline). The
second validates the config and the data, reproduces the pipeline and runs the project's
tests, as CI does (`.github/workflows/valuegate.yml`). Both need valuegate installed
(`pip install -r requirements.txt`) in a git clone of this project.

Edit `conf/` (never `params.yaml`, which `dvc exp run` composes from it): the objective
(`conf/objective/{example.objective}.yaml`: what each decision is worth), the data
(`conf/data/{example.data}.yaml`: your own CSV or Parquet under `data/raw/`), the
candidates (`conf/model/`). `valuegate --help` lists the commands.
"""


def readme_commands(directory: Path) -> list[str]:
    """The shell commands of the project's README (its first ```sh block), in order."""
    text = (Path(directory) / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", text, re.S)
    return [line for line in (block.group(1).splitlines() if block else []) if line.strip()]


TEST_FILE = '''"""The project's checks, run by CI after `dvc repro` (.github/workflows/)."""

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_config_and_data_are_valid():
    subprocess.run(["valuegate", "check"], cwd=ROOT, check=True)


def test_the_final_model_is_valued_on_test():
    path = ROOT / "reports" / "evaluation.json"
    if not path.is_file():
        pytest.skip("run the pipeline first: dvc repro")
    final = json.loads(path.read_text())["final"]
    assert final["test"]["value_per_period"] is not None, final
'''

WORKFLOW = """# Runs the pipeline and the project's tests on every push; the business report of
# the run is kept as an artifact (reports/run.html).
name: valuegate
on:
  push:
  pull_request:
jobs:
  pipeline:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
          cache: pip
      - run: pip install -r requirements.txt
      - run: valuegate check
      - run: dvc repro
      - run: pytest -q
      - uses: actions/upload-artifact@v4
        if: always()
        with:
          name: run-report
          path: reports/run.html
          if-no-files-found: warn
"""

GITIGNORE = """.venv/
__pycache__/
.pytest_cache/
logs/
multirun/
outputs/
dvc_plots/
"""


def _run(cmd: list[str], cwd: Path, what: str) -> None:
    try:
        subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise InitError(
            f"{what}: `{cmd[0]}` is not installed (valuegate init needs git)."
        ) from None
    except subprocess.CalledProcessError as exc:
        raise InitError(f"{what} failed: {(exc.stderr or exc.stdout).strip()}") from None


def _git_identity(cwd: Path) -> dict[str, str]:
    """The environment for the first commit: the user's git identity, or valuegate's when
    none is configured (a commit without one fails; the user can amend it)."""
    env = dict(os.environ)
    found = subprocess.run(
        ["git", "config", "user.email"], cwd=cwd, capture_output=True, text=True
    ).stdout.strip()
    if not found:
        for role in ("AUTHOR", "COMMITTER"):
            env.setdefault(f"GIT_{role}_NAME", "valuegate init")
            env.setdefault(f"GIT_{role}_EMAIL", "valuegate-init@localhost")
    return env


def init_project(directory: Path, example_name: str = DEFAULT_EXAMPLE) -> Path:
    """Write a new project into `directory` (which must not exist, or be empty): see the
    module docstring for what it holds. Returns the directory. Nothing is left behind when
    a step fails (the project is built in a sibling temp folder and renamed at the end)."""
    if example_name not in EXAMPLES:
        raise InitError(
            f"--example {example_name!r} is not an example; choose one of {', '.join(EXAMPLES)}."
        )
    example = EXAMPLES[example_name]
    directory = Path(directory)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise InitError(f"{directory} already exists and is not empty: give a new folder.")
    source = template_root()
    directory.parent.mkdir(parents=True, exist_ok=True)
    work = directory.with_name(f".{directory.name}.valuegate-init-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    try:
        _build(work, source, example_name, example, directory.resolve().name)
        if directory.exists():
            directory.rmdir()  # empty, checked above
        work.rename(directory)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return directory


def _build(work: Path, source: Path, example_name: str, example: Example, name: str) -> None:
    work.mkdir()
    # conf/: every group, but of data and objective only the example's files
    _copy(source / "conf", work / "conf")
    for path in (work / "conf" / "data").glob("*.yaml"):
        if path.stem != example.data:
            path.unlink()
    for path in (work / "conf" / "objective").glob("*.yaml"):
        if not path.stem.startswith(example.objective):
            path.unlink()
    shutil.rmtree(work / "conf" / "experiment", ignore_errors=True)  # presets of the others
    config = work / "conf" / "config.yaml"
    config.write_text(project_config_yaml(config.read_text(), example))
    (work / "dvc.yaml").write_text(project_dvc_yaml((source / PIPELINE).read_text()))
    for file in example.files:
        _copy(source / "data" / file, work / "data" / "raw" / file)
    if (source / "data" / "README.md").is_file():
        text = data_readme((source / "data" / "README.md").read_text(), example.files)
        (work / "data" / "raw" / "README.md").write_text(text)
    # The prepare stage's dependency on appended labelled windows (docs/retrain.md).
    from valuegate.retrain.labels import APPENDED, APPENDED_README

    (work / APPENDED).mkdir(parents=True, exist_ok=True)
    (work / APPENDED / "README.md").write_text(APPENDED_README)
    for file in REQUEST_EXAMPLES.get(example_name, ()):
        _copy(source / "examples" / file, work / "docs" / "examples" / file)
    (work / "README.md").write_text(readme(name, example_name, example))
    (work / "tests").mkdir()
    (work / "tests" / "test_project.py").write_text(TEST_FILE)
    (work / "requirements.txt").write_text(
        "# valuegate, and pytest for tests/ (CI: .github/workflows/valuegate.yml)\n"
        f"valuegate=={_version()}\npytest>=8\n"
    )
    (work / ".github" / "workflows").mkdir(parents=True)
    (work / ".github" / "workflows" / "valuegate.yml").write_text(WORKFLOW)
    (work / ".gitignore").write_text(GITIGNORE)

    _run(["git", "init", "-q"], work, "git init")
    _run([sys.executable, "-m", "dvc", "init", "-q"], work, "dvc init")
    # valuegate's DVC settings: Hydra composition of conf/, the offline plots page
    _copy(source / "dvc" / "config", work / ".dvc" / "config")
    _copy(source / "dvc" / "plots", work / ".dvc" / "plots")
    _compose(work)
    _run(["git", "add", "-A"], work, "git add")
    try:
        subprocess.run(
            ["git", "commit", "-q", "-m", f"valuegate init --example {example_name}"],
            cwd=work,
            env=_git_identity(work),
            check=True,
            capture_output=True,
            text=True,
        )
    except subprocess.CalledProcessError as exc:
        raise InitError(f"git commit failed: {(exc.stderr or exc.stdout).strip()}") from None


def _compose(work: Path) -> None:
    """params.yaml from the new conf/, as `dvc exp run` would compose it."""
    from valuegate.config import compose_config, write_params
    from valuegate.config.loading import validate

    raw = compose_config(work / "conf", [])
    validate(raw, source=f"{work.name}/conf")
    write_params(raw, work / "params.yaml")


def _version() -> str:
    from valuegate.cli import package_version

    return package_version()
