"""Stage `baseline`: fit every model in `baseline` (a dummy and a simple model)."""

from __future__ import annotations

from valuegate.config import load_params
from valuegate.io import atomic_dir
from valuegate.stages.common import (
    BASELINES,
    check_data,
    read_splits_while_importing,
    run_stage,
    write_fitted,
)


def main(argv: list[str]) -> None:
    pending_splits = read_splits_while_importing()
    from valuegate.training import fit_model  # scikit-learn, the estimators

    config = load_params()
    schema = check_data(config)  # prepared from this config (contract B)
    splits = pending_splits()
    fitted = [
        fit_model(name, "baseline", spec, config, schema, splits)
        for name, spec in config.baseline.items()
    ]
    with atomic_dir(BASELINES) as tmp:
        for model in fitted:
            write_fitted(model, tmp / model.name, config)
    for model in fitted:
        print(
            f"baseline: fitted {model.name} ({model.info['estimator']}) in "
            f"{model.fit_seconds:.2f} s"
        )


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
