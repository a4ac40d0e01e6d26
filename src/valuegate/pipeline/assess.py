"""Step assess: the data checks, their opt-in remedies, and the block."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from valuegate.config.schema import Config
from valuegate.data import Schema, target_vector
from valuegate.errors import DataError
from valuegate.paths import ASSESS_REPORT
from valuegate.pipeline.common import Splits

if TYPE_CHECKING:  # the checks import scikit-learn
    from valuegate.assess.assessment import Assessment
    from valuegate.assess.inputs import AssessData

# Where a user accepts a finding: named in the blocked message.
ACCEPT_FILE = "conf/assess/default.yaml (or the assess config you select)"


@dataclass
class Assessed:
    """The assessment and what the models will read: the splits and schema with any
    opt-in remedies applied (the prepared ones when no remedy changed the data)."""

    assessment: Assessment
    splits: Splits
    schema: Schema
    remedied: bool = False

    @property
    def blocked(self) -> bool:
        return self.assessment.blocked


def assess_data(splits: Splits, schema: Schema, config: Config) -> AssessData:
    from valuegate.assess.inputs import AssessData

    return AssessData(
        splits=splits,
        task=schema.task,
        target=schema.target,
        positive_label=schema.positive_label,
        numeric=list(schema.numeric),
        categorical=list(schema.categorical),
        id_column=schema.id_column,
        time_column=config.data.time_column,
        amount_column=schema.amount_column,
        split_method=config.data.split.method,
    )


def remedied_schema(schema: Schema, splits: Splits, config: Config, dropped: list[str]) -> Schema:
    """The schema of the remedied splits; DataError when a remedy leaves a split with one
    class."""
    positives = None
    if schema.task == "binary":
        positives = {s: int(target_vector(f, config.data).sum()) for s, f in splits.items()}
        for split, count in positives.items():
            if count in (0, len(splits[split])):
                raise DataError(
                    f"assess.remedies: after the remedies the {split} split holds one class "
                    f"of {schema.target!r}; turn the row remedies off."
                )
    categorical = [c for c in schema.categorical if c not in dropped]
    return dataclasses.replace(
        schema,
        numeric=[c for c in schema.numeric if c not in dropped],
        categorical=categorical,
        categories={c: sorted(splits["train"][c].dropna().unique().tolist()) for c in categorical},
        rows={s: len(f) for s, f in splits.items()},
        positives=positives,
    )


def assessed_data(
    assessment: Assessment, splits: Splits, schema: Schema, config: Config
) -> tuple[Splits, Schema] | None:
    """(splits, schema) the models will read, or None when no remedy changes the data.
    Raises DataError when the remedies leave a split unusable."""
    from valuegate.assess.remedies import remedied_splits

    if not assessment.dropped_columns and not any(len(r) for r in assessment.dropped_rows.values()):
        return None
    kept = remedied_splits(splits, assessment.dropped_columns, assessment.dropped_rows)
    return kept, remedied_schema(schema, kept, config, assessment.dropped_columns)


def blocked_error(assessment: Assessment, report: str | Path = ASSESS_REPORT) -> Exception:
    """The error a blocked assessment stops the pipeline with (names each finding, its
    fix and how to accept it; `report` is where the details are)."""
    from valuegate.assess.findings import AssessmentBlockedError, blocked_message

    return AssessmentBlockedError(blocked_message(assessment.blocking, ACCEPT_FILE, str(report)))


def assess(
    splits: Splits,
    schema: Schema,
    config: Config,
    *,
    raise_blocked: bool = True,
    report: str | Path = ASSESS_REPORT,
) -> Assessed:
    """Run every data check (config.assess) and apply the opt-in remedies.

    Raises AssessmentBlockedError when a blocking finding is neither accepted nor remedied
    (`raise_blocked=False`: returns it, `.blocked` true and the data unremedied, so that a
    caller can write the report first), DataError when the remedies leave a split with one
    class.
    """
    from valuegate.assess.assessment import assess as run_checks

    assessment = run_checks(assess_data(splits, schema, config), config.assess, config.seed)
    if assessment.blocked:
        if raise_blocked:
            raise blocked_error(assessment, report)
        return Assessed(assessment, splits, schema)
    remedied = assessed_data(assessment, splits, schema, config)
    if remedied is None:
        return Assessed(assessment, splits, schema)
    return Assessed(assessment, remedied[0], remedied[1], remedied=True)
