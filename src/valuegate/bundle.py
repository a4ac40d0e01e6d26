"""The model bundle: one directory that scores raw rows and makes the business decision.

Layout (every file's sha256 is in the manifest; the manifest's own hash is beside it):

    manifest.json          input schema, decision threshold, objective and value figures,
                           metrics, config, data fingerprint, library versions, git revision,
                           the numpy encoder (below) and the sha256 of every other file
    manifest.json.sha256
    pipeline.skops         the fitted sklearn pipeline (preprocessing + estimator), skops
                           with valuegate's trusted-type list (artifacts.py), never pickle
    pipeline.skops.sha256
    booster.ubj            xgboost models only: the booster in xgboost's own UBJSON format

Why skops + UBJSON: the pipeline holds sklearn preprocessing that xgboost's format cannot
hold, and skops refuses any type outside an explicit list, so an altered file cannot run
code. ONNX would need a converter per estimator and float32 re-validation. For xgboost the
hot path does not need the pipeline at all: the fitted preprocessing (median imputation and
one-hot encoding) is compiled into a small numpy encoder stored in the manifest, and the
booster (UBJSON, a data format) scores its output. At package time the encoder + booster
must give scores identical to the sklearn pipeline, else the bundle falls back to the
pipeline (`scoring.hot_path = "sklearn_pipeline"`).
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from valuegate.artifacts import load_pipeline, save_pipeline
from valuegate.errors import ArtifactError, DataError
from valuegate.io import atomic_dir, atomic_write_text, to_json

FORMAT = "valuegate-bundle/1"
MANIFEST = "manifest.json"
PIPELINE = "pipeline.skops"
BOOSTER = "booster.ubj"
HOT_XGB = "xgboost_numpy"
HOT_PIPELINE = "sklearn_pipeline"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


def git_revision(cwd: str | Path = ".") -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


# --------------------------------------------------------------------------- input schema


def input_schema(schema: Any, train: pd.DataFrame) -> list[dict[str, Any]]:
    """Field list for the bundle: name, dtype, nullable (seen missing in training), and the
    allowed categories; the amount column is added when it is not a feature (the expected
    value of a decision needs it)."""
    fields = []
    for name in schema.numeric:
        fields.append(
            {"name": name, "dtype": "float64", "nullable": bool(train[name].isna().any())}
        )
    for name in schema.categorical:
        fields.append(
            {
                "name": name,
                "dtype": "category",
                "nullable": bool(train[name].isna().any()),
                "categories": [str(c) for c in schema.categories[name]],
            }
        )
    amount = schema.amount_column
    if amount and amount not in schema.features:
        fields.append({"name": amount, "dtype": "float64", "nullable": False, "role": "amount"})
    return fields


# --------------------------------------------------------------------------- the encoder


def compile_encoder(pipeline: Any) -> dict[str, Any] | None:
    """The fitted preprocessing as plain data, or None when it is not the
    impute + one-hot -> xgboost shape that the numpy hot path reproduces."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder
    from xgboost import XGBClassifier, XGBRegressor

    steps = dict(pipeline.steps)
    estimator = pipeline.steps[-1][1]
    if not isinstance(estimator, XGBClassifier | XGBRegressor):
        return None
    pre = steps.get("preprocess")
    if not isinstance(pre, ColumnTransformer):
        return None
    numeric: list[dict[str, Any]] = []
    categorical: list[dict[str, Any]] = []
    offset = 0
    for name, transformer, columns in pre.transformers_:
        if name == "remainder":
            if transformer != "drop":
                return None
            continue
        if isinstance(transformer, SimpleImputer) and transformer.strategy in ("median", "mean"):
            if transformer.add_indicator:
                return None
            for column, fill in zip(columns, transformer.statistics_, strict=True):
                numeric.append({"name": column, "index": offset, "fill": float(fill)})
                offset += 1
        elif (
            isinstance(transformer, OneHotEncoder)
            and transformer.drop is None
            and transformer.handle_unknown == "ignore"
            and not getattr(transformer, "_infrequent_enabled", False)
        ):
            for column, cats in zip(columns, transformer.categories_, strict=True):
                values = [c for c in cats.tolist() if not (isinstance(c, float) and math.isnan(c))]
                has_missing = len(values) != len(cats)
                categorical.append(
                    {
                        "name": column,
                        "offset": offset,
                        "categories": [str(c) for c in values],
                        # index of the "missing" column when NaN was a training category
                        "missing": len(values) if has_missing else None,
                    }
                )
                offset += len(cats)
        else:
            return None
    if offset != estimator.n_features_in_:
        return None
    return {"n_features": offset, "numeric": numeric, "categorical": categorical}


