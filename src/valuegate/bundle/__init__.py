"""The model bundle: one directory that scores raw rows and makes the business decision.

Layout (every file's sha256 is in the manifest; the manifest's own hash is beside it):

    manifest.json          input schema, decision threshold, objective and value figures,
                           metrics, config, data fingerprint, library versions, git revision,
                           the numpy encoder (below) and the sha256 of every other file;
                           `model.task` + `objective` are all the value model needs
                           (`business.value_model_from_record`, `Bundle.value_model`)
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

Modules: `categories` (how a value finds its training category), `encoder` (the compiled
numpy preprocessing), `validation` (the input schema and what scoring accepts), `store`
(save / verify / load, the loaded `Bundle` and `decide`). File hashing is
`valuegate.hashing.sha256_file`.
"""

# The package is split along its jobs (categories, encoder, validation, store); every name
# other modules import from `valuegate.bundle` is re-exported here, so they need not know
# which file holds it.
from valuegate.bundle.categories import (
    category_codes,
    category_lookup,
    natural_key,
    natural_sorted,
    pa_values,
    resolve_category,
    unseen_label,
)
from valuegate.bundle.encoder import UNSEEN_PROBE, Encoder, compile_encoder, final_xgboost
from valuegate.bundle.store import (
    BOOSTER,
    FORMAT,
    HOT_PIPELINE,
    HOT_XGB,
    MANIFEST,
    PIPELINE,
    Bundle,
    created_time,
    decide,
    git_revision,
    library_versions,
    load_bundle,
    read_manifest,
    save_bundle,
    verify_bundle,
)
from valuegate.bundle.validation import (
    CSV_NULL_VALUES,
    FLOAT32_MAX,
    ChunkCheck,
    RecordChecker,
    check_chunk,
    check_columns,
    input_schema,
    probe_pipeline,
    validate_chunk,
)
from valuegate.hashing import sha256_file

__all__ = [
    "BOOSTER", "CSV_NULL_VALUES", "FLOAT32_MAX", "FORMAT", "HOT_PIPELINE", "HOT_XGB",
    "MANIFEST", "PIPELINE", "UNSEEN_PROBE", "Bundle", "ChunkCheck", "Encoder", "RecordChecker",
    "category_codes", "category_lookup", "check_chunk", "check_columns", "compile_encoder",
    "created_time", "decide", "final_xgboost", "git_revision", "input_schema",
    "library_versions", "load_bundle", "natural_key", "natural_sorted", "pa_values",
    "probe_pipeline", "read_manifest", "resolve_category", "save_bundle", "sha256_file",
    "unseen_label", "validate_chunk", "verify_bundle",
]  # fmt: skip
