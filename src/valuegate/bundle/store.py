"""Save, verify and load bundle directories; the loaded `Bundle` scores rows and `decide`
turns scores into decisions with the value model."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from valuegate.artifacts import load_pipeline, save_pipeline
from valuegate.bundle.encoder import Encoder, compile_encoder, final_xgboost
from valuegate.bundle.validation import probe_pipeline
from valuegate.business import ValueModel, value_model_from_record
from valuegate.calibration import apply_calibration
from valuegate.errors import ArtifactError, ConfigError
from valuegate.hashing import sha256_file
from valuegate.io import atomic_dir, atomic_write_text, to_json

FORMAT = "valuegate-bundle/1"
MANIFEST = "manifest.json"
PIPELINE = "pipeline.skops"
BOOSTER = "booster.ubj"
HOT_XGB = "xgboost_numpy"
HOT_PIPELINE = "sklearn_pipeline"


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("valuegate", "scikit-learn", "xgboost-cpu", "xgboost", "numpy", "pandas",
                 "skops", "pyarrow"):  # fmt: skip
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def created_time() -> str:
    """A bundle's creation time, UTC, ISO 8601. SOURCE_DATE_EPOCH (seconds; the
    reproducible-builds convention) fixes it, so a rebuild can give the same bytes."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    try:
        moment = time.gmtime(int(epoch)) if epoch else time.gmtime()
    except (ValueError, OverflowError, OSError):
        raise ConfigError(
            f"SOURCE_DATE_EPOCH={epoch!r} is not a whole number of seconds since 1970-01-01; "
            "unset it or give e.g. SOURCE_DATE_EPOCH=1700000000."
        ) from None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", moment)


def git_revision(cwd: str | Path = ".") -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


# --------------------------------------------------------------------------- the bundle


