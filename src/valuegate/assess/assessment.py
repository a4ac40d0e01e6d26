"""The entry point: run every check on the prepared splits, apply opt-in remedies and
accepts, and decide what blocks. Pure: splits and config in, an `Assessment` out."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from valuegate.assess.balance import check_balance
from valuegate.assess.duplicates import check_duplicates
from valuegate.assess.findings import (
    SEVERITIES,
    CheckResult,
    Finding,
    accept_matches,
    apply_accepts,
    blocking,
)
from valuegate.assess.inputs import AssessData
from valuegate.assess.label_noise import check_label_noise
from valuegate.assess.leakage import check_leakage
from valuegate.assess.quality import check_quality
from valuegate.assess.remedies import plan_remedies
from valuegate.assess.schema import check_schema
from valuegate.assess.shift import check_shift
from valuegate.assess.timeline import check_timeline
from valuegate.config.schema import AssessConfig

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
    seconds: dict[str, float]
    unused_accepts: list[str] = field(default_factory=list)
    dropped_columns: list[str] = field(default_factory=list)
    dropped_rows: dict[str, np.ndarray] = field(default_factory=dict)
    remedies: list[dict[str, Any]] = field(default_factory=list)

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
            **{k: v for k, v in self.figures.items() if not isinstance(v, dict)},
        }

    def record(self) -> dict[str, Any]:
        """Everything but the chart data: the full record, as JSON."""
        return {
            **self.metrics(),
            "block_on": self.block_on,
            "figures": self.figures,
            "sampling": self.sampling,
            "seconds": self.seconds,
            "unused_accepts": self.unused_accepts,
            "remedies": self.remedies,
            "dropped_columns": self.dropped_columns,
            "dropped_rows": {s: len(r) for s, r in self.dropped_rows.items()},
            "findings_detail": [f.to_dict() for f in self.findings],
        }


def assess(data: AssessData, config: AssessConfig, seed: int = 0) -> Assessment:
    """Run every check, then remedies, then accepts; nothing is read or written."""
    rng = np.random.default_rng(seed)
    steps: dict[str, Callable[[], CheckResult]] = {
        "schema": lambda: check_schema(data),
        "quality": lambda: check_quality(data, config),
        "duplicates": lambda: check_duplicates(data, config),
        "leakage": lambda: check_leakage(data, config, rng),
        "label_noise": lambda: check_label_noise(data, config, rng, seed, leaks()),
        "balance": lambda: check_balance(data, config),
        "shift": lambda: check_shift(data, config, rng, seed),
        "timeline": lambda: check_timeline(data, config),
    }
    total = CheckResult()

    def leaks() -> set[str]:
        """Columns of blocking leak findings the user has not accepted as legitimate."""
        return {
            f.subject
            for f in total.findings
            if f.kind in ("target_leakage", "post_outcome")
            and f.severity == "block"
            and not any(accept_matches(a.id, f.id) for a in config.accept)
        }

    seconds = {}
    for name, step in steps.items():
        start = time.perf_counter()
        total.add(step())
        seconds[name] = round(time.perf_counter() - start, 3)
        if name == "schema" and any(f.kind == "missing_column" for f in total.findings):
            # The other checks read every declared column; the block already says what to do.
            break
    # Accepts first: a finding the user accepted (with a reason) is not remedied behind
    # their back.
    findings, unused = apply_accepts(total.findings, [(a.id, a.reason) for a in config.accept])
    columns, rows, done = plan_remedies(findings, total.remedy_rows, config.remedies, data.features)
    findings.sort(key=lambda f: (f.status != "open", SEVERITY_ORDER[f.severity]))
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
    )
