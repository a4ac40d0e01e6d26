"""Stage `baseline`: fit every model in `baseline` (a dummy and a simple model); the work
is `pipeline.steps.fit_baselines`."""

from __future__ import annotations

import logging

from valuegate.config import load_params
from valuegate.io import atomic_dir
from valuegate.stages.common import (
    BASELINES,
    check_data,
    read_splits_while_importing,
    run_stage,
    write_fitted,
)

# by name: run as `python -m`, __name__ is __main__, outside valuegate's loggers
log = logging.getLogger("valuegate.stages.baseline")


def main(argv: list[str]) -> None:
    pending_splits = read_splits_while_importing()
    # scikit-learn and the estimators are imported here, while the splits are read (the
    # step would import them only once it is called, after the read)
    import valuegate.training  # noqa: F401
    from valuegate.pipeline import steps

    config = load_params()
    schema = check_data(config)  # prepared from this config (contract B)
    fitted = steps.fit_baselines(config, schema, pending_splits())
    with atomic_dir(BASELINES) as tmp:
        for model in fitted.values():
            write_fitted(model, tmp / model.name, config)
    for model in fitted.values():
        log.info(
            f"baseline: fitted {model.name} ({model.info['estimator']}) in "
            f"{model.fit_seconds:.2f} s"
        )


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
