"""Save and load fitted pipelines safely: skops with an explicit trusted-type list.

skops (not pickle) records the object graph and, on load, refuses any type that is not on
the list below, so a tampered model file cannot run code. A sha256 sidecar detects any
alteration before the file is even parsed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from valuegate.errors import ArtifactError
from valuegate.hashing import sha256_file
from valuegate.io import atomic_path, atomic_write_text

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

# skops is imported where it is used: it costs ~0.8 s, which stages that only read
# predictions (gate, evaluate) should not pay.

# Types that skops does not trust by default but our registry's pipelines contain. Any
# other untrusted type in a file makes loading fail.
TRUSTED_TYPES = frozenset(
    {
        "xgboost.core.Booster",
        "xgboost.sklearn.XGBClassifier",
        "xgboost.sklearn.XGBRegressor",
        # valuegate's own early-stopping wrappers (estimators.py): plain attributes only
        "valuegate.estimators.EarlyStoppingClassifier",
        "valuegate.estimators.EarlyStoppingRegressor",
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.utils.validation.check_array",
        "functools.partial",
        "numpy.dtype",
        "builtins.slice",
        # the seeded folds a TargetEncoder cross-fits itself with (plain data, no code)
        "sklearn.model_selection._split.KFold",
        "sklearn.model_selection._split.StratifiedKFold",
    }
)


# A fixed zip entry date (the earliest a zip can hold): skops stamps every entry with the
# time of writing, which would change the file's hash (and dvc.lock) on every run.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def _zero_padding(name: str, payload: bytes) -> bytes:
    """An .npy member with the padding bytes of a structured dtype zeroed: numpy leaves
    them as whatever memory held (scikit-learn's tree nodes have 7 such bytes per node)."""
    import io

    import numpy as np

    if not name.endswith(".npy"):
        return payload
    array = np.load(io.BytesIO(payload), allow_pickle=False)
    if array.dtype.names is None:
        return payload
    clean = np.zeros(array.shape, dtype=array.dtype)  # padding included
    for field in array.dtype.names:
        clean[field] = array[field]
    buffer = io.BytesIO()
    np.save(buffer, clean, allow_pickle=False)
    return buffer.getvalue()


def canonical_skops(data: bytes) -> bytes:
    """skops' zip (bytes) -> the same zip without run-to-run noise (bytes), loadable by skops.

    skops names objects by their memory address (`__id__`, and `<id>.npy` members) and raw
    bytes by a random uuid (`<uuid>.bin`), dates every entry now, and saves the padding of
    structured arrays as found in memory. Here the padding is zeroed, the ids become
    1, 2, ... and the members 0.npy, 1.bin, ... in the schema's own (deterministic) order,
    entries are dated ZIP_DATE, and the order of entries is fixed. Numbering keeps distinct
    ids distinct and equal ids equal, which is all skops uses them for (object sharing).
    """
    import io
    import json
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as source:
        members = {info.filename: source.read(info) for info in source.infolist()}
    if "schema.json" not in members:
        raise ArtifactError("skops wrote no schema.json: this skops version is not supported.")
    schema = json.loads(members.pop("schema.json"))
    ids: dict[int, int] = {}
    names: dict[str, str] = {}

    def renumber(node: object) -> None:
        if isinstance(node, dict):
            for key in list(node):
                value = node[key]
                if key == "__id__" and isinstance(value, int):
                    node[key] = ids.setdefault(value, len(ids) + 1)
                elif key == "file" and isinstance(value, str) and value in members:
                    node[key] = names.setdefault(value, f"{len(names)}{Path(value).suffix}")
                else:
                    renumber(value)
        elif isinstance(node, list):
            for item in node:
                renumber(item)

    renumber(schema)
    unnamed = sorted(set(members) - set(names))
    if unnamed:  # a member no node points to: renaming would be unsafe
        raise ArtifactError(
            f"skops wrote members its schema does not reference ({unnamed[:3]}): this skops "
            "version is not supported."
        )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as target:
        entries = [(new, _zero_padding(new, members[old])) for old, new in names.items()]
        entries.append(("schema.json", json.dumps(schema, indent=2).encode()))
        for name, payload in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16  # a regular file, as on any umask
            target.writestr(info, payload)
    return out.getvalue()


def save_pipeline(pipeline: Pipeline, path: str | Path) -> str:
    """Write `pipeline` to `path` (skops) atomically, plus `path.sha256`; return the hash."""
    import skops.io as sio

    target = Path(path)
    data = canonical_skops(sio.dumps(pipeline))
    with atomic_path(target) as tmp:
        Path(tmp).write_bytes(data)
    untrusted = set(sio.get_untrusted_types(file=target)) - TRUSTED_TYPES
    if untrusted:
        target.unlink()
        raise ArtifactError(
            f"{target}: the fitted model holds types outside valuegate's trusted list: "
            f"{sorted(untrusted)}"
        )
    digest = sha256_file(target)
    atomic_write_text(target.with_name(target.name + ".sha256"), digest + "\n")
    return digest


def load_pipeline(path: str | Path) -> Pipeline:
    """Load a pipeline saved by `save_pipeline`, verifying its hash and types."""
    import skops.io as sio

    target = Path(path)
    sidecar = target.with_name(target.name + ".sha256")
    if not target.is_file():
        raise ArtifactError(f"model file {target} not found; run its stage first (`dvc repro`).")
    if not sidecar.is_file():
        raise ArtifactError(f"{target}: its hash file {sidecar.name} is missing.")
    expected = sidecar.read_text().strip()
    actual = sha256_file(target)
    if actual != expected:
        raise ArtifactError(
            f"{target} was altered after it was written (sha256 {actual[:12]}..., "
            f"expected {expected[:12]}...); refusing to load it."
        )
    untrusted = set(sio.get_untrusted_types(file=target)) - TRUSTED_TYPES
    if untrusted:
        raise ArtifactError(
            f"{target} holds types outside valuegate's trusted list: {sorted(untrusted)}; "
            "refusing to load it."
        )
    trusted = sorted(set(sio.get_untrusted_types(file=target)))
    return sio.load(target, trusted=trusted)
