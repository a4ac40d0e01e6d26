"""The `valuegate` console script.

valuegate compose [OVERRIDE ...]   compose conf/ (+ Hydra overrides) into params.yaml
valuegate check                    validate params.yaml and the data it points at
valuegate show                     print the last evaluation (reports/evaluation.json)
valuegate report [--timings]       the business report of the last run (reports/run.html)
valuegate models list|promote|rollback   the model registry (champion pointer)
valuegate predict --model champion --input X --output Y   batch scoring, streamed
valuegate serve --model champion   the HTTP prediction service (FastAPI + uvicorn)
valuegate backtest [OVERRIDE ...]  retraining policies replayed in money (reports/backtest.*)
valuegate init DIR [--example NAME]   a new project (git + DVC) from an example

-q / -v on any command: warnings only / debug lines too (valuegate.logs). Results a user
may pipe (tables, listings, JSON) go to stdout; progress and status lines to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import valuegate
from valuegate.errors import ArtifactError, ValuegateError
from valuegate.logs import NORMAL, QUIET, VERBOSE, command_logging

log = logging.getLogger("valuegate.cli")


def _compose(args: argparse.Namespace) -> None:
    from valuegate.config import compose_config, write_params
    from valuegate.config.loading import deep_validate, validate

    raw = compose_config(args.conf_dir, args.overrides)
    source = f"{args.conf_dir}/ composed with {args.overrides or 'no overrides'}"
    deep_validate(validate(raw, source=source), source, args.conf_dir)
    path = write_params(raw, args.params)
    log.info(
        "wrote %s from %s/%s",
        path,
        args.conf_dir,
        f" with {args.overrides}" if args.overrides else "",
    )


def _check(args: argparse.Namespace) -> None:
    from valuegate.config import load_params
    from valuegate.config.loading import deep_validate, problems_message, yaml_problems
    from valuegate.data import load_raw, prepare
    from valuegate.errors import ConfigError

    conf_dir = Path(args.params).parent / "conf"
    problems = yaml_problems(conf_dir) if conf_dir.is_dir() else []
    if problems:  # before the freshness check, which would only say params.yaml is stale
        raise ConfigError(problems_message(problems, f"{conf_dir.name}/"))
    config = load_params(args.params)
    deep_validate(config, args.params, conf_dir)
    raw = load_raw(config.data)
    _splits, schema = prepare(
        raw, config.data, config.seed, source_sha256="", window=config.retrain.window
    )
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


def _report(args: argparse.Namespace) -> None:
    from valuegate.config import load_params
    from valuegate.stages.report import OUTPUT, TIMED_OUTPUT, write_report

    default = TIMED_OUTPUT if args.timings else OUTPUT
    path = write_report(load_params(args.params), Path(args.output or default), args.timings)
    log.info("wrote %s", path)


def _dvc_settings(overrides: list[str]) -> str:
    """`-S ...` for each override, quoted for a POSIX shell."""
    import shlex

    return " ".join(f"-S {shlex.quote(o)}" for o in overrides)


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("~+")


def pipeline_command(overrides: list[str], best_params: dict | None = None, candidate=None):
    """The `dvc exp run` line for the user's overrides (every one kept, `+experiment=`
    included), with the best params on top; a user override of the same key gives way."""
    tuned = [f"model.{candidate}.params.{k}={v}" for k, v in (best_params or {}).items()]
    replaced = {_override_key(o) for o in tuned}
    kept = [o for o in overrides if _override_key(o) not in replaced]
    return f"dvc exp run {_dvc_settings([*kept, *tuned])}".rstrip()


def _worker_index(args: argparse.Namespace) -> int:
    """0 for the run that owns the study (the tune stage, `valuegate tune`): it alone
    closes trials a killed run left open. A `--worker` gets its `--worker-index` (1 or
    more) or, without one, a number drawn from its host name and process id: workers on
    several machines then neither close each other's running trials (which crashed them)
    nor sample with the same seed."""
    from valuegate.errors import ConfigError

    if not args.worker:
        if args.worker_index is not None:
            raise ConfigError("--worker-index numbers a --worker process; add --worker")
        return 0
    if args.worker_index is None:
        import os
        import socket
        import zlib

        return 1 + zlib.crc32(f"{socket.gethostname()}:{os.getpid()}".encode()) % 999_999
    if args.worker_index < 1:
        raise ConfigError(
            f"--worker-index: {args.worker_index} is not a worker's number; allowed: 1 or "
            "more (0 is the run that owns the study, the tune stage or `valuegate tune`)"
        )
    return args.worker_index


def _tune(args: argparse.Namespace) -> None:
    from valuegate.config import compose_config, load_params
    from valuegate.config.loading import deep_validate, validate
    from valuegate.errors import ConfigError, GateRefusedError
    from valuegate.stages.common import (
        check_data,
        keep_freed_memory_for_reuse,
        read_gate_record,
        read_splits,
        stale_keys,
    )
    from valuegate.stages.tune import JOURNAL, await_release
    from valuegate.tuning import tune_candidate

    worker_index = _worker_index(args)
    if args.worker:
        keep_freed_memory_for_reuse()  # like the stage process it works beside
        config = load_params(args.params)
    else:
        # Its own config: conf/ with the user's overrides, not the last run's params.yaml.
        raw = compose_config(args.conf_dir, args.overrides)
        source = f"{args.conf_dir}/ composed with {args.overrides}"
        config = deep_validate(validate(raw, source=source), source, args.conf_dir)
    candidate = args.candidate
    if candidate is None:
        if len(config.model) != 1:
            raise ConfigError(
                f"valuegate tune tunes one candidate; the config selects {list(config.model)}. "
                "Pick one with model=<name> (or --candidate <name>)."
            )
        candidate = next(iter(config.model))
    if candidate not in config.model:
        raise ConfigError(f"--candidate {candidate!r} is not selected; have {list(config.model)}")
    # The prepared data and the gate's record must come from this config (data, seed,
    # objective, gate, baselines, this candidate's params), not from another experiment.
    fix = (
        f"run `{pipeline_command(args.overrides)}` first (it prepares, trains and gates this "
        "config), then valuegate tune again"
    )
    schema = check_data(config, fix=fix)
    # --force tunes whatever the gate said, so this candidate's entry need not be current;
    # a stale entry is then ignored (the study is marked forced).
    gate = read_gate_record(config, [] if args.force else [candidate], fix=fix)
    current = not stale_keys(gate, config, [f"model.{candidate}"])
    decision = gate["candidates"].get(candidate) if current else None
    passed = decision is not None and decision["passed"]
    if not passed and not args.force:
        why = decision["reason"] if decision else f"{candidate} was not gated in the last run"
        raise GateRefusedError(
            f"{why}. valuegate tunes only candidates that passed the gate "
            "(reports/gate.json); add --force to tune anyway (the study is marked forced)."
        )
    result = tune_candidate(
        config,
        schema,
        read_splits(names=("train",))["train"],
        candidate,
        JOURNAL,
        forced=not passed,
        worker_index=worker_index,
        before_study=await_release if args.await_release else None,
    )
    if args.worker:
        return
    summary = result.summary()
    print(json.dumps(summary, indent=2, default=str))
    print(
        "To train with these params in the pipeline: "
        + pipeline_command(args.overrides, result.best_params, candidate)
    )
    _write_tuned_model(config, schema, result, args)


def _write_tuned_model(config, schema, result, args: argparse.Namespace) -> None:
    """The sweep's result as a model: the best params refit exactly as the tune stage
    does, written to the stage's outputs (models/tuned/, reports/tune.json, plots/tune/),
    then valued by the evaluate stage when params.yaml is this config, so that
    `valuegate show`, evaluate and package see it like the stage's own (docs/tuning.md)."""
    from valuegate.config import load_params
    from valuegate.stages.common import TUNE_FILE, TUNED, read_splits, stale_keys, tune_keys
    from valuegate.stages.tune import refit_best, write_outputs

    log = logging.getLogger("valuegate.tune")
    model = refit_best(config, schema, read_splits(), result)
    study = {k: v for k, v in result.summary().items() if k != "seconds"}  # no timings
    record = {
        "tuning_allowed": not result.forced,
        # True when --force tuned a candidate the gate had not passed.
        "forced": result.forced,
        "written_by": "valuegate tune",
        "overrides": list(args.overrides),
        "studies": {result.candidate: study},
    }
    write_outputs(config, [(model, result)], record)
    log.info(
        f"wrote {TUNED / model.name}/ and {TUNE_FILE}"
        + (" (forced past the gate)" if result.forced else "")
        + "; the next `dvc repro` reruns the tune stage, which replaces them (docs/tuning.md)."
    )
    # Value it like every model, but only in the config the stages read (params.yaml):
    # with other overrides the evaluate stage would rightly refuse this record.
    try:
        stages_config = load_params(args.params)
        stale = stale_keys(
            json.loads(TUNE_FILE.read_text()), stages_config, tune_keys(result.candidate)
        )
    except ValuegateError as exc:
        stale, why = ["params.yaml"], str(exc)
    else:
        why = f"{args.params} differs in {', '.join(stale)}"
    if stale:
        log.warning(
            f"not valued: {why} (`valuegate show` still shows the last evaluation, made "
            f"before this model). Run `{pipeline_command(args.overrides)}` then "
            "valuegate tune again, or the printed `dvc exp run` line."
        )
        return
    from valuegate.stages.evaluate import main as evaluate

    log.info("valuing %s with the evaluate stage", model.name)
    evaluate([])
    log.info("valued in reports/evaluation.json: `valuegate show` lists it.")


