"""A whole in-memory run (`valuegate.pipeline.run`) written the way the stages write it:
the same writer functions, the same paths (valuegate.paths) under another root. What
`dvc repro` leaves in the project, an in-memory run can leave in a run directory (a sweep's,
a backtest's) byte for byte (tests/test_pipeline_steps.py compares them)."""

from __future__ import annotations

from pathlib import Path

from valuegate.pipeline import PipelineResult
from valuegate.stages.assess import write_assessed, write_assessment
from valuegate.stages.common import (
    BASELINES,
    CANDIDATES,
    PREPARED,
    TUNE_FILE,
    TUNE_METRICS,
    stamp,
    write_fitted,
    write_record,
)
from valuegate.stages.evaluate import write_evaluation
from valuegate.stages.gate import write_gate
from valuegate.stages.prepare import write_splits
from valuegate.stages.tune import write_outputs


def write_result(result: PipelineResult, root: Path, *, data: bool = True) -> list[Path]:
    """Write every output of the steps `result` ran under `root` (created): with `data`,
    data/prepared, data/assessed, models/ and the assessment's HTML page too, else only the
    records (reports/*.json, metrics/, plots/; the HTML page only for blocked data).
    Returns the paths written, in pipeline order. Records are stamped with the lineage of
    the data the models read, as the stages stamp them."""
    config, written = result.config, []
    root.mkdir(parents=True, exist_ok=True)
    if data and result.splits is not None and result.schema is not None:
        write_splits(root / PREPARED, result.splits, result.schema)
        written.append(root / PREPARED)
    if result.assessed is None:
        return written
    # The HTML page takes seconds to render: a run directory of a sweep gets it only when
    # the data were blocked (the page says why); the record is always written.
    blocked = result.assessed.blocked
    write_assessment(result.assessed.assessment, config, root, report=data or blocked)
    written.append(root / "reports")
    if blocked:
        return written
    schema = result.data[1]
    if data:
        write_assessed(result.assessed, root)
        fitted = {n: m for n, m in result.models.items() if m.info["role"] != "tuned"}
        for name, model in fitted.items():
            role_dir = BASELINES if model.info["role"] == "baseline" else CANDIDATES
            write_fitted(model, root / role_dir / name, config, schema)
        written.append(root / "models")
    if result.gate is not None:
        write_gate(result.gate, config, root, schema)
    if result.tuned is not None:
        if data:
            write_outputs(config, result.tuned.models, result.tuned.record, root, schema)
        else:  # the record only: no models/tuned, no plots
            record = stamp(result.tuned.record, config, schema=schema)
            write_record(root / TUNE_FILE, root / TUNE_METRICS, record)
    if result.evaluation is not None:
        write_evaluation(result.evaluation, result.plots or {}, config, root, schema)
    written.append(root / "metrics")
    return written
