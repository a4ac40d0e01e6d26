"""The model registry: bundles by version and a champion pointer.

    models/registry/<data.name>/     (deploy.registry)
        v1/, v2/, ...        bundles (bundle.py), each written atomically
        champion.json        {"champion": "v2", "history": ["v1", "v2"]}

The `package` stage declares the registry as a DVC output with `persist: true` (DVC would
otherwise delete it before each run) and `cache: false`, so it is versioned with git and
survives reruns. A directory that starts with "." is an unfinished write and is ignored.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from valuegate.bundle import Bundle, load_bundle, read_manifest
from valuegate.errors import ArtifactError
from valuegate.io import atomic_write_json

POINTER = "champion.json"
VERSION = re.compile(r"^v(\d+)$")


class Registry:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    # ------------------------------------------------------------------ reading
    def versions(self) -> list[str]:
        if not self.root.is_dir():
            return []
        found = [p.name for p in self.root.iterdir() if p.is_dir() and VERSION.match(p.name)]
        return sorted(found, key=lambda v: int(v[1:]))

    def _pointer(self) -> dict[str, Any]:
        path = self.root / POINTER
        if not path.is_file():
            return {"champion": None, "history": []}
        return json.loads(path.read_text())

    @property
    def champion(self) -> str | None:
        return self._pointer()["champion"]

    def path_of(self, name: str) -> Path:
        """`champion`, a version (`v3`) or a bundle directory path -> its directory."""
        if name == "champion":
            version = self.champion
            if version is None:
                raise ArtifactError(
                    f"the registry {self.root} has no champion yet: run the pipeline "
                    "(`dvc exp run`) or `valuegate models promote <version>`."
                )
            name = version
        if VERSION.match(name):
            path = self.root / name
            if not path.is_dir():
                raise ArtifactError(
                    f"{name} is not in the registry {self.root} (have {self.versions() or 'none'})."
                )
            return path
        path = Path(name)
        if path.is_dir():
            return path
        raise ArtifactError(
            f"--model {name!r}: not 'champion', a version (v1, v2, ...) or a bundle directory."
        )

    def load(self, name: str = "champion") -> Bundle:
        return load_bundle(self.path_of(name))

    def listing(self) -> list[dict[str, Any]]:
        champion = self.champion
        rows = []
        for version in self.versions():
            try:
                manifest = read_manifest(self.root / version)
            except ArtifactError as exc:
                rows.append(
                    {"version": version, "champion": version == champion, "error": str(exc)}
                )
                continue
            test = manifest.get("figures", {}).get("test", {})
            rows.append(
                {
                    "version": version,
                    "champion": version == champion,
                    "created": manifest.get("created"),
                    "model": manifest["model"]["name"],
                    "data": manifest.get("data", {}).get("name"),
                    "test_value_per_period": test.get("value_per_period"),
                    "hot_path": manifest["scoring"]["hot_path"],
                }
            )
        return rows

    def holding(self, model: str, predictions_sha256: str) -> str | None:
        """The version that already holds this model (same name, same predictions), if any."""
        for version in self.versions():
            try:
                manifest = read_manifest(self.root / version)
            except ArtifactError:
                continue
            held = manifest.get("model", {})
            if held.get("name") == model and held.get("predictions_sha256") == predictions_sha256:
                return version
        return None

    # ------------------------------------------------------------------ writing
    def next_version(self) -> str:
        versions = self.versions()
        return f"v{int(versions[-1][1:]) + 1 if versions else 1}"

    def ensure(self) -> None:
        """Create the registry (an empty champion pointer) if it does not exist yet."""
        if not (self.root / POINTER).is_file():
            self.root.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.root / POINTER, {"champion": None, "history": []})

    def promote(self, version: str) -> None:
        if not VERSION.match(version) or not (self.root / version).is_dir():
            raise ArtifactError(
                f"cannot promote {version!r}: not in the registry {self.root} "
                f"(have {self.versions() or 'none'})."
            )
        load_bundle(self.root / version)  # a champion must load and verify
        pointer = self._pointer()
        history = [v for v in pointer["history"] if v != version] + [version]
        atomic_write_json(self.root / POINTER, {"champion": version, "history": history})

    def rollback(self) -> str:
        """Make the previous champion the champion again; return it."""
        pointer = self._pointer()
        history = pointer["history"]
        if len(history) < 2:
            raise ArtifactError(
                f"nothing to roll back to: the registry {self.root} has had "
                f"{len(history)} champion(s)."
            )
        history = history[:-1]
        atomic_write_json(self.root / POINTER, {"champion": history[-1], "history": history})
        return history[-1]