def pa_values(values: list[str]) -> Any:
    import pyarrow as pa

    return pa.array(values, type=pa.string())


def category_codes(values: pd.Series, categories: Any) -> np.ndarray:
    """Index of each value in `categories` (a pyarrow string array), -1 when unknown or
    missing. pyarrow's hash lookup, without turning Arrow strings into Python objects."""
    import pyarrow as pa
    import pyarrow.compute as pc

    array = pa.array(values, from_pandas=True)
    if not pa.types.is_string(array.type) and not pa.types.is_large_string(array.type):
        array = pc.cast(array, pa.string()) if len(array) else pa.array([], pa.string())
    return pc.index_in(array, value_set=categories).fill_null(-1).to_numpy(zero_copy_only=False)


class Encoder:
    """The compiled preprocessing: a record (dict) or a DataFrame -> float32 features."""

    def __init__(self, spec: dict[str, Any]):
        self.n_features = int(spec["n_features"])
        self.numeric = [(c["name"], int(c["index"]), float(c["fill"])) for c in spec["numeric"]]
        self.categorical = [
            (
                c["name"],
                int(c["offset"]),
                {v: i for i, v in enumerate(c["categories"])},
                c["categories"],
                c["missing"],
            )
            for c in spec["categorical"]
        ]

        # pd.Index lookups for whole columns (built once)
        self.categorical_frame = [
            (name, offset, codes, pa_values(cats), missing)
            for name, offset, codes, cats, missing in self.categorical
        ]

    def encode_record(self, record: dict[str, Any]) -> np.ndarray:
        x = np.zeros((1, self.n_features), dtype=np.float32)
        row = x[0]
        for name, index, fill in self.numeric:
            value = record.get(name)
            row[index] = fill if value is None else value
        for name, offset, codes, _cats, missing in self.categorical:
            value = record.get(name)
            if value is None:
                if missing is not None:
                    row[offset + missing] = 1.0
                continue
            code = codes.get(value)
            if code is not None:
                row[offset + code] = 1.0
        return x

    def encode_frame(self, frame: pd.DataFrame) -> np.ndarray:
        n = len(frame)
        x = np.zeros((n, self.n_features), dtype=np.float32)
        for name, index, fill in self.numeric:
            column = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
            x[:, index] = np.where(np.isnan(column), fill, column)
        rows = np.arange(n)
        for name, offset, _codes, cats, missing in self.categorical_frame:
            values = frame[name]
            codes = category_codes(values, cats)
            known = codes >= 0
            x[rows[known], offset + codes[known]] = 1.0
            if missing is not None:
                x[rows[values.isna().to_numpy()], offset + missing] = 1.0
        return x


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

    def _raw_scores(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.inplace_predict(x), dtype=float).reshape(-1)

    def score_record(self, record: dict[str, Any]) -> float:
        """One validated record -> score (numpy hot path for xgboost)."""
        if self.encoder is not None:
            return float(self._raw_scores(self.encoder.encode_record(record))[0])
        return float(self.score_frame(pd.DataFrame([record]))[0])

    def score_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Validated rows (a DataFrame holding the feature columns) -> scores, shape (n,)."""
        if self.encoder is not None:
            return self._raw_scores(self.encoder.encode_frame(frame))
        from valuegate.models import predict_scores

        features = frame[self.features].copy()
        for field in self.fields:
            if field["dtype"] == "category" and field["name"] in features:
                features[field["name"]] = features[field["name"]].astype(object)
        return predict_scores(self.pipeline, features, self.task)


def _value_model(manifest: dict[str, Any]) -> Any:
    from valuegate.business import BinaryValueModel, RegressionValueModel

    objective = manifest["objective"]
    if manifest["model"]["task"] == "binary":
        values = {
            o: (
                float(objective["outcomes"][o]["value"]),
                float(objective["outcomes"][o]["per_amount"]),
            )
            for o in ("tp", "fp", "fn", "tn")
        }
        return BinaryValueModel(values=values, volume=float(objective["volume"]))
    cost = objective["cost"]
    return RegressionValueModel(
        float(cost["under"]),
        float(cost["over"]),
        float(cost["tolerance"]),
        float(objective["volume"]),
    )


def decide(
    bundle: Bundle, scores: np.ndarray, amount: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Decision and expected value per row, from the value model in business.py.

    Binary: decision = score >= threshold (True = take the objective's action); expected
    value = p * value(if positive) + (1 - p) * value(if negative) of that decision, with the
    score read as the probability of the positive class. Regression: decision = prediction +
    offset; the expected value needs the outcome and is not given (NaN).
    """
    from valuegate.business import BinaryValueModel

    _kind, point = bundle.operating_point
    model = _value_model(bundle.manifest)
    scores = np.asarray(scores, dtype=float)
    if isinstance(model, BinaryValueModel):
        flagged = scores >= point
        return {
            "decision": flagged,
            "expected_value": model.expected_case_values(scores, flagged, amount),
        }
    return {"decision": scores + point, "expected_value": np.full(len(scores), np.nan)}


