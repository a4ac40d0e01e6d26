"""The `score` and `package` stages' DVC deps list every module that decides what they
write (issue 14: the Dask scoring path `src/valuegate/distributed/score.py` was missing from
score's, so a change to it did not rerun the stage; package's lacked the value model and the
calibration). Read from the source, no stage runs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

SRC = ROOT / "src"
# Each stage and the modules it works through. Their direct valuegate imports must be
# deps; imports of imports are not followed (as for every stage's deps in dvc.yaml).
STAGE_PATHS = {
    "score": (
        "valuegate.stages.score",
        "valuegate.pipeline.score",
        "valuegate.serving.batch",
        "valuegate.distributed.score",
        "valuegate.bundle",
    ),
    "package": (
        "valuegate.stages.package",
        "valuegate.pipeline.package",
        "valuegate.deploy",
        "valuegate.bundle",
        "valuegate.row_lineage",
        "valuegate.monitor.profile",
    ),
}
# Imported by the score path but not deciding a row or a value of its outputs.
NOT_DEPS = {
    "valuegate.config": "loads params.yaml; the stage's params are declared apart",
    "valuegate.config.schema": "config types and checks; the params are declared apart",
    "valuegate.errors": "error types: messages, not outputs",
    "valuegate.io": "atomic writes: how the outputs are written, not what",
    "valuegate.paths": "the output paths, declared as outs",
    "valuegate.logs": "progress bars and logging",
    "valuegate.hashing": "checks a bundle file's digest when loading it",
    "valuegate.artifacts": "loads the saved pipeline: the bytes are the models/registry dep",
    "valuegate.registry": "finds the champion: its files are the models/registry dep",
    "valuegate.stages.common": "runs the stage and writes its records atomically",
    "valuegate.pipeline.steps": "re-exports pipeline/score.py's functions (a dep)",
    "valuegate.distributed": "opens the Dask client (cluster.py): where, not what",
    "valuegate.distributed.cluster": "opens the Dask client: where, not what",
}


def module_file(name: str) -> Path:
    path = SRC / Path(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def imports(name: str) -> set[str]:
    """The valuegate modules `name` imports anywhere (function-level imports too); for a
    package, every module in it."""
    path = SRC / Path(*name.split("."))
    files = sorted(path.rglob("*.py")) if path.is_dir() else [module_file(name)]
    found: set[str] = set()
    for file in files:
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.startswith("valuegate"):
                    # `from valuegate.pipeline import steps` imports the module steps
                    for alias in node.names:
                        sub = f"{node.module}.{alias.name}"
                        found.add(sub if module_file(sub).exists() else node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("valuegate")}
    return found


def covered(name: str, deps: list[str]) -> bool:
    """A dep is the module's file, or a directory holding it."""
    file = module_file(name).relative_to(ROOT).as_posix()
    return any(file == d or file.startswith(d.rstrip("/") + "/") for d in deps)


@pytest.mark.parametrize("stage_name", sorted(STAGE_PATHS))
def test_a_stage_depends_on_every_module_that_decides_its_output(stage_name: str):
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage_name]
    deps = [d for d in stage["deps"] if isinstance(d, str)]
    path = STAGE_PATHS[stage_name]
    for name in path:
        assert covered(name, deps), f"{stage_name}: {module_file(name)} is not a dep"
    missing = sorted(
        f"{name} (imported by {source})"
        for source in path
        for name in imports(source)
        if name not in NOT_DEPS and not covered(name, deps)
    )
    assert not missing, f"{stage_name} stage deps lack: {missing}"
