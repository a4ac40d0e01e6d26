"""Class balance (binary tasks): how rare the positive class is, and whether each split
holds enough positives for the value and gate estimates to mean anything."""

from __future__ import annotations

from valuegate.assess.findings import CheckResult, Finding
from valuegate.assess.inputs import AssessData, plural
from valuegate.config.schema import AssessConfig


def check_balance(data: AssessData, config: AssessConfig) -> CheckResult:
    result = CheckResult()
    if data.task != "binary":
        result.findings.append(
            Finding(
                id="class_balance:skipped",
                severity="info",
                title=f"Class balance is not checked: {data.target!r} is a regression target.",
                action="nothing",
            )
        )
        return result
    cfg = config.balance
    positives = {s: int(data.y(s).sum()) for s in data.splits}
    rows = {s: len(f) for s, f in data.splits.items()}
    share = sum(positives.values()) / sum(rows.values())
    minority = min(share, 1 - share)
    result.figures.update(positive_share=share, positives=positives)
    result.charts["balance"] = {"positives": positives, "rows": rows}
    if minority < cfg.minority_warn:
        rare = "positive" if share < 0.5 else "negative"
        result.findings.append(
            Finding(
                id="class_balance:imbalance",
                severity="warn",
                title=f"Only {minority:.1%} of rows are {rare} ({data.target!r} "
                f"{'=' if rare == 'positive' else '!='} {data.positive_label!r}): accuracy "
                "means little and the threshold matters a lot.",
                action="judge models by value (valuegate does) and look at precision and "
                "recall; more rows of the rare class help most",
                evidence={"positive_share": share, "warn_below": cfg.minority_warn},
            )
        )
    for split, count in positives.items():
        few = min(count, rows[split] - count)
        if few < cfg.min_positives_warn:
            block = few < cfg.min_positives_block
            result.findings.append(
                Finding(
                    id=f"too_few_positives:{split}",
                    severity="block" if block else "warn",
                    title=f"The {split} split holds only {plural(few, 'row', 'rows')} of its "
                    "rarer class: "
                    + (
                        "value and uplift estimates on it are noise."
                        if block
                        else "value estimates on it are uncertain (wide bounds)."
                    ),
                    action=f"use more data, or a larger data.split.{split} fraction",
                    evidence={
                        "split": split,
                        "positives": count,
                        "rows": rows[split],
                        "warn_below": cfg.min_positives_warn,
                        "block_below": cfg.min_positives_block,
                    },
                )
            )
    return result
