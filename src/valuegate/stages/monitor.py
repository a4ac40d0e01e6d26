"""Stage `monitor` (and `valuegate monitor`): production rows -> what the model is worth per
window, what changed, alerts (docs/monitoring.md).

Reads the monitored bundle (monitor.model in deploy.registry) and its reference profile,
the production rows (monitor.input: a CSV/Parquet file or the prediction log) and any
labels; calls the core (valuegate.monitor); writes reports/monitor.json (the record),
metrics/monitor.json (its numbers) and reports/monitor.html (the page), each atomically.
When an alert of a kind in monitor.fail_on fires, it exits non-zero after writing them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from valuegate.config import load_params
from valuegate.config.schema import Config
from valuegate.errors import ArtifactError, ConfigError, DataError, ValuegateError
from valuegate.io import atomic_write_text
from valuegate.monitor import report as page
from valuegate.monitor.profile import PROFILE_FILE, profile_from_splits
from valuegate.monitor.rollback import PreviousChampion
from valuegate.monitor.run import summarise, window_alerts, window_record
from valuegate.monitor.windows import (
    BATCH_ROWS,
    LOG_ID,
    LOG_TIME,
    Source,
    cut_windows,
    is_log,
    join_labels,
    label_vector,
    read_rows,
    stream_windows,
)
from valuegate.stages.common import METRICS, REPORTS, run_stage, write_record

MONITOR_FILE = REPORTS / "monitor.json"  # the full record; its numbers: MONITOR_METRICS
MONITOR_METRICS = METRICS / "monitor.json"
MONITOR_PAGE = REPORTS / "monitor.html"

# by name: run as `python -m`, __name__ is __main__, outside valuegate's loggers
log = logging.getLogger("valuegate.stages.monitor")


class MonitorAlertError(ValuegateError):
    """An alert of a kind listed in monitor.fail_on fired (the reports are written)."""

    kind = "monitor alert"
    exit_code = 4


def load_profile(bundle: Any, config: Config) -> tuple[dict[str, Any], str]:
    """(the bundle's reference profile, where it came from). A bundle packaged before
    bundles carried one is profiled from the prepared splits, only when they are the data
    it was trained on (same source sha256)."""
    if PROFILE_FILE in bundle.manifest.get("files", {}):
        # verified against the manifest's sha256 when the bundle was loaded
        return json.loads((bundle.path / PROFILE_FILE).read_text()), f"{bundle.path}/{PROFILE_FILE}"
    from valuegate.stages.common import read_schema, read_splits

    try:
        schema = read_schema()
    except ArtifactError:
        schema = None
    source = bundle.manifest.get("data", {}).get("source_sha256")
    if schema is None or schema.source_sha256 != source:
        raise ArtifactError(
            f"bundle {bundle.version} holds no reference profile ({PROFILE_FILE}: it was "
            "packaged before bundles carried one) and data/assessed is not the data it was "
            "trained on: package the model again (`dvc exp run`) to monitor it."
        )
    log.warning(
        "bundle %s holds no %s: profiling its reference from data/assessed (same data)",
        bundle.version,
        PROFILE_FILE,
    )
    splits = read_splits(names=("train", "valid", "test"))
    scores = {
        name: bundle.score_frame(_checked(splits[name], bundle)) for name in ("valid", "test")
    }
    profile = profile_from_splits(
        bundle.fields,
        bundle.value_model,
        bundle.operating_point[1],
        splits,
        scores,
        config.data,
        bundle.amount_column,
    )
    return profile, "data/assessed (the bundle predates reference profiles)"


def previous_champion(config: Config, registry: Any, bundle: Any) -> PreviousChampion | None:
    """The champion `bundle` replaced (the registry's champion history), loaded for the
    rollback comparison (monitor/rollback.py), or None: no previous champion, or a bundle
    that is not in this registry's history."""
    try:
        version = registry.replaced(bundle.version)
    except ArtifactError as exc:  # a broken champion.json: monitoring goes on without it
        log.warning("monitor: no rollback comparison: %s", exc)
        return None
    if version is None:
        return None
    previous = registry.load(version)

    def seen(frame: pd.DataFrame) -> tuple[Any, str | None]:
        return seen_by(frame, [bundle, previous])

    return PreviousChampion(
        name=version,
        champion=bundle.version,
        fields=previous.fields,
        point=float(previous.operating_point[1]),
        score_rows=previous.score_frame,
        seen=seen,
        min_rows=config.deploy.min_fresh_rows,
        n_resamples=config.deploy.n_resamples,
        seed=config.seed,
    )


def seen_by(frame: pd.DataFrame, bundles: list[Any]) -> tuple[Any, str | None]:
    """(bool (n,): rows of `frame` that any of `bundles` was fitted or selected on, by each
    bundle's row lineage; or None when a bundle records none or the frame lacks the columns
    it identifies rows by, with a note saying so)."""
    import numpy as np

    from valuegate.row_lineage import read_rows, row_hashes, unseen

    mask = np.zeros(len(frame), dtype=bool)
    for b in bundles:
        lineage = b.manifest.get("row_lineage")
        if not isinstance(lineage, dict):
            return None, f"{b.version} records no training rows: every labelled row compared"
        columns = list(lineage.get("columns", []))
        lacking = [c for c in columns if c not in frame.columns]
        if lacking:
            return None, (
                f"{b.version} identifies rows by {columns[:5]}{' ...' if len(columns) > 5 else ''}"
                f" and the input lacks {lacking[:5]}: rows a model was fitted on cannot be "
                "told apart, every labelled row compared"
            )
        hashes = row_hashes(frame, columns)
        for which in ("train", "valid"):
            mask |= ~unseen(hashes, read_rows(b.path, b.manifest, which))
    return mask, None


def _checked(frame: pd.DataFrame, bundle: Any) -> pd.DataFrame:
    from valuegate.bundle import check_chunk

    checked = check_chunk(frame, bundle.fields)
    if checked.bad.any():
        raise DataError(f"reference rows the bundle refuses: {checked.errors[:3]}")
    return checked.clean


def monitor(
    config: Config,
    out_json: Path = MONITOR_FILE,
    out_metrics: Path = MONITOR_METRICS,
    out_page: Path = MONITOR_PAGE,
    bundle: Any = None,
    batch_rows: int = BATCH_ROWS,
) -> dict[str, Any]:
    """Monitor monitor.input with monitor.model (or `bundle`, a loaded bundle); write the
    record, metrics and page. A registry without a champion: a record saying so.
    `batch_rows`: rows per read of the input (memory; the record does not depend on it)."""
    from valuegate.registry import Registry

    registry = Registry(config.deploy.registry)
    if bundle is None:
        if config.monitor.model == "champion" and registry.champion is None:
            reason = f"the registry {registry.root} has no champion: nothing is deployed"
            write_record(out_json, out_metrics, {"skipped": reason, "windows": []})
            atomic_write_text(out_page, page.skipped_page(reason))
            return {"skipped": reason}
        bundle = registry.load(config.monitor.model)
    settings = config.monitor
    profile, profile_source = load_profile(bundle, config)
    model = bundle.value_model
    source = settings.input or config.deploy.batch.input or config.data.path
    from_log = is_log(source)
    # Two passes over the input (monitor/windows.py): a few thin columns of every row to
    # cut the windows and join labels, then every column window by window, so memory
    # follows the largest window rather than the file.
    rows_in = Source(source, from_log, bundle.version if from_log else None, batch_rows)
    features = [f["name"] for f in bundle.fields]
    lacking = [c for c in features if c not in rows_in.columns]
    if lacking:
        raise DataError(
            f"monitor.input {source} lacks column(s) {lacking} that the model "
            f"{bundle.version} reads; it has {rows_in.columns[:30]}."
        )
    has_scores = "score" in rows_in.columns
    known = set(features) | {config.data.target, config.data.id_column, config.data.time_column}
    known |= {"score", "decision", "expected_value", "model_version", LOG_TIME, LOG_ID, "row"}
    extra = sorted(c for c in rows_in.columns if c not in known)

    id_column = settings.id_column or (LOG_ID if from_log else config.data.id_column)
    task, target = bundle.task, config.data.target
    positive = bundle.manifest.get("data", {}).get("positive_label", config.data.positive_label)
    y = None
    labels_from = None
    if settings.labels and id_column is None:
        raise DataError(
            "monitor.labels is set but no id column joins them: set monitor.id_column "
            "(or data.id_column)."
        )
    window = settings.window
    time_column = window.time_column or (LOG_TIME if from_log else config.data.time_column)
    thin_columns = [features[0]]  # one column at least: the number of rows
    if settings.labels and id_column is not None:
        thin_columns.append(id_column)
    elif target in rows_in.columns:
        thin_columns.append(target)
    if window.by == "time":
        if time_column is None or time_column not in rows_in.columns:
            raise DataError(
                f"monitor.window.by is 'time' but the time column {time_column!r} is not in "
                f"monitor.input (columns: {rows_in.columns[:20]}); set "
                "monitor.window.time_column, or monitor.window.by: count."
            )
        thin_columns.append(time_column)
    frame = rows_in.read_columns(list(dict.fromkeys(thin_columns)))
    if settings.labels:
        labels = read_rows(settings.labels, "monitor.labels")
        joined = join_labels(frame, labels, id_column, target, f"monitor.labels {settings.labels}")
        y = label_vector(joined, task, positive)
        labels_from = settings.labels
    elif target in frame.columns:
        y = label_vector(frame[target], task, positive)
        labels_from = f"{source} (column {target})"

    windows = cut_windows(
        frame, window.by, window.size, time_column, window.every, window.start, from_log
    )
    del frame
    knobs = {
        "alpha": settings.alerts.alpha,
        "min_distance": settings.alerts.min_distance,
        "confidence": settings.confidence,
        "amount_column": bundle.amount_column,
        "new_category_share": settings.alerts.new_category_share,
    }
    currency, period = config.objective.currency, config.objective.period
    manifest_objective = bundle.manifest.get("objective", {})
    currency = manifest_objective.get("currency", currency)
    period = manifest_objective.get("period", period)
    previous = previous_champion(config, registry, bundle) if y is not None else None
    records: list[dict[str, Any]] = [{} for _ in windows]
    for i, w, part in stream_windows(rows_in, windows):
        record = window_record(
            w,
            part,
            part["score"].to_numpy(float) if has_scores else None,
            None if y is None else y[w.rows],
            bundle.fields,
            profile,
            model,
            bundle.score_frame,
            knobs,
            previous,
        )
        record["alerts"] = window_alerts(record, settings.alerts.value_drop, currency, period)
        records[i] = record
        log.info("monitored window %s (%d rows)", w.label, len(w.rows))
    alerts = [a for record in records for a in record["alerts"]]
    summary = summarise(records, alerts, list(settings.fail_on))
    deploy_key = profile["value"]["at_deploy"]
    result = {
        "model": {
            "version": bundle.version,
            "name": bundle.manifest["model"]["name"],
            "task": task,
            "point": profile["point"],
        },
        "input": str(source),
        "labels": labels_from,
        "windows_by": window.by
        + (f" of {time_column}" if window.by == "time" else "")
        + (f", {window.size} rows" if window.by == "count" else ""),
        "currency": currency,
        "period": period,
        "reference": {
            "profile": profile_source,
            "value_at_deploy": {**profile["value"][deploy_key], "rows_from": deploy_key},
            "feature_rows": profile["reference"]["feature_rows"],
            "score_rows": profile["reference"]["score_rows"],
        },
        "settings": {
            **knobs,
            "value_drop": settings.alerts.value_drop,
            "fail_on": list(settings.fail_on),
        },
        "schema": {"extra_columns": extra},
        "summary": summary,
        "alerts": alerts,
        "windows": records,
    }
    html_text = page.build_page(result)
    write_record(out_json, out_metrics, _metrics_ready(result))
    atomic_write_text(out_page, html_text)
    return result


def _metrics_ready(result: dict[str, Any]) -> dict[str, Any]:
    """The record with windows keyed by label (DVC metrics need a dict to make columns)."""
    out = dict(result)
    out["by_window"] = {
        w["window"]: {
            "rows": w["rows"],
            "estimated": (w["value"]["estimated"] or {}).get("value_per_period"),
            "realised": (w["value"]["realised"] or {}).get("value_per_period"),
            "at_risk": (w["value"]["at_risk"] or {}).get("value_per_period"),
            "drifted": len(w["drift"]["drifted"]),
            "alerts": len(w["alerts"]),
        }
        for w in result["windows"]
    }
    return out


def report_line(result: dict[str, Any]) -> str:
    summary = result["summary"]
    last = result["windows"][-1]["value"]["at_risk"]
    money = page._Money(result["currency"], result["period"])
    worth = (
        f"; last window worth {money(last['now_value_per_period'])} ({last['now']}), value at "
        f"risk {money(last['value_per_period'])}"
        if last
        else ""
    )
    return (
        f"monitored {summary['rows']:,} rows in {summary['windows']} window(s) with "
        f"{result['model']['version']}{worth}; {summary['alerts']} alert(s) -> {MONITOR_PAGE}"
    )


def finish(result: dict[str, Any]) -> None:
    """Log the summary and the alerts; raise when an alert in monitor.fail_on fired."""
    if "skipped" in result:
        log.warning("monitor: skipped, %s (reports/deploy.json says why)", result["skipped"])
        return
    log.info("monitor: %s", report_line(result))
    for alert in result["alerts"]:
        log.warning("monitor: alert (%s): %s", alert["kind"], alert["message"])
    if result["summary"]["failed"]:
        kinds = sorted(set(result["summary"]["alert_kinds"]) & set(result["settings"]["fail_on"]))
        raise MonitorAlertError(
            f"{len(result['alerts'])} alert(s) fired, of kind(s) {kinds} listed in "
            f"monitor.fail_on (reports written: {MONITOR_FILE}, {MONITOR_PAGE})."
        )


def main(argv: list[str]) -> None:
    config = load_params()
    finish(monitor(config))


if __name__ == "__main__":
    raise SystemExit(run_stage(main))


def with_overrides(config: Config, overrides: list[str], source: str) -> Config:
    """`config` with `monitor.KEY=VALUE` overrides (values read as YAML), validated by the
    schema (a misspelt key or a bad value names the key path and what is allowed)."""
    import yaml

    from valuegate.config.loading import validate

    if not overrides:
        return config
    raw = config.model_dump()
    for override in overrides:
        key, sep, text = override.partition("=")
        parts = key.strip().split(".")
        if not sep or parts[0] != "monitor" or len(parts) < 2 or not all(parts):
            raise ConfigError(
                f"{override!r}: valuegate monitor takes monitor.KEY=VALUE overrides (e.g. "
                "monitor.window.by=time); compose other keys into params.yaml "
                "(`valuegate compose`)."
            )
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            raise ConfigError(f"{override!r}: the value is not valid YAML.") from None
        node = raw
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {} if child is None else child
            node = child
        node[parts[-1]] = value
    return validate(raw, source=f"{source} with {' '.join(overrides)}")


def run_command(params: str, overrides: list[str]) -> None:
    """`valuegate monitor [monitor.KEY=VALUE ...]`."""
    config = with_overrides(load_params(params), overrides, params)
    finish(monitor(config))
