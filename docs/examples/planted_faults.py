"""The German credit example with four planted faults, assessed: what the report says.

    python docs/examples/planted_faults.py [--out reports/assessment-planted.html]

Planted into the prepared splits (seeded): 30 flipped training labels, a shifted
`duration_in_month` in test, a column that is the outcome recorded after the fact
(`repaid_late`) and 30 training rows copied into test. Prints the findings that block or
warn, writes the HTML report, and exits 0 when every planted fault is found, else 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]


def planted(splits: dict[str, pd.DataFrame], target: str, seed: int):
    """(splits with faults, the training row positions whose label was flipped)."""
    rng = np.random.default_rng(seed)
    train, valid, test = (splits[s].copy() for s in ("train", "valid", "test"))
    flipped = rng.choice(np.arange(len(train)), size=30, replace=False)
    labels = train[target].to_numpy(dtype=object).copy()
    labels[flipped] = np.where(labels[flipped] == "bad", "good", "bad")
    train[target] = labels
    test["duration_in_month"] = test["duration_in_month"] * 2 + 12  # a shifted feature
    for frame in (train, valid, test):  # the recorded outcome, known only afterwards
        bad = frame[target] == "bad"
        frame["repaid_late"] = np.where(bad, 1.0, 0.0) + rng.normal(0, 0.05, len(frame))
    copies = train.drop(index=flipped).iloc[:30]  # training rows copied into test
    test = pd.concat([test, copies], ignore_index=True)
    return {"train": train, "valid": valid, "test": test}, flipped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="reports/assessment-planted.html")
    args = parser.parse_args(argv)

    from valuegate.assess.assessment import assess
    from valuegate.assess.report import render_html
    from valuegate.config import compose_config
    from valuegate.config.loading import validate
    from valuegate.data import load_raw, prepare
    from valuegate.stages.assess import assess_data

    config = validate(compose_config(ROOT / "conf", []))
    splits, schema = prepare(load_raw(config.data, ROOT), config.data, config.seed, "example")
    faulty, flipped = planted(splits, schema.target, config.seed)
    schema.numeric.append("repaid_late")  # the planted column is a feature like the others
    result = assess(assess_data(faulty, schema, config), config.assess, config.seed)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(result, "German credit with planted faults", "conf/assess"))
    for finding in result.findings:
        if finding.status == "open" and finding.severity != "info":
            print(f"{finding.severity:5}  {finding.id}: {finding.title}")
    # The example's 600 training rows are all checked (fewer than assess.sample_rows), so
    # the chart data is in row order.
    flagged = np.asarray(result.charts["label_noise"]["flagged"], dtype=bool)
    others = np.setdiff1d(np.arange(len(flagged)), flipped)
    caught, base = flagged[flipped].mean(), flagged[others].mean()
    found = {
        "leaky column": "target_leakage:repaid_late" in {f.id for f in result.blocking},
        "cross-split copies": result.figures.get("cross_split_duplicates") == 30,
        f"flipped labels ({caught:.0%} of them flagged vs. {base:.0%} of the other rows)": (
            caught >= 2 * base
        ),
        "shifted feature": any(f.id == "shift:duration_in_month" for f in result.findings),
    }
    print(f"report: {out}")
    for fault, ok in found.items():
        print(f"{'found' if ok else 'MISSED':6} {fault}")
    return 0 if all(found.values()) else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    raise SystemExit(main())