@dataclass
class Bundle:
    """A loaded, verified bundle."""

    path: Path
    manifest: dict[str, Any]
    pipeline: Any
    booster: Any | None
    encoder: Encoder | None

    @property
    def version(self) -> str:
        return str(self.manifest.get("version") or self.path.name)

    @property
    def task(self) -> str:
        return self.manifest["model"]["task"]

    @property
    def fields(self) -> list[dict[str, Any]]:
        return self.manifest["input"]["fields"]

    @property
    def features(self) -> list[str]:
        return [f["name"] for f in self.fields if f.get("role") != "amount"]

    @property
    def amount_column(self) -> str | None:
        return self.manifest["input"].get("amount_column")

    @property
    def operating_point(self) -> tuple[str, float]:
        point = self.manifest["decision"]
        return point["kind"], float(point["value"])

    @property
    def hot_path(self) -> str:
        return self.manifest["scoring"]["hot_path"]

    @cached_property
    def value_model(self) -> ValueModel:
        """The value model of the manifest's task and objective, built by the same code as
        from the config (`business.value_model_from_record`)."""
        try:
            return value_model_from_record(self.task, self.manifest["objective"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(
                f"{self.path / MANIFEST}: its objective does not make a value model ({exc})"
            ) from None

    def _raw_scores(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.inplace_predict(x), dtype=float).reshape(-1)

    def calibrate(self, scores: np.ndarray) -> np.ndarray:
        """Raw model scores (n,) -> the calibrated scores (n,) the threshold applies to: the
        manifest's `calibration`, fitted on out-of-fold training scores (contract C);
        bundles without one score unchanged."""
        return apply_calibration(self.manifest.get("calibration"), scores)

    def score_record(self, record: dict[str, Any]) -> float:
        """One validated record -> calibrated score (numpy hot path for xgboost)."""
        if self.encoder is not None:
            return float(self.calibrate(self._raw_scores(self.encoder.encode_record(record)))[0])
        return float(self.score_frame(pd.DataFrame([record]))[0])

    def score_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Validated rows (a DataFrame holding the feature columns) -> calibrated scores,
        shape (n,)."""
        return self.calibrate(self._uncalibrated_frame(frame))

    def _uncalibrated_frame(self, frame: pd.DataFrame) -> np.ndarray:
        if self.encoder is not None:
            return self._raw_scores(self.encoder.encode_frame(frame))
        from valuegate.models import predict_scores

        features = frame[self.features].copy()
        for field in self.fields:
            if field["dtype"] == "category" and field["name"] in features:
                features[field["name"]] = features[field["name"]].astype(object)
        with warnings.catch_warnings():
            # unseen levels are expected (counted by check_chunk), not a warning per chunk
            warnings.filterwarnings("ignore", message="Found unknown categories")
            return predict_scores(self.pipeline, features, self.task)


def decide(
    bundle: Bundle, scores: np.ndarray, amount: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Decision and expected value per row at the bundle's operating point, from its value
    model (`Bundle.value_model`, business.py's `decide`): binary, decision = score >=
    threshold (True = take the objective's action) and the decision's expected value
    (currency per case); regression, decision = prediction + offset and the expected value
    NaN (it needs the outcome). Shapes (n,)."""
    _kind, point = bundle.operating_point
    return bundle.value_model.decide(np.asarray(scores, dtype=float), point, amount)


# --------------------------------------------------------------------------- save / load


def _write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    text = to_json(manifest, digits=17)
    atomic_write_text(directory / MANIFEST, text)
    atomic_write_text(directory / (MANIFEST + ".sha256"), sha256_file(directory / MANIFEST) + "\n")


def save_bundle(
    target: str | Path,
    pipeline: Any,
    manifest: dict[str, Any],
    check_frame: pd.DataFrame,
    extra_files: dict[str, bytes] | None = None,
) -> dict[str, Any]:
    """Write a bundle directory atomically (temp dir + rename). `extra_files` (name ->
    bytes, e.g. the row lineage) are written and hashed like every file. `manifest` holds the
    descriptive fields; this adds scoring, files and hashes. `check_frame` (validated rows)
    proves the numpy encoder scores exactly as the pipeline; else the pipeline is the path."""
    from valuegate.models import predict_scores

    target = Path(target)
    manifest = dict(manifest)
    manifest["format"] = FORMAT
    manifest.setdefault("created", created_time())
    manifest["libraries"] = library_versions()
    # What the fitted pipeline itself accepts (missing values, unseen levels) is what
    # batch scoring and the service accept: ask it, on the check rows.
    manifest["input"] = {
        **manifest["input"],
        "fields": probe_pipeline(
            pipeline, manifest["input"]["fields"], check_frame, manifest["model"]["task"]
        ),
    }
    encoder_spec = compile_encoder(pipeline)
    scoring: dict[str, Any] = {"hot_path": HOT_PIPELINE, "encoder": None}
    with atomic_dir(target) as tmp:
        save_pipeline(pipeline, tmp / PIPELINE)
        for name, data in (extra_files or {}).items():
            (tmp / name).write_bytes(data)  # inside the temporary dir: atomic with it
        if encoder_spec is not None:
            booster = final_xgboost(pipeline).get_booster()
            booster.save_model(str(tmp / BOOSTER))
            features = [f["name"] for f in manifest["input"]["fields"] if f.get("role") != "amount"]
            probe = Bundle(tmp, manifest, pipeline, booster, Encoder(encoder_spec))
            # the same calibration on both sides: the hot path must match the pipeline
            expected = probe.calibrate(
                predict_scores(pipeline, check_frame[features], manifest["model"]["task"])
            )
            got = probe.score_frame(check_frame)
            single = np.array(
                [probe.score_record(r) for r in check_frame[features].head(50).to_dict("records")]
            )
            diff = float(np.max(np.abs(got - expected), initial=0.0))
            diff = max(diff, float(np.max(np.abs(single - expected[:50]), initial=0.0)))
            if diff == 0.0:
                scoring = {
                    "hot_path": HOT_XGB,
                    "encoder": encoder_spec,
                    "verified_rows": len(check_frame),
                }
            else:
                (tmp / BOOSTER).unlink()
                scoring["fallback_reason"] = f"numpy encoder differs by {diff:g} from the pipeline"
        else:
            scoring["fallback_reason"] = (
                "the final model is not impute + one-hot -> xgboost; rows are scored by the "
                "sklearn pipeline (a DataFrame per request)"
            )
        manifest["scoring"] = scoring
        manifest["files"] = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        _write_manifest(tmp, manifest)
    return manifest


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The manifest, after checking its own hash (no other file is read)."""
    directory = Path(directory)
    path = directory / MANIFEST
    sidecar = directory / (MANIFEST + ".sha256")
    if not path.is_file() or not sidecar.is_file():
        raise ArtifactError(f"{directory} is not a complete bundle (no {MANIFEST} + its hash).")
    if sha256_file(path) != sidecar.read_text().strip():
        raise ArtifactError(f"{path} was altered after the bundle was written; refusing it.")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise ArtifactError(f"{path}: unknown bundle format {manifest.get('format')!r}.")
    return manifest


def verify_bundle(directory: str | Path) -> dict[str, Any]:
    """Check every file's sha256 against the manifest; refuse missing, altered or extra files."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    listed = manifest["files"]
    present = {
        p.name for p in directory.iterdir() if p.is_file() and not p.name.startswith(MANIFEST)
    }
    extra = present - set(listed)
    if extra:
        raise ArtifactError(f"{directory} holds files its manifest does not list: {sorted(extra)}.")
    for name, expected in listed.items():
        path = directory / name
        if not path.is_file():
            raise ArtifactError(f"{directory}: {name} is missing; the bundle is incomplete.")
        actual = sha256_file(path)
        if actual != expected:
            raise ArtifactError(
                f"{path} was altered after the bundle was written (sha256 {actual[:12]}..., "
                f"manifest says {expected[:12]}...); refusing to load it."
            )
    return manifest


def load_bundle(directory: str | Path) -> Bundle:
    """Load a bundle, verifying every hash and refusing untrusted types (skops)."""
    directory = Path(directory)
    manifest = verify_bundle(directory)
    pipeline = load_pipeline(directory / PIPELINE)
    booster = encoder = None
    if manifest["scoring"]["hot_path"] == HOT_XGB:
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(str(directory / BOOSTER))
        encoder = Encoder(manifest["scoring"]["encoder"])
    return Bundle(directory, manifest, pipeline, booster, encoder)