def _train(args: argparse.Namespace) -> None:
    from valuegate.errors import ConfigError
    from valuegate.sweep import format_summary, multirun

    if not args.multirun:
        raise ConfigError(
            "valuegate train runs sweeps: add -m, e.g. `valuegate train -m "
            "model=xgboost,random_forest`. For one run use `dvc exp run -S ...`."
        )
    sweep_dir = multirun(args.conf_dir, args.overrides, args.output, tune=not args.no_tune)
    print(format_summary(sweep_dir))


def _deploy_config(params: str):
    """deploy settings from params.yaml when there is one, else the defaults."""
    from valuegate.config.schema import DeployConfig

    path = Path(params)
    if path.is_file():
        import yaml

        raw = yaml.safe_load(path.read_text()) or {}
        if "deploy" in raw:
            from valuegate.config.loading import validate

            return validate(raw, source=str(path)).deploy
    return DeployConfig()


def _registry(args: argparse.Namespace):
    from valuegate.registry import Registry

    return Registry(args.registry or _deploy_config(args.params).registry)


def _models(args: argparse.Namespace) -> None:
    registry = _registry(args)
    if args.action == "list":
        rows = registry.listing()
        _champion, pointer_error = registry.champion_or_error()
        if not rows:
            print(f"the registry {registry.root} holds no bundles yet.")
        for row in rows:
            mark = "*" if row["champion"] else " "
            if row["status"] != "ok":
                # A tampered bundle is refused by every loader; say so here too.
                print(f"{mark} {row['version']:<6} {row['status'].upper()}: {row['error']}")
                continue
            value = row["test_value_per_period"]
            print(
                f"{mark} {row['version']:<6} {row['model']:<24} data {row['data']:<16} "
                f"test value/period {value if value is None else f'{value:,.0f}':>10}  "
                f"{row['hot_path']:<16} {row['created']}"
            )
        if rows:
            print("* = champion")
        if pointer_error:
            raise ArtifactError(pointer_error)
    elif args.action == "promote":
        if not args.version:
            raise ValuegateError("valuegate models promote needs a version, e.g. v2.")
        registry.promote(args.version)
        print(f"{args.version} is now the champion of {registry.root}.")
    else:
        version = registry.rollback()
        print(f"rolled back: {version} is the champion of {registry.root} again.")


