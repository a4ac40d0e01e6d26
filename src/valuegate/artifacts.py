"""Save and load fitted pipelines safely: skops with an explicit trusted-type list.

skops (not pickle) records the object graph and, on load, refuses any type that is not on
the list below, so a tampered model file cannot run code. A sha256 sidecar detects any
alteration before the file is even parsed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from valuegate.errors import ArtifactError
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
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.utils.validation.check_array",
        "functools.partial",
        "numpy.dtype",
        "builtins.slice",
    }
)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_pipeline(pipeline: Pipeline, path: str | Path) -> str:
    """Write `pipeline` to `path` (skops) atomically, plus `path.sha256`; return the hash."""
    import skops.io as sio

    target = Path(path)
    with atomic_path(target) as tmp:
        sio.dump(pipeline, tmp)
    untrusted = set(sio.get_untrusted_types(file=target)) - TRUSTED_TYPES
    if untrusted:
        target.unlink()
        raise ArtifactError(
            f"{target}: the fitted model holds types outside valuegate's trusted list: "
            f"{sorted(untrusted)}"
        )
    digest = _sha256(target)
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
    actual = _sha256(target)
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
