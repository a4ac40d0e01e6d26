"""`valuegate backtest [OVERRIDE ...]`: the thin edge of the backtest (retrain/backtest.py).

Composes conf/ with the Hydra overrides (as `valuegate compose` does), reads the data, runs
the replay (a tqdm bar over policies x periods on a terminal), then writes
reports/backtest.json (the record), metrics/backtest.json (its numbers, a top-level
`metrics:` entry of dvc.yaml) and reports/backtest.html (the page), each atomically and
only after everything is computed: a failed backtest leaves the previous outputs as they
were. Prints the table of totals on stdout.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from valuegate.paths import METRICS, REPORTS

BACKTEST_RECORD = REPORTS / "backtest.json"
BACKTEST_METRICS = METRICS / "backtest.json"
BACKTEST_PAGE = REPORTS / "backtest.html"

log = logging.getLogger("valuegate.retrain.backtest")


def metrics(record: dict[str, Any]) -> dict[str, Any]:
    """The numbers DVC shows: per policy its totals, and the trainings count."""
    keys = ("value", "cost", "net", "net_low", "net_high", "retrains", "promotions")
    return {
        "policies": {n: {k: p[k] for k in keys} for n, p in record["policies"].items()},
        "distinct_trainings": record["distinct_trainings"],
    }


def table(record: dict[str, Any]) -> str:
    """The totals as a plain-text table (stdout)."""
    currency = record["currency"]
    rows = [("policy", "retrains", "promoted", "value", "cost", "net", "net interval")]
    for name, p in record["policies"].items():
        rows.append(
            (
                name + (" *" if name == record["winner"] else ""),
                str(p["retrains"]),
                str(p["promotions"]),
                f"{p['value']:,.0f}",
                f"{p['cost']:,.0f}",
                f"{p['net']:,.0f}",
                f"{p['net_low']:,.0f} to {p['net_high']:,.0f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    span = f"{record['periods'][0]}-{record['periods'][-1]}"
    return "\n".join([f"money in {currency} over {span}", *lines, "", record["verdict"]])


def run_command(conf_dir: str | Path, overrides: list[str], root: str | Path = ".") -> dict:
    """Compose, replay, write; returns the record."""
    from valuegate.data import file_sha256, load_raw
    from valuegate.io import atomic_write_json, atomic_write_text
    from valuegate.logs import progress
    from valuegate.retrain.backtest import pipeline_trainer, replay, split_periods
    from valuegate.retrain.backtest_report import build_page
    from valuegate.sweep import compose

    _raw, config = compose(conf_dir, overrides)
    raw = load_raw(config.data)
    first_until, periods = split_periods(config, raw)
    policies = config.retrain.backtest.policies
    log.info(
        "backtest: %d policies over periods %s (first model: data up to %s)",
        len(policies),
        [p.label for p in periods],
        first_until,
    )
    trainer = pipeline_trainer(config, raw, file_sha256(config.data.path))
    with progress("backtest", total=len(policies) * len(periods), unit="period") as bar:
        record = replay(config, first_until, periods, trainer, bar)
    page = build_page(record)  # everything computed before the first write
    root = Path(root)
    atomic_write_json(root / BACKTEST_RECORD, record)
    atomic_write_json(root / BACKTEST_METRICS, metrics(record))
    atomic_write_text(root / BACKTEST_PAGE, page)
    log.info(
        "backtest: %d distinct trainings; wrote %s, %s, %s",
        record["distinct_trainings"],
        BACKTEST_RECORD,
        BACKTEST_METRICS,
        BACKTEST_PAGE,
    )
    print(table(record))
    return record