def _predict(args: argparse.Namespace) -> None:
    import signal

    # A `kill` (SIGTERM) unwinds like Ctrl-C, so the unfinished output file is removed
    # (a SIGKILL's is removed by the next run writing the same output). The handler
    # before it is put back after: run in-process (the tests), the command leaves none.
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        _score_file(args)
    finally:
        if previous is not None:  # None: a handler set outside Python, not restorable
            signal.signal(signal.SIGTERM, previous)


def _score_file(args: argparse.Namespace) -> None:
    from valuegate.serving.batch import describe_extras, predict_file

    deploy = _deploy_config(args.params)
    bundle = _registry(args).load(args.model)
    if args.dask_scheduler:  # Parquet partitions on a Dask cluster (valuegate.distributed)
        from valuegate.distributed.score import score_with_scheduler

        on_error = args.on_error or deploy.batch.on_error
        summary = score_with_scheduler(
            args.dask_scheduler, bundle, args.input, args.output, on_error
        )
    else:
        summary = predict_file(
            bundle,
            args.input,
            args.output,
            chunk_size=args.chunk_size or deploy.batch.chunk_size,
            on_error=args.on_error or deploy.batch.on_error,
            encoding=args.encoding,
        )
    print(
        f"scored {summary['rows_scored']} of {summary['rows_in']} rows with {bundle.version} "
        f"into {args.output}"
        + (f"; skipped {summary['rows_skipped']} bad rows" if summary["rows_skipped"] else "")
        + describe_extras(summary)
    )