# --------------------------------------------------------------------------- validation


def validate_chunk(frame: pd.DataFrame, fields: list[dict[str, Any]], first_row: int = 0):
    """Check rows against the bundle schema. Returns (clean frame with the schema's columns,
    list of (row number, reason) for bad rows). Row numbers count data rows from 1 (the
    file's first data row is row 1). A missing column is a DataError for the whole input."""
    missing = [f["name"] for f in fields if f["name"] not in frame.columns]
    if missing:
        raise DataError(
            f"the input lacks column(s) {missing} that the model needs; it has "
            f"{list(frame.columns)[:30]}."
        )
    n = len(frame)
    bad = np.zeros(n, dtype=bool)
    reasons: dict[int, str] = {}
    clean = {}
    for field in fields:
        name = field["name"]
        column = frame[name]
        isna = column.isna().to_numpy()
        if field["dtype"] == "category":
            values = column
            if not pd.api.types.is_string_dtype(column):
                values = column.map(str, na_action="ignore").astype(object)
            allowed = category_codes(values, pa_values(field["categories"])) >= 0
            problem = ~allowed & ~isna
            why = f"{name}: value not among the allowed categories {field['categories'][:10]}"
            clean[name] = values
        else:
            numbers = pd.to_numeric(column, errors="coerce").astype(float)
            finite = np.isfinite(numbers.to_numpy())
            problem = ~finite & ~isna
            why = f"{name}: not a finite number"
            clean[name] = numbers
        for i in np.flatnonzero(problem & ~bad):
            reasons[int(i)] = f"{why} (got {column.iloc[i]!r})"
        bad |= problem
        if not field.get("nullable", False):
            for i in np.flatnonzero(isna & ~bad):
                reasons[int(i)] = f"{name}: missing, and the model was trained without gaps"
            bad |= isna
    out = pd.DataFrame(clean, index=frame.index)
    errors = sorted((first_row + i + 1, reason) for i, reason in reasons.items())
    return out, bad, errors


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
) -> dict[str, Any]:
    """Write a bundle directory atomically (temp dir + rename). `manifest` holds the
    descriptive fields; this adds scoring, files and hashes. `check_frame` (validated rows)
    proves the numpy encoder scores exactly as the pipeline; else the pipeline is the path."""
    from valuegate.models import predict_scores

    target = Path(target)
    manifest = dict(manifest)
    manifest["format"] = FORMAT
    manifest.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    manifest["libraries"] = library_versions()
    encoder_spec = compile_encoder(pipeline)
    scoring: dict[str, Any] = {"hot_path": HOT_PIPELINE, "encoder": None}
    with atomic_dir(target) as tmp:
        save_pipeline(pipeline, tmp / PIPELINE)
        if encoder_spec is not None:
            booster = pipeline.steps[-1][1].get_booster()
            booster.save_model(str(tmp / BOOSTER))
            features = [f["name"] for f in manifest["input"]["fields"] if f.get("role") != "amount"]
            expected = predict_scores(pipeline, check_frame[features], manifest["model"]["task"])
            probe = Bundle(tmp, manifest, pipeline, booster, Encoder(encoder_spec))
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
