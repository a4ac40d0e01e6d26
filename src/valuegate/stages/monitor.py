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
from valuegate.monitor.run import summarise, window_alerts, window_record
from valuegate.monitor.windows import (
    LOG_ID,
    LOG_TIME,
    cut_windows,
    is_log,
    join_labels,
    label_vector,
    read_log,
    read_rows,
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
) -> dict[str, Any]:
    """Monitor monitor.input with monitor.model (or `bundle`, a loaded bundle); write the
    record, metrics and page. A registry without a champion: a record saying so."""
    if bundle is None:
        from valuegate.registry import Registry

        registry = Registry(config.deploy.registry)
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
    if from_log:
        if not Path(source).is_file():
            raise DataError(f"monitor.input {source}: file not found.")
        frame = read_log(Path(source), bundle.version)
    else:
        frame = read_rows(source)
    features = [f["name"] for f in bundle.fields]
    lacking = [c for c in features if c not in frame.columns]
    if lacking:
        raise DataError(
            f"monitor.input {source} lacks column(s) {lacking} that the model "
            f"{bundle.version} reads; it has {[str(c) for c in frame.columns][:30]}."
        )
    scores = frame["score"].to_numpy(float) if "score" in frame.columns else None
    known = set(features) | {config.data.target, config.data.id_column, config.data.time_column}
    known |= {"score", "decision", "expected_value", "model_version", LOG_TIME, LOG_ID, "row"}
    extra = sorted(str(c) for c in frame.columns if c not in known)

    id_column = settings.id_column or (LOG_ID if from_log else config.data.id_column)
    task, target = bundle.task, config.data.target
    positive = bundle.manifest.get("data", {}).get("positive_label", config.data.positive_label)
    y = None
    labels_from = None
    if settings.labels:
        if id_column is None:
            raise DataError(
                "monitor.labels is set but no id column joins them: set monitor.id_column "
                "(or data.id_column)."
            )
        labels = read_rows(settings.labels, "monitor.labels")
        joined = join_labels(frame, labels, id_column, target, f"monitor.labels {settings.labels}")
        y = label_vector(joined, task, positive)
        labels_from = settings.labels
    elif target in frame.columns:
        y = label_vector(frame[target], task, positive)
        labels_from = f"{source} (column {target})"

    window = settings.window
    time_column = window.time_column or (LOG_TIME if from_log else config.data.time_column)
    windows = cut_windows(
        frame, window.by, window.size, time_column, window.every, window.start, from_log
    )
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
    records, alerts = [], []
    for w in windows:
        part = frame.iloc[w.rows]
        record = window_record(
            w,
            part,
            None if scores is None else scores[w.rows],
            None if y is None else y[w.rows],
            bundle.fields,
            profile,
            model,
            bundle.score_frame,
            knobs,
        )
        record["alerts"] = window_alerts(record, settings.alerts.value_drop, currency, period)
        alerts += record["alerts"]
        records.append(record)
        log.info("monitored window %s (%d rows)", w.label, len(w.rows))
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