def _monitor(args: argparse.Namespace) -> None:
    from valuegate.stages.monitor import run_command

    run_command(args.params, args.overrides)


def _backtest(args: argparse.Namespace) -> None:
    from valuegate.retrain.backtest_command import run_command

    run_command(args.conf_dir, args.overrides)


def _retrain(args: argparse.Namespace) -> None:
    from valuegate.retrain.command import run_command

    run_command(args)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def _serve(args: argparse.Namespace) -> None:
    import os
    import shutil
    import tempfile

    import uvicorn

    from valuegate.bundle import load_bundle
    from valuegate.serving.app import (
        ENV_SETTINGS,
        MULTIPROC_ENV,
        NoDelayH11Protocol,
        create_app,
    )

    serve = _deploy_config(args.params).serve
    registry = _registry(args)
    path = registry.path_of(args.model)
    bundle = load_bundle(path)  # verify before binding the port: a bad bundle never serves
    settings = {
        "bundle": str(path.resolve()),
        "max_request_bytes": serve.max_request_bytes,
        "max_records": serve.max_records,
        "token_env": serve.token_env,
        "log_path": None if args.no_log else (args.log or serve.log_path),
        # /docs shows the project's example records (those with this bundle's fields)
        "examples_dir": str(Path("docs/examples").resolve()),
    }
    if settings["log_path"]:
        from valuegate.serving.log import PredictionLog

        # Open the log here: a file of another layout is refused with its message before
        # the port is bound, not in every worker.
        PredictionLog(settings["log_path"], bundle.fields, bundle.task).close()
    host, port = args.host or serve.host, args.port or serve.port
    workers = args.workers or serve.workers
    # stays visible with -q: where the service listens is what the user needs to know
    log.warning(
        "serving %s (%s, %s) on http://%s:%s with %s worker(s)",
        bundle.version,
        bundle.manifest["model"]["name"],
        bundle.hot_path,
        host,
        port,
        workers,
    )
    options = {"host": host, "port": port, "http": NoDelayH11Protocol, "log_level": "warning"}
    if workers == 1:
        uvicorn.run(create_app(bundle, settings), **options)
        return
    os.environ[ENV_SETTINGS] = json.dumps(settings)
    # Each worker is its own process: Prometheus values go to a directory shared by the
    # workers (fresh per run, removed after), so /metrics counts every worker's requests.
    metrics_dir = tempfile.mkdtemp(prefix="valuegate-metrics-")
    os.environ[MULTIPROC_ENV] = metrics_dir
    try:
        uvicorn.run("valuegate.serving.app:app_from_env", factory=True, workers=workers, **options)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _init(args: argparse.Namespace) -> None:
    from valuegate.scaffold import init_project, readme_commands

    directory = init_project(Path(args.directory), args.example)
    log.info("initialised %s (git + DVC, example %s)", directory, args.example)
    # the result: where to go and what to run (stdout)
    print(f"cd {directory}")
    for command in readme_commands(directory):
        print(command)


