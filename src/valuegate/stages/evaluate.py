"""Stage `evaluate`: value every baseline and candidate on the validation split.

Writes `metrics/evaluate.json` (DVC metrics: value per period, uplift over the best
baseline, chosen threshold and headline metrics per model), `reports/evaluation.json` (the
full record: every figure, the objective, which model is best and whether it is good
enough) and `plots/<kind>/<model>.csv` (value vs. threshold, ROC, PR, calibration).
"""

from __future__ import annotations

import pandas as pd

from valuegate.business import value_model
from valuegate.config import load_params
from valuegate.data import target_vector
from valuegate.errors import ArtifactError
from valuegate.evaluation import evaluate_models, lean_metrics
from valuegate.io import atomic_dir, atomic_write_json
from valuegate.report import summary_table
from valuegate.stages.common import (
    BASELINES,
    CANDIDATES,
    METRICS,
    PLOTS,
    PREDICTIONS_FILE,
    REPORTS,
    read_schema,
    read_splits,
    run_stage,
)


def main(argv: list[str]) -> None:
    config = load_params()
    schema = read_schema()
    valid = read_splits(names=("valid",))["valid"]
    y_valid = target_vector(valid, config.data)
    amount = valid[schema.amount_column].to_numpy(float) if schema.amount_column else None
    roles, predictions = {}, {}
    for name, (role, _spec) in config.all_models().items():
        path = (BASELINES if role == "baseline" else CANDIDATES) / name / PREDICTIONS_FILE
        if not path.is_file():
            raise ArtifactError(f"{path} not found: run the {role} stage first (`dvc repro`).")
        frame = pd.read_parquet(path)
        scores = frame.loc[frame["split"] == "valid"].sort_values("row")["score"].to_numpy()
        if len(scores) != len(valid):
            raise ArtifactError(
                f"{path} scores {len(scores)} validation rows, the split has {len(valid)}: "
                "it is stale; run `dvc repro`."
            )
        roles[name], predictions[name] = role, scores
    summary, plots = evaluate_models(
        config, value_model(config), roles, y_valid, predictions, amount
    )
    atomic_write_json(REPORTS / "evaluation.json", summary)
    atomic_write_json(METRICS / "evaluate.json", lean_metrics(summary))
    with atomic_dir(PLOTS) as tmp:
        for kind, per_model in plots.items():
            (tmp / kind).mkdir()
            for name, columns in per_model.items():
                pd.DataFrame(columns).to_csv(tmp / kind / f"{name}.csv", index=False)
    print(summary_table(summary))


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
