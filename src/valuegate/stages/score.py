"""Stage `score`: batch scoring as part of the graph — the champion scores a file
(deploy.batch.input, default data.path) into reports/scored.parquet, exactly what
`valuegate predict --model champion` does."""

from __future__ import annotations

import pandas as pd

from valuegate.config import load_params
from valuegate.io import atomic_write_json
from valuegate.registry import Registry
from valuegate.serving.batch import predict_file
from valuegate.stages.common import METRICS, REPORTS, run_stage


def main(argv: list[str]) -> None:
    config = load_params()
    registry = Registry(config.deploy.registry)
    source = config.deploy.batch.input or config.data.path
    target = REPORTS / "scored.parquet"
    if registry.champion is None:
        # The deploy gate refused every model so far: nothing to score with. Record it
        # (the graph stays green; `valuegate predict` would fail with the same message).
        pd.DataFrame({"row": [], "score": []}).to_parquet(target, index=False)
        atomic_write_json(
            METRICS / "score.json",
            {
                "rows_scored": 0,
                "model_version": None,
                "skipped": f"the registry {registry.root} has no champion",
            },
        )
        print(
            f"score: skipped, the registry {registry.root} has no champion "
            "(metrics/deploy.json says why)"
        )
        return
    bundle = registry.load("champion")
    summary = predict_file(
        bundle,
        source,
        target,
        chunk_size=config.deploy.batch.chunk_size,
        on_error=config.deploy.batch.on_error,
    )
    summary.update(input=source, model_version=bundle.version)
    atomic_write_json(METRICS / "score.json", summary)
    print(
        f"scored {summary['rows_scored']} of {summary['rows_in']} rows of {source} with "
        f"{bundle.version} into {REPORTS / 'scored.parquet'}"
    )


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
