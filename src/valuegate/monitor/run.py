"""One window -> its record (drift, schema, value); every window -> the monitoring record
with its alerts. Pure apart from scoring rows with the bundle when the input holds no
scores: frames, the profile and the value model in, JSON-ready dicts out.

A window record, money first:
- `value`: `estimated` (from calibrated scores: binary only), `realised` (labelled rows),
  `at_risk` (now minus at deploy; now = realised when at least LABELLED_ENOUGH of the
  window is labelled, else estimated), `labels` (completeness);
- `drift`: one record per feature and the score (two-sample tests, Holm over the window's
  family; monitor/drift.py), the features that drifted;
- `schema`: rows refused (a numeric column holding text: a type change), unseen
  categories, missing values where training had none.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from valuegate.errors import DataError
from valuegate.monitor.drift import drift_tests
from valuegate.monitor.profile import current_counts, reference_counts
from valuegate.monitor.rollback import PreviousChampion, compare_with_previous, rollback_sentence
from valuegate.monitor.value import estimated_value, realised_value, value_at_risk
from valuegate.monitor.windows import Window

LABELLED_ENOUGH = 0.5  # share of a window's rows with labels above which "now" is realised
SCORE = "score"  # the name the score's drift record carries


def _bad_columns(errors: list[tuple[int, str]]) -> dict[str, int]:
    """Refused rows per column, from check_chunk's reasons ('column: why (got ...)')."""
    out: dict[str, int] = {}
    for _row, why in errors:
        column = why.split(":", 1)[0]
        out[column] = out.get(column, 0) + 1
    return dict(sorted(out.items()))


def check_window(frame: pd.DataFrame, fields: list[dict[str, Any]]) -> Any:
    """The bundle's own input check (`bundle.check_chunk`): values resolved to the training
    categories, bad rows marked."""
    from valuegate.bundle import check_chunk

    return check_chunk(frame, fields)


