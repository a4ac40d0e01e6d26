"""The entry point: run every check on the prepared splits, apply opt-in remedies and
accepts, and decide what blocks. Pure: splits and config in, an `Assessment` out."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from valuegate.assess.balance import check_balance
from valuegate.assess.combined import QuickModel
from valuegate.assess.duplicates import check_duplicates
from valuegate.assess.findings import (
    SEVERITIES,
    CheckResult,
    Finding,
    accept_matches,
    apply_accepts,
    blocking,
)
from valuegate.assess.inputs import AssessData, sample_positions
from valuegate.assess.label_noise import check_label_noise
from valuegate.assess.leakage import check_leakage
from valuegate.assess.quality import check_quality
from valuegate.assess.remedies import plan_remedies
from valuegate.assess.schema import check_schema
from valuegate.assess.shift import check_shift
from valuegate.assess.timeline import check_timeline
from valuegate.config.schema import AssessConfig
from valuegate.logs import progress

SEVERITY_ORDER = {s: i for i, s in enumerate(reversed(SEVERITIES))}  # block first


@dataclass
class Assessment:
    """Every finding (sorted: blocking first), key figures, chart data, sampling notes,
    and what the remedies drop."""

    findings: list[Finding]
    block_on: list[str]
    figures: dict[str, Any]
    charts: dict[str, Any]
    sampling: list[str]
    # Wall-clock seconds per check: run-to-run noise, so never part of record() or the
    # HTML (those are git-tracked); the stage logs them and writes them under logs/.
    seconds: dict[str, float]
    unused_accepts: list[str] = field(default_factory=list)
    dropped_columns: list[str] = field(default_factory=list)
    dropped_rows: dict[str, np.ndarray] = field(default_factory=dict)
    remedies: list[dict[str, Any]] = field(default_factory=list)
    # What a quick model reaches on the features the models will see (contract with the
    # deploy gate's too-good-to-be-true guard): metric, value, rows, features, how.
    honest_estimate: dict[str, Any] | None = None

    @property
    def blocking(self) -> list[Finding]:
        return blocking(self.findings, self.block_on)

    @property
    def blocked(self) -> bool:
        return bool(self.blocking)

    def counts(self) -> dict[str, int]:
        """Open findings per severity (accepted and remedied ones counted apart)."""
        out = {s: 0 for s in SEVERITIES}
        for finding in self.findings:
            if finding.status == "open":
                out[finding.severity] += 1
        out["accepted"] = sum(f.status == "accepted" for f in self.findings)
        out["remedied"] = sum(f.status == "remedied" for f in self.findings)
        return out

    def metrics(self) -> dict[str, Any]:
        """The DVC metrics: counts per severity and the key figures."""
        return {
            "blocked": self.blocked,
            "blocking": [f.id for f in self.blocking],
            "findings": self.counts(),
            **{k: v for k, v in self.figures.items() if not isinstance(v, (dict, list))},
            "honest_estimate": (self.honest_estimate or {}).get("value"),
        }

    def record(self) -> dict[str, Any]:
        """Everything but the chart data: the full record, as JSON."""
        return {
            **self.metrics(),
            "block_on": self.block_on,
            "figures": self.figures,
            "sampling": self.sampling,
            "unused_accepts": self.unused_accepts,
            "remedies": self.remedies,
            "dropped_columns": self.dropped_columns,
            "dropped_rows": {s: len(r) for s, r in self.dropped_rows.items()},
            "findings_detail": [f.to_dict() for f in self.findings],
            "honest_estimate": self.honest_estimate,
        }


def assess(data: AssessData, config: AssessConfig, seed: int = 0) -> Assessment:
    """Run every check, then remedies, then accepts; nothing is read or written."""
    rng = np.random.default_rng(seed)
    quick: list[QuickModel] = []  # built by the leakage step (after the schema allows it)

    def leakage() -> CheckResult:
        y = data.y("train")
        positions = sample_positions(
            len(data.splits["train"]),
            config.sample_rows,
            rng,
            y if data.task == "binary" else None,
        )
        quick.append(QuickModel.build(data, positions, config.n_folds, seed))
        return check_leakage(data, config, quick[0])

    steps: dict[str, Callable[[], CheckResult]] = {
        "schema": lambda: check_schema(data),
        "quality": lambda: check_quality(data, config),
        "duplicates": lambda: check_duplicates(data, config),
        "leakage": leakage,
        "label_noise": lambda: check_label_noise(data, config, rng, seed, leaks()),
        "balance": lambda: check_balance(data, config),
        "shift": lambda: check_shift(data, config, rng, seed),
        "timeline": lambda: check_timeline(data, config),
    }
    total = CheckResult()

    def leaks() -> set[str]:
        """Columns of blocking leak findings the user has not accepted as legitimate."""
        return {
            column
            for f in total.findings
            if f.kind in ("target_leakage", "post_outcome", "combined_leakage")
            and f.severity == "block"
            and not any(accept_matches(a.id, f.id) for a in config.accept)
            for column in f.columns
        }

    seconds = {}
    # a bar on a terminal only (valuegate.logs): the label-noise and leak checks fit models
    with progress("assess", total=len(steps), unit="check") as bar:
        for name, step in steps.items():
            bar.set_postfix_str(name)
            start = time.perf_counter()
            total.add(step())
            seconds[name] = round(time.perf_counter() - start, 3)
            bar.update()
            logging.getLogger(__name__).debug("check %s: %.2f s", name, seconds[name])
            # The other checks read every declared column once: a missing or twice-listed
            # column is blocked already, and the block says what to do.
            if name == "schema" and any(
                f.kind in ("missing_column", "listed_twice") for f in total.findings
            ):
                break
    # Accepts first: a finding the user accepted (with a reason) is not remedied behind
    # their back.
    findings, unused = apply_accepts(total.findings, [(a.id, a.reason) for a in config.accept])
    columns, rows, done = plan_remedies(findings, total.remedy_rows, config.remedies, data.features)
    findings.sort(key=lambda f: (f.status != "open", SEVERITY_ORDER[f.severity]))
    honest = None
    if quick:
        start = time.perf_counter()
        honest = honest_estimate(quick[0], [c for c in data.features if c not in columns])
        seconds["honest_estimate"] = round(time.perf_counter() - start, 3)
    figures = {
        "rows": {s: len(f) for s, f in data.splits.items()},
        "features": len(data.features),
        **total.figures,
    }
    return Assessment(
        findings=findings,
        block_on=list(config.block_on),
        figures=figures,
        charts=total.charts,
        sampling=total.sampling,
        seconds=seconds,
        unused_accepts=unused,
        dropped_columns=columns,
        dropped_rows=rows,
        remedies=done,
        honest_estimate=honest,
    )


def honest_estimate(quick: QuickModel, features: list[str]) -> dict[str, Any] | None:
    """The quick model, cross-validated on exactly `features` (those the models will be
    trained on, after remedies): what a model can honestly reach on these data."""
    if not features:
        return None
    value = quick.evaluate(features)
    if value is None:
        return None
    metric = "roc_auc" if quick.data.task == "binary" else "r2"
    covered = len(np.unique(np.concatenate([test for _, test in quick.folds])))
    return {
        "metric": metric,
        "value": round(float(value), 4),
        "rows": int(covered),
        "features": list(features),
        "how": f"out-of-fold {'ROC AUC' if metric == 'roc_auc' else 'R2'} of a histogram "
        f"gradient boosting model (50 trees, one thread) on {covered:,} sampled training "
        f"rows, {len(quick.folds)} {quick.fold_kind} folds (valuegate.folds), after remedies",
    }
