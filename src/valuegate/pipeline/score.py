"""Step score: batch scoring with a packaged bundle, in memory.

(config, the bundle, a frame of input rows) -> `ScoredBatch`: per accepted row its score,
decision and expected value, and the record the `score` stage writes (reports/score.json:
row counts, per column the unseen categories and the gaps where training had none). The
rows are checked by the bundle's input rule (`bundle.check_chunk`, the one the service
and `valuegate predict` apply) and `deploy.batch.on_error` decides what a bad row does.

The stage (stages/score.py) scores a file that may not fit in memory: it streams it
through `serving.batch.predict_file`, which reads `deploy.batch.chunk_size` rows at a
time and gives each chunk to the same per-chunk function (`serving.batch.score_chunk`)
and the same tally (`ScoreTally`: on_error, counts) this step uses, so memory stays flat
and a file scored by the stage holds exactly the rows and values this step returns for
the whole table (tests/test_pipeline_score.py). Records here; file I/O there.

Not chained in `pipeline.run`: scoring needs a saved bundle (the registry's champion, or
the one `package` writes), and the package step is not chained either (the caller passes
the champion and the ledger); retraining and backtests call it with a loaded bundle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from valuegate.config.schema import Config

if TYPE_CHECKING:
    from valuegate.bundle import Bundle

FIX_HINT = (
    "Fix them, or set deploy.batch.on_error: skip to score the other rows "
    "(each skipped row is reported)."
)
"""The end of the message a bad row raises with `deploy.batch.on_error: fail`."""


@dataclass
class ScoredBatch:
    """The step's output. `scored`: one row per accepted input row, in input order, with
    columns row (int64: the row's 1-based position in the input), score (float64:
    calibrated probability, or the prediction for regression), decision (bool: take the
    objective's action; float64 for regression: prediction + offset) and expected_value
    (float64, currency per case; NaN for regression). `record`: reports/score.json.
    `skipped`: the first (row, reason) of the refused rows (on_error skip; at most
    serving.batch.MAX_REPORTED, `record["rows_skipped"]` counts them all)."""

    scored: pd.DataFrame
    record: dict[str, Any]
    skipped: list[tuple[int, str]]


def score_record(summary: dict[str, Any], source: str, version: str) -> dict[str, Any]:
    """reports/score.json from a scoring summary (`ScoreTally.summary()` /
    `predict_file`'s): its counts, then the input and the bundle's version."""
    return {**summary, "input": source, "model_version": version}


def no_champion_record(registry_root: str) -> dict[str, Any]:
    """reports/score.json when the registry has no champion (the deploy gate refused every
    model so far): nothing scored, and why."""
    return {
        "rows_scored": 0,
        "model_version": None,
        "skipped": f"the registry {registry_root} has no champion",
    }


def score(
    config: Config, bundle: Bundle, frame: pd.DataFrame, *, source: str | None = None
) -> ScoredBatch:
    """Score every row of `frame` (the bundle's input columns; others are ignored) with
    `bundle` at its shipped operating point. A row that breaks the bundle's input rule
    raises a DataError naming it (deploy.batch.on_error: fail) or is left out and counted
    (skip). `source`: how the record and messages name the input (default data.path, the
    stage's default input)."""
    from valuegate.serving.batch import ScoreTally, score_chunk

    name = source if source is not None else (config.deploy.batch.input or config.data.path)
    tally = ScoreTally(name, config.deploy.batch.on_error, FIX_HINT)
    chunk = score_chunk(bundle, frame.reset_index(drop=True), first_row=0)
    tally.add(chunk)
    return ScoredBatch(
        chunk.table.to_pandas(),
        score_record(tally.summary(), name, bundle.version),
        list(tally.skipped),
    )