def package_version() -> str:
    """The installed distribution's version (package metadata, what pip installed), or the
    source tree's `valuegate.__version__` when valuegate runs uninstalled (PYTHONPATH)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("valuegate")
    except PackageNotFoundError:
        return valuegate.__version__


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default: argparse's "(default: X)", unless the
    help already says what the default is (a None default means "from params.yaml" or
    "the one selected", which only the help text can say)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default in (None, argparse.SUPPRESS) or action.required:
            return text
        return super()._get_help_string(action)


def _verbosity_options(parser: argparse.ArgumentParser, default: object) -> None:
    """-q / -v, on the top parser (default NORMAL) and on every command (default SUPPRESS:
    an option not given there leaves the top parser's value), so both `valuegate -q show`
    and `valuegate show -q` work."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "-q",
        "--quiet",
        dest="verbosity",
        action="store_const",
        const=QUIET,
        default=default,
        help="warnings and errors only: no progress lines or bars (default: progress lines)",
    )
    group.add_argument(
        "-v",
        "--verbose",
        dest="verbosity",
        action="store_const",
        const=VERBOSE,
        default=default,
        help="debug lines too: each step's timing, what was read (default: off)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="valuegate",
        description="Config-driven ML experiments gated on business value.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"valuegate {package_version()}",
        help="print valuegate's version (from the installed package's metadata) and exit",
    )
    _verbosity_options(parser, NORMAL)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add_parser(*args, **kwargs) -> argparse.ArgumentParser:
        # every subcommand's --help shows the defaults too, and takes -q / -v
        command = sub.add_parser(*args, formatter_class=HelpFormatter, **kwargs)
        _verbosity_options(command, argparse.SUPPRESS)
        return command

    compose = add_parser(
        "compose",
        help="compose conf/ into params.yaml (what `dvc exp run` does), for `dvc repro`",
    )
    compose.add_argument(
        "overrides", nargs="*", help="Hydra overrides, e.g. model=xgboost (default: none)"
    )
    compose.add_argument("--conf-dir", default="conf", help="the Hydra config directory")
    compose.add_argument("--params", default="params.yaml", help="the file to write")
    compose.set_defaults(func=_compose)

    check = add_parser("check", help="validate params.yaml and the data it points at")
    check.add_argument("--params", default="params.yaml", help="the composed config to check")
    check.set_defaults(func=_check)

    tune = add_parser(
        "tune",
        help="a gated Optuna sweep of one candidate, with Hydra overrides",
        description="Tune one candidate on business value, only if it passed the gate "
        "(reports/gate.json), e.g.: valuegate tune model=xgboost tune.n_trials=40 "
        "'model.xgboost.search_space.max_depth={type: int, low: 2, high: 8}'",
    )
    tune.add_argument("overrides", nargs="*", help="Hydra overrides of conf/ (default: none)")
    tune.add_argument("--force", action="store_true", help="tune even if the gate refused")
    tune.add_argument(
        "--candidate", help="the candidate to tune (default: the one model=... selects)"
    )
    tune.add_argument(
        "--worker",
        action="store_true",
        help="join the study that params.yaml defines as an extra worker process",
    )
    tune.add_argument(
        "--worker-index",
        type=int,
        help="with --worker: its number, 1 or more, one per worker on every machine (seeds "
        "its sampler, labels its trials); default: drawn from the host name and process id",
    )
    # Set by the tune stage for the workers it starts: wait for its release on stdin.
    tune.add_argument("--await-release", action="store_true", help=argparse.SUPPRESS)
    tune.add_argument("--conf-dir", default="conf", help="the Hydra config directory")
    tune.add_argument(
        "--params",
        default="params.yaml",
        help="the stages' config: a --worker joins its study; a tuned model is valued if current",
    )
    tune.set_defaults(func=_tune)

    train = add_parser(
        "train",
        help="a Hydra multirun grid: the whole pipeline (assess, gate, tune) per run (-m)",
        description="e.g. valuegate train -m model=xgboost model.xgboost.params.max_depth=3,6",
    )
    train.add_argument("-m", "--multirun", action="store_true", help="sweep the overrides")
    train.add_argument("overrides", nargs="*", help="Hydra overrides; a,b,c sweeps (default: none)")
    train.add_argument("--conf-dir", default="conf", help="the Hydra config directory")
    train.add_argument("--output", default="multirun", help="root of the run directories")
    train.add_argument(
        "--no-tune", action="store_true", help="skip tuning, also where the gate passes"
    )
    train.set_defaults(func=_train)

    models = add_parser("models", help="the model registry: list, promote, rollback")
    models.add_argument(
        "action",
        choices=["list", "promote", "rollback"],
        help="list the bundles, promote VERSION to champion, or roll back to the previous one",
    )
    models.add_argument(
        "version", nargs="?", help="the version to promote, e.g. v2 (default: none)"
    )
    models.add_argument(
        "--registry", help="registry directory (default: deploy.registry of --params)"
    )
    models.add_argument(
        "--params", default="params.yaml", help="the config that names the registry"
    )
    models.set_defaults(func=_models)

    predict = add_parser(
        "predict",
        help="score a CSV/Parquet file with a bundle, in chunks",
        description="Stream --input through the bundle; writes row, score, decision and "
        "expected_value per row to --output (Parquet, or CSV by suffix) atomically.",
    )
    predict.add_argument(
        "--model", default="champion", help="champion, a registry version (v2) or a bundle dir"
    )
    predict.add_argument("--input", required=True, help="the rows to score (CSV or Parquet)")
    predict.add_argument(
        "--output", required=True, help="where to write the scores (Parquet, or CSV by suffix)"
    )
    predict.add_argument(
        "--on-error",
        choices=["skip", "fail"],
        default=None,
        help="a bad row: skip it (reported) or fail (default: deploy.batch.on_error)",
    )
    predict.add_argument(
        "--chunk-size",
        type=_positive_int,
        default=None,
        help="rows per chunk, >= 1 (default: deploy.batch.chunk_size)",
    )
    predict.add_argument("--encoding", default="utf-8", help="the input CSV's text encoding")
    predict.add_argument(
        "--dask-scheduler",
        help="score Parquet (a file or a directory of parts) on a Dask cluster: local:N or "
        "tcp://host:8786 (docs/scale.md, 'Beyond one machine'; default: one process)",
    )
    predict.add_argument(
        "--registry", help="registry directory (default: deploy.registry of --params)"
    )
    predict.add_argument("--params", default="params.yaml", help="the config that holds deploy.*")
    predict.set_defaults(func=_predict)

    serve = add_parser("serve", help="the HTTP prediction service (FastAPI + uvicorn)")
    serve.add_argument(
        "--model", default="champion", help="champion, a registry version (v2) or a bundle dir"
    )
    serve.add_argument("--host", help="the interface to listen on (default: deploy.serve.host)")
    serve.add_argument("--port", type=int, help="the port (default: deploy.serve.port)")
    serve.add_argument(
        "--workers", type=int, help="worker processes (default: deploy.serve.workers)"
    )
    serve.add_argument("--log", help="prediction log path (default: deploy.serve.log_path)")
    serve.add_argument("--no-log", action="store_true", help="do not log predictions")
    serve.add_argument(
        "--registry", help="registry directory (default: deploy.registry of --params)"
    )
    serve.add_argument("--params", default="params.yaml", help="the config that holds deploy.*")
    serve.set_defaults(func=_serve)

    monitor = add_parser(
        "monitor",
        help="production rows -> value per window, drift, alerts (docs/monitoring.md)",
        description="Monitor the deployed model on production rows (a CSV/Parquet file or the "
        "prediction log): value per window (realised, estimated without labels, at risk), "
        "drift per feature, alerts; writes reports/monitor.json, reports/monitor.html and "
        "metrics/monitor.json. Exits 4 when an alert listed in monitor.fail_on fires.",
    )
    monitor.add_argument(
        "overrides",
        nargs="*",
        metavar="monitor.KEY=VALUE",
        help="monitor settings over params.yaml, e.g. monitor.input=logs/predictions.sqlite "
        "monitor.window.by=time 'monitor.fail_on=[value]'",
    )
    monitor.add_argument("--params", default="params.yaml", help="default: params.yaml")
    monitor.set_defaults(func=_monitor)

    backtest = add_parser(
        "backtest",
        help="replay retraining policies period by period, in money (docs/retrain.md)",
        description="Replay the retraining policies of retrain.backtest over the labelled "
        "production periods: each period scored and monitored, each policy's retrains run "
        "through the whole pipeline and the deploy gate, value earned minus retrain cost "
        "with intervals; writes reports/backtest.json, reports/backtest.html and "
        "metrics/backtest.json.",
    )
    backtest.add_argument(
        "overrides",
        nargs="*",
        metavar="OVERRIDE",
        help="Hydra overrides of conf/, e.g. +experiment=employment 'model=[xgboost]' "
        "tune.n_trials=3 retrain.cost.review=5000",
    )
    backtest.add_argument("--conf-dir", default="conf", help="default: conf")
    backtest.set_defaults(func=_backtest)

    retrain = add_parser(
        "retrain",
        help="retrain on labelled periods up to --window through the real stages (docs/retrain.md)",
        description="Append new labelled rows (--labels) as the window's file under "
        "appended/<data.name>/, then run `dvc exp run -S retrain.window.until=WINDOW ...`: "
        "the whole graph on the window, ending with the deploy gate against the champion on "
        "the newest period's held-out rows. Result on stdout. Exit codes: 0 ran (promoted or "
        "not), 2 bad input, 3 the new data failed the assessment or a strict gate refused, "
        "5 the pipeline failed.",
    )
    retrain.add_argument(
        "--window", required=True, help="the newest labelled period to learn from, e.g. 2017"
    )
    retrain.add_argument(
        "--labels",
        help="new labelled rows (CSV/Parquet with the data's columns), or labels by id for "
        "--rows (default: none, the data as it is)",
    )
    retrain.add_argument(
        "--rows",
        help="production rows the labels belong to: CSV/Parquet or the prediction log "
        "(default: none, --labels holds whole rows)",
    )
    retrain.add_argument(
        "--id-column", help="the column labels join --rows by (default: data.id_column)"
    )
    retrain.add_argument(
        "--rule",
        choices=["expanding", "sliding", "weighted"],
        help="retrain.window.rule (default: as conf/retrain/ sets it)",
    )
    retrain.add_argument(
        "--dry-run", action="store_true", help="show the window and the command; write nothing"
    )
    retrain.add_argument("--conf-dir", default="conf", help="default: conf")
    retrain.add_argument(
        "overrides",
        nargs="*",
        metavar="OVERRIDE",
        help="Hydra overrides passed on as -S, e.g. +experiment=employment 'model=[xgboost]'",
    )
    retrain.set_defaults(func=_retrain)

    show = add_parser("show", help="print the last evaluation as a table")
    show.add_argument(
        "--report", default="reports/evaluation.json", help="the evaluation record to show"
    )
    show.set_defaults(func=_show)

    report = add_parser(
        "report",
        help="write the business report of the last run (default: reports/run.html)",
        description="The run's business report, one self-contained HTML page (docs/report.md). "
        "--timings also measures each model's fit time and latency per row: run-to-run noise, "
        "so it goes to an untracked file (default: logs/run-timed.html).",
    )
    report.add_argument(
        "--timings", action="store_true", help="measure fit time and latency per row too"
    )
    report.add_argument(
        "--output",
        help="where to write it (default: reports/run.html; with --timings logs/run-timed.html)",
    )
    report.add_argument("--params", default="params.yaml", help="default: params.yaml")
    report.set_defaults(func=_report)

    from valuegate.scaffold import DEFAULT_EXAMPLE, EXAMPLES

    init = add_parser(
        "init",
        help="a new project (git + DVC, conf/, data, README, CI workflow) from an example",
        description="Write a new valuegate project into DIRECTORY: conf/, dvc.yaml, "
        "params.yaml, the example's data under data/raw/, a README with its two commands, "
        "tests/ and a GitHub Actions workflow; then git init + DVC init and one commit. "
        "It runs as is: cd DIRECTORY && dvc exp run && valuegate show.",
    )
    init.add_argument("directory", help="the new project's folder (new, or empty)")
    init.add_argument(
        "--example",
        choices=list(EXAMPLES),
        default=DEFAULT_EXAMPLE,
        help="the embedded example whose data and objective it starts from",
    )
    init.set_defaults(func=_init)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with command_logging(args.verbosity):
        options = {k: v for k, v in vars(args).items() if k != "func"}
        log.debug("valuegate %s: %s", package_version(), options)
        try:
            args.func(args)
        except ValuegateError as exc:
            print(f"valuegate: {exc.kind}: {exc}", file=sys.stderr)
            return exc.exit_code
        except BrokenPipeError:
            # `valuegate show | head`: the reader left; no traceback, and none at exit either
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
