"""Findings, their stable ids, and the accept / block logic.

A finding id is `<kind>:<subject>`, e.g. `target_leakage:checking_status` or
`duplicates:cross_split`: the kind names the check, the subject a column or one of a
fixed set of words. Ids are stable across runs so that `assess.accept` can name them.
This module imports neither pandas nor scikit-learn: the config schema validates
`accept` ids with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from valuegate.errors import ValuegateError

Severity = Literal["info", "warn", "block"]
SEVERITIES: tuple[str, ...] = ("info", "warn", "block")

COLUMN = "<column>"
SPLIT_NAMES = ("train", "valid", "test")

# kind -> (family of checks, allowed subjects; COLUMN means any column name)
FINDING_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "missing_column": ("schema", (COLUMN,)),
    "unexpected_column": ("schema", (COLUMN,)),
    "dtype": ("schema", (COLUMN,)),
    "mixed_types": ("schema", (COLUMN,)),
    "listed_twice": ("schema", (COLUMN,)),
    "missing_values": ("quality", (COLUMN, "rows")),
    "infinite_values": ("quality", (COLUMN,)),
    "constant": ("quality", (COLUMN,)),
    "near_constant": ("quality", (COLUMN,)),
    "id_like": ("quality", (COLUMN,)),
    "high_cardinality": ("quality", (COLUMN,)),
    "duplicates": (
        "duplicates",
        ("within_split", "cross_split", "shared_ids", "conflicting_labels"),
    ),
    "target_leakage": ("leakage", (COLUMN,)),
    # subject: the culprit columns joined by '+' (e.g. arr_time+sched_arr_time), or
    # 'quick_model' (a quick model on every feature is too good and no column explains it)
    "combined_leakage": ("leakage", (COLUMN, "quick_model")),
    "post_outcome": ("leakage", (COLUMN,)),
    "label_noise": ("label_noise", ("suspected", "skipped")),
    "class_balance": ("balance", ("imbalance", "skipped")),
    "too_few_positives": ("balance", SPLIT_NAMES),
    "shift": ("shift", (COLUMN, "adversarial")),
    "timeline": ("timeline", ("missing_times", "unordered", "gaps", "future_leak", "skipped")),
}


def check_finding_id(finding_id: str) -> str:
    """`finding_id` if it can name a finding; else ValueError with the nearest match."""
    from valuegate.config.messages import nearest

    kind, sep, subject = str(finding_id).partition(":")
    if not sep or not kind or not subject:
        raise ValueError(
            f"{finding_id!r} is not a finding id; write it as '<check>:<subject>', e.g. "
            "'target_leakage:checking_status' or 'duplicates:cross_split' (the ids are in "
            "reports/assessment.html and the blocking message)"
        )
    if kind not in FINDING_KINDS:
        hint = nearest(kind, FINDING_KINDS)
        raise ValueError(
            f"{finding_id!r}: unknown check {kind!r}"
            + (f" (did you mean {hint!r}?)" if hint else "")
            + f"; allowed: {', '.join(FINDING_KINDS)}"
        )
    subjects = FINDING_KINDS[kind][1]
    if COLUMN not in subjects and subject != "*" and subject not in subjects:
        hint = nearest(subject, subjects)
        raise ValueError(
            f"{finding_id!r}: {kind!r} has no subject {subject!r}"
            + (f" (did you mean '{kind}:{hint}'?)" if hint else "")
            + f"; allowed: {', '.join(f'{kind}:{s}' for s in subjects)}"
        )
    return finding_id


@dataclass
class Finding:
    """One thing the assessment found, in plain words, with its evidence."""

    id: str
    severity: Severity
    title: str  # one sentence a user understands without the rest
    action: str  # what to do about it
    evidence: dict[str, Any] = field(default_factory=dict)
    example_rows: dict[str, list[Any]] = field(default_factory=dict)  # split -> row ids
    status: Literal["open", "accepted", "remedied"] = "open"
    note: str | None = None  # the accept reason, or what the remedy did

    def __post_init__(self) -> None:
        check_finding_id(self.id)
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r} not in {SEVERITIES}")

    @property
    def kind(self) -> str:
        return self.id.partition(":")[0]

    @property
    def subject(self) -> str:
        return self.id.partition(":")[2]

    @property
    def columns(self) -> list[str]:
        """The columns a column remedy drops for this finding: evidence 'drop' when the
        finding names several (a leak in combination), else its subject."""
        return list(self.evidence.get("drop", [self.subject]))

    @property
    def check(self) -> str:
        return FINDING_KINDS[self.kind][0]

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, **asdict(self)}


def accept_matches(accept_id: str, finding_id: str) -> bool:
    """An accept entry names one finding, or every finding of a kind with `<kind>:*`."""
    kind, _, subject = accept_id.partition(":")
    return accept_id == finding_id or (subject == "*" and finding_id.startswith(kind + ":"))


def apply_accepts(
    findings: Iterable[Finding], accept: Iterable[tuple[str, str]]
) -> tuple[list[Finding], list[str]]:
    """Mark accepted findings (status 'accepted', the reason as note); returns the
    findings and the accept ids that matched nothing this run (a warning, not an error:
    a finding may come and go with the data)."""
    findings = list(findings)
    unused = []
    for accept_id, reason in accept:
        hit = False
        for finding in findings:
            if accept_matches(accept_id, finding.id):
                hit = True
                if finding.status == "open":
                    finding.status, finding.note = "accepted", f"accepted: {reason}"
        if not hit:
            unused.append(accept_id)
    return findings, unused


def blocking(findings: Iterable[Finding], block_on: Iterable[str]) -> list[Finding]:
    """Open findings whose severity is one that blocks."""
    block_on = set(block_on)
    return [f for f in findings if f.status == "open" and f.severity in block_on]


@dataclass
class CheckResult:
    """What one family of checks returns: findings, key figures (for the metrics file),
    chart data (drawn by the report) and how it sampled rows (said in the report)."""

    findings: list[Finding] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    charts: dict[str, Any] = field(default_factory=dict)
    sampling: list[str] = field(default_factory=list)
    # finding id -> split -> row positions a remedy for that finding would drop
    remedy_rows: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, other: CheckResult) -> None:
        self.findings += other.findings
        self.remedy_rows.update(other.remedy_rows)
        self.figures.update(other.figures)
        self.charts.update(other.charts)
        self.sampling += other.sampling


class AssessmentBlockedError(ValuegateError):
    """A finding that blocks was neither accepted nor remedied: the results would be
    meaningless, so nothing downstream runs."""

    kind = "assessment blocked"
    exit_code = 3


def blocked_message(blockers: list[Finding], accept_file: str, report: str) -> str:
    """The short message `dvc repro` stops with: each finding, and how to fix or accept it."""
    lines = [
        f"{len(blockers)} finding{'s make' if len(blockers) > 1 else ' makes'} the "
        f"results meaningless, so nothing downstream runs (details: {report}):"
    ]
    for finding in blockers:
        lines += [
            f"  - {finding.id} [{finding.severity}]: {finding.title}",
            f"      fix: {finding.action}",
            f"      or accept it, under `accept:` in {accept_file}:",
            f'        - {{id: "{finding.id}", reason: "<why it is fine>"}}',
        ]
    lines.append("Then run `dvc exp run` again.")
    return "\n".join(lines)