def window_record(
    window: Window,
    frame: pd.DataFrame,
    scores: np.ndarray | None,
    y: np.ndarray | None,
    fields: list[dict[str, Any]],
    profile: dict[str, Any],
    model: Any,
    score_rows: Any,
    settings: dict[str, Any],
    previous: PreviousChampion | None = None,
) -> dict[str, Any]:
    """Everything about one window.

    frame: the window's rows (every input column); scores: (n,) calibrated scores given by
    the input (the prediction log, a scored file), or None to score the rows here with
    `score_rows(clean frame) -> (m,)`; y: (n,) labels, NaN where none arrived, or None;
    settings: alpha, min_distance, confidence, amount_column, new_category_share;
    previous: the champion the monitored model replaced (monitor/rollback.py), or None:
    the record's `rollback` then compares the two on the window's labelled rows.
    """
    n = len(frame)
    checked = check_window(frame, fields)
    good = ~checked.bad
    if n and not good.any():
        shown = "; ".join(f"row {r} of the window: {why}" for r, why in checked.errors[:3])
        raise DataError(
            f"window {window.label}: the model's input check refuses every one of its {n} "
            f"rows ({shown}): nothing to monitor there."
        )
    clean = checked.clean.loc[good]
    if scores is None:
        window_scores = np.asarray(score_rows(clean), dtype=float)
    else:
        window_scores = np.asarray(scores, dtype=float)[good]
    point = float(profile["point"]["value"])
    amount_column = settings.get("amount_column")
    amount = clean[amount_column].to_numpy(float) if amount_column in clean else None

    # ---- drift: every feature + the score, one Holm family
    names, ref, cur, spacings = [], [], [], []
    for name, entry in profile["features"].items():
        names.append(name)
        ref.append(reference_counts(entry))
        cur.append(current_counts(entry, clean[name]))
        spacings.append(bool(entry.get("continuous", False)))
    names.append(SCORE)
    ref.append(reference_counts(profile["score"]))
    cur.append(current_counts(profile["score"], window_scores))
    spacings.append(bool(profile["score"].get("continuous", False)))
    tests = drift_tests(
        names, ref, cur, settings["alpha"], settings["min_distance"], spacings=spacings
    )
    for record, entry_ref, entry_cur in zip(tests, ref, cur, strict=True):
        rows_ref, rows_cur = entry_ref.sum(), entry_cur.sum()
        record["missing_reference"] = float(entry_ref[-1] / rows_ref) if rows_ref else None
        record["missing_now"] = float(entry_cur[-1] / rows_cur) if rows_cur else None
    drifted = [t["name"] for t in tests if t["drifted"]]

    # ---- schema
    bad_columns = _bad_columns(checked.errors)
    new_share = {c: k / n for c, k in checked.unseen.items()} if n else {}
    schema = {
        "rows_refused": int(checked.bad.sum()),
        "refused_by_column": bad_columns,
        "unseen_categories": dict(sorted(checked.unseen.items())),
        "missing_not_in_training": dict(sorted(checked.new_missing.items())),
        "new_category_columns": sorted(
            c for c, s in new_share.items() if s > settings["new_category_share"]
        ),
    }

    # ---- value
    confidence = settings["confidence"]
    estimated = estimated_value(
        model,
        window_scores,
        point,
        amount,
        profile.get("calibration"),
        profile["score"],
        confidence,
    )
    inputs_drifted = [name for name in drifted if name != SCORE]
    if estimated is not None and inputs_drifted:
        # Input drift alone leaves P(outcome | score) intact, but a broken input (a unit
        # change, a recoded category) does not: the scores then mean something else and
        # the estimate follows them (the employment example's AGEP in months in 2017:
        # estimated 1.1M, realised 0.24M USD/month). Only labels can tell which it is.
        estimated["warnings"].append(
            f"inputs drifted ({', '.join(inputs_drifted)}): the estimate assumes the scores "
            "still mean what they meant at deploy; check it against labels"
        )
        estimated["reliable"] = False
    labelled = np.zeros(int(good.sum()), dtype=bool) if y is None else ~np.isnan(y[good])
    realised = None
    if labelled.any():
        realised = realised_value(
            model,
            y[good][labelled],
            window_scores[labelled],
            point,
            None if amount is None else amount[labelled],
            confidence,
        )
    share = float(labelled.mean()) if len(labelled) else 0.0
    deploy = profile["value"][profile["value"]["at_deploy"]]
    now, source = None, None
    if realised is not None and share >= LABELLED_ENOUGH and realised["rows"] > 1:
        now, source = realised, "realised"
    elif estimated is not None:
        now, source = estimated, "estimated"
    at_risk = value_at_risk(now, deploy, confidence, source) if now is not None else None
    covered = None
    if realised is not None and estimated is not None and share == 1.0:
        covered = bool(estimated["low"] <= realised["value_per_period"] <= estimated["high"])
    rollback = None
    if previous is not None:
        labelled_all = np.zeros(n, dtype=bool)
        labelled_all[np.flatnonzero(good)[labelled]] = True
        champion_scores = np.full(n, np.nan)
        champion_scores[good] = window_scores
        amount_all = None
        if amount is not None:
            amount_all = np.full(n, np.nan)
            amount_all[good] = amount
        rollback = compare_with_previous(
            previous,
            model,
            frame,
            labelled_all,
            None if y is None else np.asarray(y, dtype=float),
            champion_scores,
            point,
            amount_all,
            confidence,
        )
    return {
        "window": window.label,
        "start": window.start,
        "end": window.end,
        "rows": n,
        "value": {
            "estimated": estimated,
            "realised": realised,
            "at_risk": at_risk,
            "at_deploy": deploy["value_per_period"],
            "estimate_covers_realised": covered,
            "labels": {"rows": int(labelled.sum()), "share": share},
        },
        "drift": {"tests": tests, "drifted": drifted},
        "schema": schema,
        "rollback": rollback,
    }


def _money(value: float, currency: str, period: str) -> str:
    return f"{value:,.0f} {currency}/{period}"


