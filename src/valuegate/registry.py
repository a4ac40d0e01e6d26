"""The model registry: bundles by version and a champion pointer.

    models/registry/<data.name>/     (deploy.registry)
        v1/, v2/, ...        bundles (valuegate.bundle), each written atomically
        champion.json        {"champion": "v2", "history": ["v1", "v2"]} (+ "demoted": the
                             versions rolled back from)
        budget.json          the deploy gate's looks at each test split (deploy.py)

The `package` stage declares the registry as a DVC output with `persist: true` (DVC would
otherwise delete it before each run) and `cache: false`, so it is versioned with git and
survives reruns. A directory that starts with "." is an unfinished write and is ignored.

Writers hold the registry's lock (an exclusive `flock` on its directory, released by the
kernel when the process ends, SIGKILL included) while they write. Whoever takes the lock
first removes what a killed writer left: temporary names of `io.atomic_path` /
`io.atomic_dir` for the registry's own files (`.v3.<random>.tmp`, `.champion.json.<random>.tmp`,
`.budget.json.<random>.tmp`, `.v3.old.<pid>`), which no live writer can own while we hold it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from valuegate.bundle import MANIFEST, Bundle, load_bundle, read_manifest, sha256_file
from valuegate.errors import ArtifactError
from valuegate.io import atomic_write_json

POINTER = "champion.json"
BUDGET = "budget.json"
VERSION = re.compile(r"^v(\d+)$")
# What io.atomic_path / io.atomic_dir leave when killed, for the registry's own names only
# (mkstemp/mkdtemp add 8 characters of [a-z0-9_]; atomic_dir's `.old.<pid>` is the previous
# bundle moved aside during a replace).
STALE = re.compile(r"^\.(v\d+|champion\.json|budget\.json)\.([a-z0-9_]{8}\.tmp|old\.\d+)$")
LOCK_WAIT = 60.0  # seconds a writer waits for another to finish before saying who blocks

log = logging.getLogger(__name__)
# Locks this process holds, by registry directory: re-entrant within the process (flock
# locks belong to an open file, so a second open here would wait on ourselves).
_held: dict[Path, list[int]] = {}


class Registry:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    # ------------------------------------------------------------------ the lock
    @contextlib.contextmanager
    def writing(self, wait: float = LOCK_WAIT) -> Iterator[None]:
        """Hold the registry's write lock (creating the directory); on first taking it,
        remove what killed writers left (`remove_stale`). ArtifactError after `wait`
        seconds if another process keeps it."""
        import fcntl  # POSIX; imported here so reading a registry works everywhere

        self.root.mkdir(parents=True, exist_ok=True)
        key = self.root.resolve()
        if key in _held:
            _held[key][1] += 1
            try:
                yield
            finally:
                _held[key][1] -= 1
            return
        fd = os.open(key, os.O_RDONLY)
        try:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise ArtifactError(
                            f"the registry {self.root} is being written by another process "
                            f"(it holds the lock on the directory) for over {wait:.0f} s: wait "
                            "for it to finish (a `dvc exp run`, `valuegate retrain` or "
                            "`valuegate models promote/rollback`), then retry."
                        ) from None
                    time.sleep(0.1)
            _held[key] = [fd, 1]
            try:
                for path in self.remove_stale():
                    log.warning("registry: removed %s, left by a killed write", path)
                yield
            finally:
                del _held[key]
        finally:
            os.close(fd)  # releases the flock

    def remove_stale(self) -> list[Path]:
        """Delete the registry's own temporary files and directories (`STALE`); return
        them. Only safe under the lock (`writing` calls it): a live writer holds it."""
        removed = []
        for path in sorted(self.root.iterdir()) if self.root.is_dir() else []:
            if not STALE.match(path.name):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
        return removed

    # ------------------------------------------------------------------ reading
    def versions(self) -> list[str]:
        if not self.root.is_dir():
            return []
        found = [p.name for p in self.root.iterdir() if p.is_dir() and VERSION.match(p.name)]
        return sorted(found, key=lambda v: int(v[1:]))

    def _pointer(self) -> dict[str, Any]:
        """The champion pointer; a truncated or hand-broken file is an ArtifactError that
        names the file and the repair (not a traceback)."""
        path = self.root / POINTER
        if not path.is_file():
            return {"champion": None, "history": []}
        try:
            pointer = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            problem = f"is not valid JSON ({exc})"
        else:
            problem = self._pointer_problem(pointer)
            if problem is None:
                return pointer
        versions = self.versions()
        repair = (
            f"`valuegate models promote {versions[-1]}` (or another of {versions}) rewrites it"
            if versions
            else "delete it (the registry holds no bundles)"
        )
        raise ArtifactError(
            f"the champion pointer {path} {problem}: {repair}, or restore it from git "
            f"(`git checkout -- {path}`)."
        )

    def _pointer_problem(self, pointer: Any) -> str | None:
        if not isinstance(pointer, dict):
            return f"holds {type(pointer).__name__}, not an object"
        champion, history = pointer.get("champion"), pointer.get("history")
        if not isinstance(history, list) or not all(isinstance(v, str) for v in history):
            return 'lacks a "history" list of versions'
        if champion is not None and (not isinstance(champion, str) or not VERSION.match(champion)):
            return f"names {champion!r} as the champion, not a version (v1, v2, ...)"
        if champion is not None and not (self.root / champion).is_dir():
            return f"names {champion} as the champion, which is not in the registry"
        return None

    @property
    def champion(self) -> str | None:
        return self._pointer()["champion"]

    def replaced(self, version: str) -> str | None:
        """The champion `version` replaced when it was promoted (the version before it in
        the champion history), or None (it was the first, or never a champion)."""
        history = self._pointer()["history"]
        i = history.index(version) if version in history else 0
        return history[i - 1] if i > 0 else None

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

    def integrity(self, version: str) -> tuple[str, str | None]:
        """("ok" | "tampered" | "broken", what): every file's sha256 against the manifest
        (the manifest against its own hash). Tampered: a file whose bytes no longer match,
        or a file the manifest does not list; broken: an incomplete bundle."""
        directory = self.root / version
        manifest_path = directory / MANIFEST
        sidecar = directory / (MANIFEST + ".sha256")
        if not manifest_path.is_file() or not sidecar.is_file():
            return "broken", f"no {MANIFEST} + its hash (an incomplete bundle)"
        if sha256_file(manifest_path) != sidecar.read_text().strip():
            return "tampered", f"{MANIFEST} no longer matches its sha256"
        try:
            listed = json.loads(manifest_path.read_text()).get("files", {})
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            return "broken", f"{MANIFEST} is not a JSON object"
        altered, missing = [], []
        for name, digest in listed.items():
            path = directory / name
            if not path.is_file():
                missing.append(name)
            elif sha256_file(path) != digest:
                altered.append(name)
        present = {p.name for p in directory.iterdir() if p.is_file()}
        extra = sorted(present - set(listed) - {MANIFEST, MANIFEST + ".sha256"})
        if altered or extra:
            what = [f"{n} no longer matches its sha256" for n in altered]
            what += [f"{n} is not in the manifest" for n in extra]
            return "tampered", "; ".join(what)
        if missing:
            return "broken", f"missing {missing}"
        return "ok", None

    def listing(self) -> list[dict[str, Any]]:
        """One row per version. Reading the pointer may raise ArtifactError (a broken
        champion.json): callers that can go on without it pass through `champion_or_error`."""
        champion, _error = self.champion_or_error()
        rows = []
        for version in self.versions():
            status, what = self.integrity(version)
            if status != "ok":
                rows.append(
                    {
                        "version": version,
                        "champion": version == champion,
                        "status": status,
                        "error": what,
                    }
                )
                continue
            try:
                manifest = read_manifest(self.root / version)
            except ArtifactError as exc:
                rows.append(
                    {
                        "version": version,
                        "champion": version == champion,
                        "status": "broken",
                        "error": str(exc),
                    }
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
                    "status": "ok",
                }
            )
        return rows

    def champion_or_error(self) -> tuple[str | None, str | None]:
        """(champion, None), or (None, the pointer's problem) when champion.json is broken."""
        try:
            return self.champion, None
        except ArtifactError as exc:
            return None, str(exc)

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

    def budget(self) -> dict[str, Any]:
        """The deploy gate's ledger of comparisons per test split (`deploy.budget_attempt`)."""
        path = self.root / BUDGET
        if not path.is_file():
            return {"test_rows": {}}
        try:
            ledger = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            ledger, problem = None, f"is not valid JSON ({exc})"
        else:
            problem = None
        if not isinstance(ledger, dict) or not isinstance(ledger.get("test_rows"), dict):
            raise ArtifactError(
                f"the deploy budget {path} {problem or 'lacks a test_rows object'}: restore "
                f"it from git (`git checkout -- {path}`); deleting it forgets every earlier "
                "comparison on the test rows (their budget would be spent again)."
            )
        return ledger

    def write_budget(self, ledger: dict[str, Any]) -> None:
        with self.writing():
            atomic_write_json(self.root / BUDGET, ledger)

    # ------------------------------------------------------------------ writing
    def next_version(self) -> str:
        versions = self.versions()
        return f"v{int(versions[-1][1:]) + 1 if versions else 1}"

    def ensure(self) -> None:
        """Create the registry (an empty champion pointer) if it does not exist yet; remove
        what a killed writer left (`writing`)."""
        with self.writing():
            if not (self.root / POINTER).is_file():
                atomic_write_json(self.root / POINTER, {"champion": None, "history": []})

    def save(self, version: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """`bundle.save_bundle` of the bundle `version` (v1, v2, ...), under the lock;
        returns its manifest."""
        from valuegate.bundle import save_bundle

        if not VERSION.match(version):
            raise ArtifactError(f"cannot save {version!r} in the registry: not a version (v1, ...)")
        with self.writing():
            return save_bundle(self.root / version, *args, **kwargs)

    def promote(self, version: str) -> None:
        """Make `version` the champion. Also the repair of a broken champion.json: the
        history it held is then lost (the new pointer starts from `version`)."""
        if not VERSION.match(version) or not (self.root / version).is_dir():
            raise ArtifactError(
                f"cannot promote {version!r}: not in the registry {self.root} "
                f"(have {self.versions() or 'none'})."
            )
        load_bundle(self.root / version)  # a champion must load and verify
        with self.writing():
            try:
                history = self._pointer()["history"]
            except ArtifactError:
                history = []
            history = [v for v in history if v != version] + [version]
            pointer = {"champion": version, "history": history}
            demoted = [v for v in self._demoted() if v != version]
            if demoted:
                pointer["demoted"] = demoted
            atomic_write_json(self.root / POINTER, pointer)

    def _demoted(self) -> list[str]:
        """Versions rolled back from (so never promoted again without a person)."""
        try:
            demoted = self._pointer().get("demoted", [])
        except ArtifactError:
            return []
        return [v for v in demoted if isinstance(v, str)] if isinstance(demoted, list) else []

    def unfinished_promotion(self, version: str) -> bool:
        """Was `version` packaged to be promoted by a run that stopped before promoting it?
        Its manifest's deploy gate said promote, and it was never the champion (not in the
        pointer's history, nor rolled back from): a rerun finishes the promotion instead
        of leaving a passing challenger unpromoted. A version a person rolled back from,
        or one packaged without promotion, is never promoted this way."""
        try:
            pointer = self._pointer()
            manifest = read_manifest(self.root / version)
        except ArtifactError:
            return False
        if version in pointer["history"] or version in self._demoted():
            return False
        gate = manifest.get("deploy_gate", {})
        return bool(isinstance(gate, dict) and gate.get("promote"))

    def rollback(self) -> str:
        """Make the previous champion the champion again; return it."""
        if not self.root.is_dir():  # not created by a failed rollback
            raise ArtifactError(f"nothing to roll back to: there is no registry {self.root}.")
        with self.writing():
            pointer = self._pointer()
            history = pointer["history"]
            if len(history) < 2:
                raise ArtifactError(
                    f"nothing to roll back to: the registry {self.root} has had "
                    f"{len(history)} champion(s)."
                )
            demoted = [v for v in self._demoted() if v != history[-1]] + [history[-1]]
            history = history[:-1]
            atomic_write_json(
                self.root / POINTER,
                {"champion": history[-1], "history": history, "demoted": demoted},
            )
        return history[-1]
