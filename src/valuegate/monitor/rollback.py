"""Would the previous champion have been worth more on this window? (issue 16, rollback)

When a promoted challenger replaced a champion, monitoring a labelled window scores it with
both and compares their realised value with the deploy gate's own machinery: each model at
the operating point it ships with (nothing re-chosen on the window), the paired bootstrap
of the uplift at fixed points (`deploy.fixed_point_uplifts`) and its normal interval
(`deploy.compare`), on the same labelled rows, only rows neither model was fitted or
selected on (their bundles' row lineage) when the window can be matched to it. Pure:
arrays in, a JSON-ready record out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from valuegate.deploy import compare, fixed_point_uplifts


@dataclass(frozen=True)
class PreviousChampion:
    """The champion the monitored model replaced, as monitoring needs it.

    name: its version (v1); champion: the monitored version (v2); fields: its bundle's
    input fields (`bundle.check_chunk` checks rows against them); point: its shipped
    threshold / offset; score_rows: clean frame (m rows) -> scores (m,) through its bundle;
    seen: window frame (n rows) -> (bool (n,) rows either model was fitted or selected on,
    or None when the rows cannot be matched to the bundles' lineage; a note for the
    record); min_rows: fewer comparable rows than this, no comparison
    (`deploy.min_fresh_rows`); n_resamples, seed: the paired bootstrap's (`deploy.*`,
    `seed`)."""

    name: str
    champion: str
    fields: list[dict[str, Any]]
    point: float
    score_rows: Callable[[pd.DataFrame], np.ndarray]
    seen: Callable[[pd.DataFrame], tuple[np.ndarray | None, str | None]]
    min_rows: int
    n_resamples: int
    seed: int


def rollback_check(
    model: Any,
    y: np.ndarray,
    champion_scores: np.ndarray,
    champion_point: float,
    previous_scores: np.ndarray,
    previous_point: float,
    amount: np.ndarray | None,
    confidence: float,
    n_resamples: int,
    seed: int,
    names: tuple[str, str],
) -> dict[str, Any]:
    """Champion minus previous champion on the same labelled rows, money per period.

    `y`, `champion_scores`, `previous_scores`, `amount`: shape (n,), the window's labelled
    rows both models scored; the points are each bundle's shipped threshold / offset;
    `names`: (champion, previous) versions. The interval is two-sided at `confidence`
    (each end a one-sided bound at (1 + confidence) / 2, as `deploy.compare` computes it).
    `flag`: the upper end of the champion's uplift is below 0, i.e. we are sure at that
    level that rolling back would have been worth more. `rollback_*` are the same figures
    seen from the previous champion (previous minus champion).
    """
    champion, previous = names
    observed, uplifts = fixed_point_uplifts(
        model,
        y,
        champion_scores,
        champion_point,
        previous_scores,
        previous_point,
        amount,
        n_resamples,
        seed,
    )
    verdict = compare(observed, uplifts, (1.0 - confidence) / 2.0, 0.0)
    low, high = verdict["ci_lower"], verdict["ci_upper"]
    return {
        "champion": champion,
        "previous": previous,
        "rows": len(y),
        "champion_point": float(champion_point),
        "previous_point": float(previous_point),
        "uplift": observed,
        "low": low,
        "high": high,
        "confidence": confidence,
        "n_resamples": n_resamples,
        "rollback_worth": -observed,
        "rollback_low": -high,
        "rollback_high": -low,
        "flag": bool(high < 0.0),
    }


def rollback_sentence(record: dict[str, Any], window: str, money: Any) -> str:
    """`rolling back to v1 would have been worth +12,000 USD/month (95% interval ...)`,
    with what to do when flagged. `money`: value -> text (currency per period)."""

    def signed(value: float) -> str:
        text = money(value)
        return text if text.startswith("-") else f"+{text}"

    sentence = (
        f"window {window}: rolling back to {record['previous']} would have been worth "
        f"{signed(record['rollback_worth'])} against {record['champion']} "
        f"({record['confidence']:.0%} interval {signed(record['rollback_low'])} to "
        f"{signed(record['rollback_high'])}; paired, on the {record['rows']:,} labelled rows "
        "both models scored, each at its shipped operating point)"
    )
    if record["flag"]:
        sentence += (
            f": {record['previous']} was surely the better choice here; "
            "`valuegate models rollback` restores it"
        )
    return sentence


def compare_with_previous(
    previous: PreviousChampion,
    model: Any,
    frame: pd.DataFrame,
    labelled: np.ndarray,
    y: np.ndarray | None,
    champion_scores: np.ndarray,
    champion_point: float,
    amount: np.ndarray | None,
    confidence: float,
) -> dict[str, Any]:
    """The window's rollback record: `rollback_check` on its labelled rows that both models
    accept and neither was fitted or selected on, or {"skipped": why} with the counts.

    frame: the window's rows (n); labelled: bool (n,), rows with a label the monitored
    model scored; y, champion_scores, amount: (n,) (NaN where not applicable)."""
    from valuegate.bundle import check_chunk

    names = (previous.champion, previous.name)
    base: dict[str, Any] = {"champion": names[0], "previous": names[1]}
    if not labelled.any():
        return {**base, "skipped": "no labelled rows in this window"}
    assert y is not None
    checked = check_chunk(frame, previous.fields)
    refused = labelled & checked.bad
    use = labelled & ~checked.bad
    seen, note = previous.seen(frame)
    seen_rows = 0
    if seen is not None:
        seen_rows = int((use & seen).sum())
        use &= ~seen
    excluded = {"refused_by_previous": int(refused.sum()), "seen_by_a_model": seen_rows}
    base.update(rows_excluded=excluded, lineage=note)
    if int(use.sum()) < previous.min_rows:
        return {
            **base,
            "rows": int(use.sum()),
            "skipped": (
                f"only {int(use.sum())} labelled row(s) both models accept and neither saw "
                f"(deploy.min_fresh_rows: {previous.min_rows})"
            ),
        }
    previous_scores = np.asarray(previous.score_rows(checked.clean.loc[use]), dtype=float)
    record = rollback_check(
        model,
        y[use],
        champion_scores[use],
        champion_point,
        previous_scores,
        previous.point,
        None if amount is None else amount[use],
        confidence,
        previous.n_resamples,
        previous.seed,
        names,
    )
    return {**base, **record}