def window_alerts(
    record: dict[str, Any], value_drop: float, currency: str, period: str
) -> list[dict[str, Any]]:
    """The alerts one window raises: `drift` (features or the score drifted), `schema`
    (rows refused for a type change, new categories above the configured share), `value`
    (the value at risk's upper bound is below -value_drop: we are sure, at the configured
    confidence, that the model lost more than value_drop per period), `rollback` (the
    previous champion was surely worth more on the window's labelled rows). Every alert
    names the money at stake: the window's value at risk and its interval (a rollback
    alert: what rolling back would have been worth)."""
    alerts = []
    value = record["value"]
    risk = value["at_risk"]
    if risk is not None:
        stake = (
            f"value at risk {_money(risk['value_per_period'], currency, period)} vs. deploy "
            f"({risk['now']}; {risk['confidence']:.0%} interval "
            f"{_money(risk['low'], currency, period)} to {_money(risk['high'], currency, period)})"
        )
        money = risk["value_per_period"]
    else:
        stake, money = "no value estimate (no labels, and a regression cost needs them)", None
    drifted = record["drift"]["drifted"]
    if drifted:
        shown = {t["name"]: t for t in record["drift"]["tests"]}
        detail = ", ".join(
            f"{name} (JS distance {shown[name]['js_distance']:.2f}, Holm p "
            f"{shown[name]['p_adjusted']:.2g})"
            for name in drifted
        )
        alerts.append(
            {
                "window": record["window"],
                "kind": "drift",
                "features": drifted,
                "money": money,
                "message": f"window {record['window']}: {detail} drifted; {stake}",
            }
        )
    schema = record["schema"]
    broken = list(schema["refused_by_column"]) + schema["new_category_columns"]
    if broken:
        parts = [f"{c}: {k} row(s) refused" for c, k in schema["refused_by_column"].items()]
        parts += [
            f"{c}: {schema['unseen_categories'][c]} row(s) of unseen categories"
            for c in schema["new_category_columns"]
        ]
        alerts.append(
            {
                "window": record["window"],
                "kind": "schema",
                "features": sorted(set(broken)),
                "money": money,
                "message": f"window {record['window']}: {'; '.join(parts)}; {stake}",
            }
        )
    if risk is not None and risk["high"] < -value_drop:
        alerts.append(
            {
                "window": record["window"],
                "kind": "value",
                "features": drifted,
                "money": money,
                "message": (
                    f"window {record['window']}: the model is worth less than at deploy by more "
                    f"than {_money(value_drop, currency, period)}: {stake}"
                    + (f"; drifted: {', '.join(drifted)}" if drifted else "")
                ),
            }
        )
    rollback = record.get("rollback")
    if rollback and rollback.get("flag"):
        alerts.append(
            {
                "window": record["window"],
                "kind": "rollback",
                "features": [],
                "money": rollback["rollback_worth"],
                "message": rollback_sentence(
                    rollback, record["window"], lambda v: _money(v, currency, period)
                ),
            }
        )
    return alerts


def summarise(
    windows: list[dict[str, Any]], alerts: list[dict[str, Any]], fail_on: list[str]
) -> dict[str, Any]:
    """Counts and the estimate's track record over the windows (where labels are complete)."""
    covered = [w["value"]["estimate_covers_realised"] for w in windows]
    checked = [c for c in covered if c is not None]
    errors = [
        w["value"]["estimated"]["value_per_period"] - w["value"]["realised"]["value_per_period"]
        for w in windows
        if w["value"]["estimate_covers_realised"] is not None
    ]
    kinds = sorted({a["kind"] for a in alerts})
    return {
        "windows": len(windows),
        "rows": int(sum(w["rows"] for w in windows)),
        "alerts": len(alerts),
        "alert_kinds": kinds,
        "windows_with_drift": sum(bool(w["drift"]["drifted"]) for w in windows),
        "estimate_checked_windows": len(checked),
        "estimate_coverage": (sum(checked) / len(checked)) if checked else None,
        "estimate_mean_abs_error": float(np.mean(np.abs(errors))) if errors else None,
        "failed": bool(set(kinds) & set(fail_on)),
    }
