"""The `valuegate` console script.

valuegate compose [OVERRIDE ...]   compose conf/ (+ Hydra overrides) into params.yaml
valuegate check                    validate params.yaml and the data it points at
valuegate show                     print the last evaluation (reports/evaluation.json)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from valuegate import __version__
from valuegate.errors import ValuegateError


def _compose(args: argparse.Namespace) -> None:
    from valuegate.config import compose_config, write_params
    from valuegate.config.loading import validate

    raw = compose_config(args.conf_dir, args.overrides)
    validate(raw, source=f"{args.conf_dir}/ composed with {args.overrides or 'no overrides'}")
    path = write_params(raw, args.params)
    print(
        f"wrote {path} from {args.conf_dir}/"
        + (f" with {args.overrides}" if args.overrides else "")
    )


def _check(args: argparse.Namespace) -> None:
    from valuegate.config import load_params
    from valuegate.data import load_raw, prepare

    config = load_params(args.params)
    raw = load_raw(config.data)
    _splits, schema = prepare(raw, config.data, config.seed, source_sha256="")
    print(
        f"{args.params} is valid: task {schema.task}, target {schema.target!r}, "
        f"{len(schema.numeric)} numeric + {len(schema.categorical)} categorical features, "
        f"{sum(schema.rows.values())} rows; baselines {list(config.baseline)}, "
        f"candidates {list(config.model)}."
    )


def _show(args: argparse.Namespace) -> None:
    from valuegate.report import summary_table

    path = Path(args.report)
    if not path.is_file():
        raise ValuegateError(f"{path} not found: run the pipeline first (`dvc exp run`).")
    print(summary_table(json.loads(path.read_text())))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="valuegate",
        description="Config-driven ML experiments gated on business value.",
    )
    parser.add_argument("--version", action="version", version=f"valuegate {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    compose = sub.add_parser(
        "compose",
        help="compose conf/ into params.yaml (what `dvc exp run` does), for `dvc repro`",
    )
    compose.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=xgboost")
    compose.add_argument("--conf-dir", default="conf")
    compose.add_argument("--params", default="params.yaml")
    compose.set_defaults(func=_compose)

    check = sub.add_parser("check", help="validate params.yaml and the data it points at")
    check.add_argument("--params", default="params.yaml")
    check.set_defaults(func=_check)

    show = sub.add_parser("show", help="print the last evaluation as a table")
    show.add_argument("--report", default="reports/evaluation.json")
    show.set_defaults(func=_show)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except ValuegateError as exc:
        print(f"valuegate: {exc.kind}: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
