"""Stage `train@<name>`: fit one candidate from `model.<name>` (one stage per candidate,
so changing one candidate's params retrains only that candidate)."""

from __future__ import annotations

from valuegate.config import load_params
from valuegate.config.messages import nearest
from valuegate.errors import ConfigError
from valuegate.io import atomic_dir
from valuegate.stages.common import (
    CANDIDATES,
    check_data,
    read_splits_while_importing,
    run_stage,
    write_fitted,
)


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise ConfigError("usage: python -m valuegate.stages.train <candidate name>")
    name = argv[0]
    pending_splits = read_splits_while_importing()
    from valuegate.training import fit_model  # scikit-learn, the estimators

    config = load_params()
    if name not in config.model:
        hint = nearest(name, config.model)
        raise ConfigError(
            f"model.{name}: no such candidate in params.yaml"
            + (f" (did you mean {hint!r}?)" if hint else "")
            + f". Candidates: {', '.join(config.model)}."
        )
    fitted = fit_model(
        name, "candidate", config.model[name], config, check_data(config), pending_splits()
    )
    with atomic_dir(CANDIDATES / name) as tmp:
        write_fitted(fitted, tmp, config)
    print(f"train: fitted {name} ({fitted.info['estimator']}) in {fitted.fit_seconds:.2f} s")


if __name__ == "__main__":
    raise SystemExit(run_stage(main))
