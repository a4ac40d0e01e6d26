"""Stage `train@<name>`: fit one candidate from `model.<name>` (one stage per candidate,
so changing one candidate's params retrains only that candidate); the work is
`pipeline.steps.fit_candidate`."""

from __future__ import annotations

import logging

from valuegate.config import load_params
from valuegate.errors import ConfigError
from valuegate.io import atomic_dir
from valuegate.stages.common import (
    CANDIDATES,
    check_data,
    read_splits_while_importing,
    run_stage,
    write_fitted,
)

# by name: run as `python -m`, __name__ is __main__, outside valuegate's loggers
log = logging.getLogger("valuegate.stages.train")


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise ConfigError("usage: python -m valuegate.stages.train <candidate name>")
    name = argv[0]
    pending_splits = read_splits_while_importing()
    # scikit-learn and the estimators are imported here, while the splits are read (the
    # step would import them only once it is called, after the read)
    import valuegate.training  # noqa: F401
    from valuegate.pipeline import steps

    config = load_params()
    schema = check_data(config)  # prepared from this config (contract B)
    fitted = steps.fit_candidate(config, schema, pending_splits(), name)
    with atomic_dir(CANDIDATES / name) as tmp:
        write_fitted(fitted, tmp, config)
    log.info(f"train: fitted {name} ({fitted.info['estimator']}) in {fitted.fit_seconds:.2f} s")


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
