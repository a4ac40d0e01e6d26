"""Batch scoring accepts exactly what the fitted pipeline accepts, and refuses broken
inputs with a message (issue 11, items 2 and 8).

1. Every training file of the test data scores with zero rejected rows: the example CSV,
   the regression example, and a synthetic CSV with empty categorical fields, integer
   codes (with and without gaps) and a numeric column with gaps; a scoring file with
   unseen levels, integer codes as numbers and new gaps too. The numpy hot path and the
   sklearn pipeline give the same scores.
2. `valuegate predict` on broken inputs: non-zero exit, no traceback, the message names
   the column / row / option, the input is untouched and nothing is written. The cases run
   in this process through the command's entry point (tests/inprocess.py); one runs as a
   real process, and the killed-run test starts real ones.
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT, tool_env
from tests.deploy_helpers import make_bundle, raw_rows
from tests.inprocess import InProcess
from valuegate.bundle import (
    HOT_PIPELINE,
    HOT_XGB,
    Bundle,
    RecordChecker,
    check_chunk,
    input_schema,
    load_bundle,
    natural_sorted,
    save_bundle,
    validate_chunk,
)
from valuegate.config import compose_config
from valuegate.config.loading import validate
from valuegate.config.schema import ModelSpec
from valuegate.data import clean_categoricals, load_raw, prepare, target_vector
from valuegate.errors import DataError
from valuegate.models import build_pipeline, predict_scores
from valuegate.registry import Registry
from valuegate.serving.batch import predict_file

# --------------------------------------------------------------------------- test data

SYNTH = [
    "data.name=synth",
    "data.path=synth.csv",
    "data.target=label",
    "data.positive_label=bad",
    "data.amount_column=null",
    "data.features.numeric=[income,age]",
    "data.features.categorical=[grade,region_code,branch,channel]",
]


def write_synth(path: Path, rows: int = 900, seed: int = 3) -> pd.DataFrame:
    """A CSV as an export writes it: empty fields for gaps, integer codes as integers.

    grade: text with ~10% empty fields; region_code: integer codes 1..12 with ~8% empty
    fields (pandas reads the column as float, so training's categories are "1.0".."12.0"
    while the file says 1..12); branch: integer codes 1..30 without gaps; channel: text
    without gaps; income: a number with gaps; age: a number."""
    rng = np.random.default_rng(seed)
    grade = rng.choice(["A", "B", "C", "D"], rows).astype(object)
    grade[rng.random(rows) < 0.1] = ""
    region = rng.integers(1, 13, rows).astype(object)
    region[rng.random(rows) < 0.08] = ""
    branch = rng.integers(1, 31, rows)
    channel = rng.choice(["web", "shop", "phone"], rows)
    income = np.round(rng.normal(3000, 800, rows), 1).astype(object)
    income[rng.random(rows) < 0.1] = ""
    age = rng.integers(18, 80, rows)
    risk = (np.array([g in ("C", "D", "") for g in grade]) * 1.2 + (branch % 3 == 0) * 0.8
            + rng.normal(0, 1, rows))  # fmt: skip
    label = np.where(risk > 1.2, "bad", "good")
    frame = pd.DataFrame(
        {"grade": grade, "region_code": region, "branch": branch, "channel": channel,
         "income": income, "age": age, "label": label}
    )  # fmt: skip
    frame.to_csv(path, index=False)
    return frame


def build(root: Path, overrides: list[str], estimator: str = "xgboost", name: str = "v1"):
    """prepare -> fit -> bundle, as the pipeline does (data read by data.load_raw)."""
    cfg = validate(compose_config(ROOT / "conf", overrides))
    raw = load_raw(cfg.data, root)
    splits, schema = prepare(raw, cfg.data, cfg.seed, source_sha256="x")
    params = {"n_estimators": 30, "n_jobs": 1}
    pipeline = build_pipeline(
        "model.t", ModelSpec(estimator=estimator, params=params), schema.task,
        schema.numeric, schema.categorical, 0,
    )  # fmt: skip
    train = splits["train"]
    pipeline.fit(train[schema.features], target_vector(train, cfg.data))
    fields = input_schema(schema, train)
    manifest = {
        "version": name,
        "model": {"name": estimator, "task": schema.task},
        "input": {"fields": fields, "amount_column": schema.amount_column},
        "decision": {"kind": "threshold" if schema.task == "binary" else "offset",
                     "value": 0.3 if schema.task == "binary" else 0.0},
        "objective": cfg.objective.model_dump(),
        "data": {"name": cfg.data.name},
    }  # fmt: skip
    check = validate_chunk(pd.concat([splits["valid"], splits["test"]]), fields)[0]
    save_bundle(root / "registry" / name, pipeline, manifest, check)
    return load_bundle(root / "registry" / name), pipeline, schema, cfg


def pipeline_only(bundle: Bundle) -> Bundle:
    """The same bundle scored by its sklearn pipeline (the fallback path)."""
    return Bundle(bundle.path, bundle.manifest, bundle.pipeline, None, None)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    frame = write_synth(root / "synth.csv")
    return root, frame, *build(root, SYNTH)


# --------------------------------------------------------------------------- 1. accepts


def test_every_training_file_of_the_test_data_scores_without_a_rejected_row(tmp_path):
    """The example CSV, the regression example and the synthetic CSV with gaps: each
    training file, scored by a bundle of a model trained on it, loses no row, and the
    bundle scores it exactly as the fitted pipeline scores the training frame."""
    raw_dir = tmp_path / "data" / "raw"
    raw_dir.mkdir(parents=True)
    for name in ("german_credit.csv", "diabetes.csv"):
        (raw_dir / name).write_bytes((ROOT / "data" / "raw" / name).read_bytes())
    write_synth(tmp_path / "synth.csv")
    for i, overrides in enumerate([[], ["+experiment=diabetes"], SYNTH]):
        bundle, pipeline, schema, cfg = build(tmp_path, overrides, name=f"v{i + 1}")
        source = tmp_path / cfg.data.path
        out = tmp_path / f"out{i}.parquet"
        summary = predict_file(bundle, source, out, on_error="fail")
        raw = load_raw(cfg.data, tmp_path)
        assert summary["rows_skipped"] == 0 and summary["rows_scored"] == len(raw), cfg.data.name
        assert bundle.hot_path == HOT_XGB, bundle.manifest["scoring"]
        whole = clean_categoricals(raw[schema.features], schema.categorical)  # as prepare does
        expected = predict_scores(pipeline, whole, schema.task)
        assert np.array_equal(pd.read_parquet(out)["score"], expected), cfg.data.name


def test_a_csv_with_gaps_and_integer_codes_scores_every_row(synth, tmp_path):
    root, frame, bundle, pipeline, schema, cfg = synth
    assert bundle.hot_path == HOT_XGB
    fields = {f["name"]: f for f in bundle.fields}
    # training read region_code as floats ("7.0"); the CSV says 7: both are the same level
    assert fields["region_code"]["categories"][:3] == ["1.0", "2.0", "3.0"]
    # integer codes sorted naturally (2 before 10), not as text
    assert fields["branch"]["categories"] == [str(i) for i in range(1, 31)]
    # the pipeline imputes numbers and scores a missing or unseen level as unknown
    assert fields["age"]["nullable"] and not fields["age"]["seen_missing"]
    assert fields["channel"]["unseen"] == "accepted"
    summary = predict_file(bundle, root / "synth.csv", tmp_path / "out.parquet", on_error="fail")
    assert summary["rows_skipped"] == 0 and summary["rows_scored"] == len(frame)
    assert summary["unseen_categories"] == {} and summary["missing_not_in_training"] == {}
    raw = load_raw(cfg.data, root)
    whole = clean_categoricals(raw[schema.features], schema.categorical)  # as prepare does
    expected = predict_scores(pipeline, whole, "binary")
    assert np.array_equal(pd.read_parquet(tmp_path / "out.parquet")["score"], expected)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_unseen_levels_codes_as_numbers_and_new_gaps_are_scored_and_counted(
    synth, tmp_path, suffix
):
    root, _frame, bundle, *_ = synth
    rows = pd.read_csv(root / "synth.csv").head(40)  # typed: gaps are NaN
    rows["channel"] = rows["channel"].astype(object)
    rows.loc[[1, 2, 3], "channel"] = "kiosk"  # a level training never saw
    rows.loc[4, "channel"] = None  # a gap where training had none
    rows.loc[5, "age"] = None
    rows["region_code"] = pd.to_numeric(rows["region_code"]).astype("Int64")  # 7, not "7.0"
    rows.loc[6, "region_code"] = 99  # an unseen code
    rows.loc[7, "grade"] = "Z"
    source = tmp_path / f"in{suffix}"
    rows.to_csv(source, index=False) if suffix == ".csv" else rows.to_parquet(source)
    out = tmp_path / "out.parquet"
    summary = predict_file(bundle, source, out, on_error="fail")
    assert summary["rows_skipped"] == 0 and summary["rows_scored"] == 40
    assert summary["unseen_categories"] == {"channel": 3, "grade": 1, "region_code": 1}
    assert summary["missing_not_in_training"] == {"age": 1, "channel": 1}
    # the numpy hot path and the sklearn pipeline agree on every row, unseen ones too
    checked = check_chunk(rows.drop(columns=["label"]), bundle.fields)
    assert np.array_equal(
        bundle.score_frame(checked.clean), pipeline_only(bundle).score_frame(checked.clean)
    )
    assert np.array_equal(pd.read_parquet(out)["score"], bundle.score_frame(checked.clean))
    # code 7 is the training level "7.0": the text "7.0" scores the same
    text = rows.copy()
    text["region_code"] = text["region_code"].map(lambda v: f"{float(v)}", na_action="ignore")
    again = check_chunk(text.drop(columns=["label"]), bundle.fields).clean
    assert np.array_equal(bundle.score_frame(again), bundle.score_frame(checked.clean))
    assert set(checked.clean["region_code"].dropna()) - {"99"} <= set(
        next(f for f in bundle.fields if f["name"] == "region_code")["categories"]
    )


def test_a_random_forest_bundle_scores_the_training_file_too(synth, tmp_path):
    root, frame, *_ = synth
    bundle = build(root, SYNTH, estimator="random_forest", name="v2")[0]
    assert bundle.hot_path == HOT_PIPELINE
    summary = predict_file(bundle, root / "synth.csv", tmp_path / "o.parquet", on_error="fail")
    assert summary["rows_skipped"] == 0 and summary["rows_scored"] == len(frame)


def test_one_record_is_checked_as_a_batch_row_is(synth):
    """The service's RecordChecker and batch's check_chunk resolve values alike."""
    _root, _frame, bundle, *_ = synth
    checker = RecordChecker(bundle.fields)
    values = [7, "7", "7.0", 7.0, "07", 99, "99", None]
    batch = check_chunk(
        pd.DataFrame({f["name"]: [values[0]] * len(values) for f in bundle.fields}).assign(
            region_code=pd.Series(values, dtype=object)
        ),
        bundle.fields,
    ).clean["region_code"]
    singles = [checker({"region_code": v})[0]["region_code"] for v in values]
    assert batch.iloc[:4].tolist() == singles[:4] == ["7.0"] * 4
    assert batch.tolist()[:-1] == singles[:-1] and pd.isna(batch.iloc[-1])
    assert checker({"region_code": 99})[1] == ["region_code"]  # counted as unseen


def test_natural_order():
    assert natural_sorted(["10", "2", "-1", "b10", "b2", "B1"]) == [
        "-1",
        "2",
        "10",
        "B1",
        "b2",
        "b10",
    ]


def test_too_large_numbers_and_text_in_a_number_are_refused(synth):
    _root, frame, bundle, *_ = synth
    rows = frame.head(4).drop(columns=["label"]).astype({"income": object})
    rows.loc[1, "income"] = "1e308"  # finite as float64, infinite as float32 (the model's)
    rows.loc[2, "income"] = "lots"
    errors = check_chunk(rows, bundle.fields).errors
    assert [r for r, _ in errors] == [2, 3]
    assert all("income" in why for _, why in errors) and "'1e308'" in errors[0][1]


# --------------------------------------------------------------------------- 2. refuses


@pytest.fixture(scope="module")
def cli_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    make_bundle(root / "registry" / "v1", params={"n_estimators": 20})
    Registry(root / "registry").promote("v1")
    return root


def predict_cmd(root: Path, *args: str) -> list[str]:
    exe = str(Path(sys.executable).parent / "valuegate")
    return [exe, "predict", "--registry", str(root / "registry"), *args]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "-"


def _latin1(path: Path) -> None:
    rows = raw_rows(5)
    rows.loc[2, "purpose"] = "télévision"
    path.write_bytes(rows.to_csv(index=False).encode("latin-1"))


def _duplicated(path: Path) -> None:
    rows = raw_rows(5)
    text = rows.to_csv(index=False).splitlines()
    text = [f"{line},{line.split(',')[3]}" for line in text]  # purpose again at the end
    path.write_text("\n".join(text) + "\n")


def _ragged(path: Path) -> None:
    text = raw_rows(5).to_csv(index=False).splitlines()
    text[3] = ",".join(text[3].split(",")[:5])
    path.write_text("\n".join(text) + "\n")


def _bad_value(path: Path) -> None:
    rows = raw_rows(6).astype({"credit_amount": object})
    rows.loc[4, "credit_amount"] = "lots"
    rows.to_csv(path, index=False)


def _good(path: Path) -> None:
    raw_rows(8).to_csv(path, index=False)


def _blocker(root: Path) -> Path:
    (root / "afile").write_text("x")
    return root / "afile" / "out.parquet"


# (id, write the input, output (relative to the case dir; callable for special ones),
#  extra args, what stderr must name)
CASES = [
    ("empty-file", lambda p: p.write_bytes(b""), "out.parquet", [], ["is empty"]),
    ("latin-1", _latin1, "out.parquet", [],
     ["not utf-8 text", "line 4 (data row 3)", "--encoding"]),
    ("duplicated-column", _duplicated, "out.parquet", [], ["['purpose']", "more than once"]),
    ("ragged-row", _ragged, "out.parquet", [], ["not a well-formed CSV", "Expected"]),
    ("bad-value", _bad_value, "out.parquet", ["--on-error", "fail"],
     ["row 5", "credit_amount", "'lots'"]),
    ("chunk-size-negative", _good, "out.parquet", ["--chunk-size", "-1"], ["--chunk-size", "'-1'"]),
    ("chunk-size-zero", _good, "out.parquet", ["--chunk-size", "0"], ["--chunk-size", ">= 1"]),
    ("output-is-input", _good, "in.csv", [], ["is the input file", "overwrite"]),
    ("output-is-input-other-path", _good, "sub/../in.csv", [], ["is the input file"]),
    ("output-is-input-symlink", _good, "link.csv", [], ["is the input file"]),
    ("output-is-input-hardlink", _good, "hard.csv", [], ["is the input file"]),
    ("output-under-a-file", _good, _blocker, [], ["afile is a file, not a directory"]),
    ("output-is-a-directory", _good, "sub", [], ["is a directory"]),
]  # fmt: skip


# This one runs as a real `valuegate predict` process (exit status, no traceback at exit);
# the others in this process, through the same entry point.
REAL_PROCESS = "ragged-row"


@pytest.fixture
def here(monkeypatch, capsys) -> InProcess:
    return InProcess(monkeypatch, capsys)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_broken_predict_inputs_fail_clearly_and_write_nothing(cli_root, tmp_path, case, here):
    name, write, output, extra, named = case
    source = tmp_path / "in.csv"
    write(source)
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.csv").symlink_to(source)
    if source.is_file():
        (tmp_path / "hard.csv").hardlink_to(source)
    target = output(tmp_path) if callable(output) else tmp_path / output
    before = digest(source)
    listing = sorted(p.name for p in tmp_path.rglob("*"))
    command = predict_cmd(cli_root, "--input", str(source), "--output", str(target), *extra)
    sigterm = signal.getsignal(signal.SIGTERM)
    if name == REAL_PROCESS:
        result = subprocess.run(
            command, cwd=tmp_path, env=tool_env(), capture_output=True, text=True, timeout=120
        )
    else:
        result = here.cli(command[1:], tmp_path)
        # the command's SIGTERM handler (unwind, remove the partial file) is put back
        assert signal.getsignal(signal.SIGTERM) == sigterm
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    for words in named:
        assert words.lower() in result.stderr.lower(), (words, result.stderr)
    assert digest(source) == before  # the input is untouched
    assert sorted(p.name for p in tmp_path.rglob("*")) == listing  # nothing written


def test_a_latin1_file_is_read_with_its_encoding(cli_root, tmp_path, here):
    _latin1(tmp_path / "in.csv")
    command = predict_cmd(cli_root, "--input", "in.csv", "--output", "o.csv")
    result = here.cli([*command[1:], "--encoding", "latin-1"], tmp_path)
    assert result.returncode == 0, result.stderr
    # "télévision" is a level the model never saw: scored as one, and counted
    assert "unseen categories (scored as unknown levels): purpose 1" in result.stdout
    assert len(pd.read_csv(tmp_path / "o.csv")) == 5


def test_a_killed_run_leaves_only_a_marked_partial_file_that_the_next_run_removes(
    cli_root, tmp_path, here
):
    source = tmp_path / "big.parquet"
    raw_rows(300_000).to_parquet(source)
    target = tmp_path / "out.parquet"
    cmd = predict_cmd(cli_root, "--input", str(source), "--output", str(target))
    for how in (signal.SIGTERM, signal.SIGKILL):
        process = subprocess.Popen(
            [*cmd, "--chunk-size", "500"], cwd=tmp_path, env=tool_env(),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        partial = f".out.parquet.valuegate-partial-{process.pid}.tmp"
        while not (tmp_path / partial).exists():
            assert process.poll() is None and time.monotonic() < deadline, "no partial file"
            time.sleep(0.05)
        time.sleep(0.3)  # mid-write
        process.send_signal(how)
        process.wait(timeout=60)
        assert not target.exists()
        left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
        if how == signal.SIGTERM:
            assert left == [], left  # a `kill` unwinds and removes its unfinished file
        else:
            assert left == [partial]  # hidden and named for what it is
    small = tmp_path / "small.csv"
    raw_rows(10).to_csv(small, index=False)
    # the next run (in this process: the same command) removes what the SIGKILL left
    result = here.cli(predict_cmd(cli_root, "--input", str(small), "--output", str(target))[1:])
    assert result.returncode == 0, result.stderr
    assert "left by an earlier run that was killed" in result.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert len(pd.read_parquet(target)) == 10


# --------------------------------------------------------------------------- 3. the stage


def test_score_stage_failure_names_rows_and_how_to_roll_back(cli_root, tmp_path, monkeypatch):
    from valuegate.stages import score

    bad = tmp_path / "bad.csv"
    _bad_value(bad)
    cfg = validate(compose_config(ROOT / "conf", []))
    batch = cfg.deploy.batch.model_copy(update={"input": str(bad)})
    deploy = cfg.deploy.model_copy(update={"registry": str(cli_root / "registry"), "batch": batch})
    cfg = cfg.model_copy(update={"deploy": deploy})
    monkeypatch.setattr(score, "load_params", lambda: cfg)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "reports").mkdir()
    (tmp_path / "metrics").mkdir()
    with pytest.raises(DataError) as caught:
        score.main([])
    message = str(caught.value)
    assert "row 5: credit_amount" in message and "deploy.batch.on_error: skip" in message
    assert "already promoted v1" in message and "valuegate models rollback" in message
    assert not (tmp_path / "reports" / "scored.parquet").exists()
