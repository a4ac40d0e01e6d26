"""Beyond one machine (issue 14 item 5): xgboost fitted with xgboost's Dask API packages
into a normal bundle that scores exactly as the cluster did, and batch scoring on Dask
writes the same file as the single-process path. The cluster tests share one local Dask
cluster of 2 worker processes (started by `valuegate.distributed.dask_client`, the code
`resources.dask_scheduler: local:2` runs); the training test reaches it by its tcp://
address, the path of a real cluster."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from tests.conftest import ROOT
from tests.deploy_helpers import make_bundle, prepared
from valuegate.bundle import input_schema, load_bundle, save_bundle, validate_chunk
from valuegate.config import compose_config
from valuegate.config.loading import validate
from valuegate.config.schema import ModelSpec, ResourcesConfig
from valuegate.errors import ConfigError, DataError, ValuegateError
from valuegate.serving.batch import ScoredChunk, predict_file, score_chunk

# ------------------------------------------------------------------ without a cluster


def test_scheduler_setting_is_checked_with_what_is_allowed():
    assert ResourcesConfig(dask_scheduler="local:2").dask_scheduler == "local:2"
    assert ResourcesConfig(dask_scheduler="tcp://10.0.0.5:8786").dask_scheduler
    for bad in ("local", "local:0", "lokal:2", "http://host:8786", "tcp://"):
        with pytest.raises(ValueError, match=r"is not a Dask scheduler. Allowed: null"):
            ResourcesConfig(dask_scheduler=bad)
    with pytest.raises(ConfigError, match=r"resources.dask_scheduler: 'lcal:2' is not a Dask"):
        validate(compose_config(ROOT / "conf", ["resources.dask_scheduler=lcal:2"]))


def test_target_encoding_is_refused_on_dask_before_any_work():
    from valuegate.distributed.train import fit_on_dask

    cfg, _splits, schema = prepared()
    spec = ModelSpec(estimator="xgboost", categorical={"encoding": "target"})
    with pytest.raises(ConfigError, match=r"model.x.categorical.encoding: 'target' is not"):
        fit_on_dask(None, "model.x", spec, cfg.data, schema.numeric, schema.categorical, 0, None)


def test_the_memory_guard_names_the_dask_cluster_for_xgboost_only():
    """An xgboost fit over the budget can go to a Dask cluster: the guard's one line says
    so (and how), next to the other fixes; for a model without a Dask fit it does not."""
    from valuegate.errors import BudgetError
    from valuegate.resources import guard_fit

    rows = 2_000
    frame = pd.DataFrame({"x": np.arange(rows, dtype=float), "c": ["a", "b"] * (rows // 2)})
    budget = ResourcesConfig(max_memory_gb=0.0001)
    with pytest.raises(BudgetError) as info:
        guard_fit("model.xgb", ModelSpec(estimator="xgboost"), frame, ["x"], ["c"], budget)
    assert "fit on a Dask cluster (resources.dask_scheduler: local:2, or tcp://host:8786)" in (
        str(info.value)
    )
    assert "data.sample_rows" in str(info.value)  # the other fixes stay
    with pytest.raises(BudgetError) as info:
        guard_fit("model.lin", ModelSpec(estimator="random_forest"), frame, ["x"], ["c"],
                  budget)  # fmt: skip
    assert "dask" not in str(info.value)


def test_a_scored_chunk_moves_its_row_numbers(tmp_path):
    _pipeline, splits, _schema = make_bundle(tmp_path / "b")
    bundle = load_bundle(tmp_path / "b")
    rows = splits["test"].head(5).copy()
    rows["age_in_years"] = rows["age_in_years"].astype(object)
    rows.loc[rows.index[1], "age_in_years"] = "old"  # refused: not a number
    local = score_chunk(bundle, rows.reset_index(drop=True))
    assert local.table.column("row").to_pylist() == [1, 3, 4, 5]
    moved = local.shifted(100)
    assert isinstance(moved, ScoredChunk)
    assert moved.table.column("row").to_pylist() == [101, 103, 104, 105]
    assert [r for r, _why in moved.errors] == [102]
    assert moved.table.column("score").to_pylist() == local.table.column("score").to_pylist()


def test_dask_scoring_refuses_csv_input_and_names_the_fix(tmp_path):
    from valuegate.distributed.score import score_parquet_on_dask

    make_bundle(tmp_path / "b")
    bundle = load_bundle(tmp_path / "b")
    (tmp_path / "in.csv").write_text("a\n1\n")
    with pytest.raises(DataError, match=r"scoring on Dask reads Parquet .*dask_scheduler: null"):
        score_parquet_on_dask(None, bundle, tmp_path / "in.csv", tmp_path / "out.parquet")
    with pytest.raises(ValuegateError, match=r"--dask-scheduler: .*is not a Dask scheduler"):
        from valuegate.distributed.score import score_with_scheduler

        score_with_scheduler("local", bundle, tmp_path / "in.csv", tmp_path / "o.parquet")


def test_predict_refuses_a_bad_scheduler_in_one_line(tmp_path, monkeypatch, capsys):
    # In this process, through the command's entry point (the exit of a real process is
    # checked by the next test's)
    from tests.inprocess import InProcess

    make_bundle(tmp_path / "b")
    pq.write_table(pa.table({"a": [1]}), tmp_path / "in.parquet")
    result = InProcess(monkeypatch, capsys).cli(
        ["predict", "--model", str(tmp_path / "b"), "--input", str(tmp_path / "in.parquet"),
         "--output", str(tmp_path / "o.parquet"), "--dask-scheduler", "lcal:2"],
        tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--dask-scheduler: 'lcal:2' is not a Dask scheduler" in result.stderr
    assert not (tmp_path / "o.parquet").exists()


def test_a_tuning_worker_is_numbered_from_one(tmp_path):
    """Worker 0 is the run that owns the study and closes the trials it finds running: a
    `--worker` numbered 0 on a second machine closed the first machine's running trials,
    which then crashed (optuna: "Cannot tell a FAIL trial"). Refused before any work."""
    import subprocess
    import sys

    from tests.conftest import tool_env

    result = subprocess.run(
        [sys.executable, "-m", "valuegate.cli", "tune", "--worker", "--worker-index", "0"],
        capture_output=True, text=True, env=tool_env(), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--worker-index: 0 is not a worker's number; allowed: 1 or more" in result.stderr


def test_score_stage_goes_to_dask_only_for_parquet(tmp_path):
    from valuegate.stages.score import on_dask

    dask = ResourcesConfig(dask_scheduler="local:2")
    (tmp_path / "parts").mkdir()
    assert on_dask(dask, "rows.parquet") and on_dask(dask, str(tmp_path / "parts"))
    assert not on_dask(dask, "rows.csv")  # scored in the process (logged)
    assert not on_dask(ResourcesConfig(), "rows.parquet")


# ------------------------------------------------------------------ on a local cluster


@pytest.fixture(scope="module")
def client():
    from valuegate.distributed import dask_client

    with dask_client(ResourcesConfig(dask_scheduler="local:2", threads=2)) as client:
        yield client


@pytest.mark.slow
@pytest.mark.xdist_group("dask_cluster")  # one worker: they share the module's cluster
def test_dask_trained_model_packages_into_a_bundle_that_scores_like_the_cluster(client, tmp_path):
    """fit_model on `resources.dask_scheduler: tcp://...`: the xgboost candidate fits on
    the workers (early stopping included), and its bundle, in the pipeline and in the
    service's numpy hot path, scores rows exactly as the cluster's own predictions."""
    import dask.dataframe as dd

    from valuegate.distributed import worker_count
    from valuegate.distributed.train import predict_on_dask
    from valuegate.training import fit_model

    assert worker_count(client) == 2
    address = client.scheduler.address
    assert address.startswith("tcp://")
    cfg = validate(
        compose_config(
            ROOT / "conf",
            [f"resources.dask_scheduler={address}", "gate.cross_fit.folds=3"],
        )
    )
    _cfg, splits, schema = prepared()
    fitted = fit_model("xgboost", "candidate", cfg.model["xgboost"], cfg, schema, splits)
    on = fitted.info["fitted_on"]
    assert on["engine"] == "dask" and on["workers"] == 2 and on["scheduler"] == address
    assert on["rows"] == len(splits["train"]) == on["preprocessing_fitted_on_rows"]
    assert 1 <= on["rounds"] < cfg.model["xgboost"].params["n_estimators"]  # stopped early
    assert fitted.pipeline.named_steps["estimator"].n_rounds_ == on["rounds"]

    rows = pd.concat([splits["valid"], splits["test"]], ignore_index=True)
    frame = dd.from_pandas(rows[schema.features], npartitions=3, sort=False)
    in_cluster = predict_on_dask(client, fitted.pipeline, frame, schema.features)

    fields = input_schema(schema, splits["train"])
    manifest = {
        "version": "v1",
        "model": {"name": "xgboost", "task": schema.task},
        "input": {"fields": fields, "amount_column": schema.amount_column},
        "decision": {"kind": "threshold", "value": 0.5},
        "objective": cfg.objective.model_dump(),
        "data": {"name": cfg.data.name},
    }
    check = validate_chunk(rows, fields)[0]
    save_bundle(tmp_path / "bundle", fitted.pipeline, manifest, check)
    bundle = load_bundle(tmp_path / "bundle")
    assert bundle.hot_path == "xgboost_numpy"  # a normal bundle: the service's fast path
    assert np.array_equal(bundle.score_frame(check), in_cluster)
    records = check[bundle.features].head(25).to_dict("records")
    assert np.array_equal([bundle.score_record(r) for r in records], in_cluster[:25])


def _rows_with_a_bad_one(splits) -> pd.DataFrame:
    rows = pd.concat([splits["valid"], splits["test"]] * 6, ignore_index=True)  # 2,400
    rows["age_in_years"] = rows["age_in_years"].astype(str)  # a text column, as in CSV
    rows.loc[1234, "age_in_years"] = "unknown"  # refused by the bundle's input check
    rows.loc[77, "purpose"] = "time machine"  # an unseen level: scored, counted
    return rows


@pytest.mark.slow
@pytest.mark.xdist_group("dask_cluster")  # one worker: they share the module's cluster
def test_dask_batch_scoring_writes_what_the_single_process_path_writes(client, tmp_path):
    from valuegate.distributed.score import score_parquet_on_dask

    _pipeline, splits, _schema = make_bundle(tmp_path / "b")
    bundle = load_bundle(tmp_path / "b")
    rows = _rows_with_a_bad_one(splits)
    table = pa.Table.from_pandas(rows, preserve_index=False)
    pq.write_table(table, tmp_path / "one.parquet", row_group_size=500)
    parts = tmp_path / "parts"
    parts.mkdir()
    for i, start in enumerate(range(0, len(rows), 700)):
        pq.write_table(table.slice(start, 700), parts / f"part-{i}.parquet")

    single = predict_file(bundle, tmp_path / "one.parquet", tmp_path / "single.parquet",
                          chunk_size=300, on_error="skip")  # fmt: skip
    expected = pd.read_parquet(tmp_path / "single.parquet")
    assert single["rows_skipped"] == 1 and single["unseen_categories"] == {"purpose": 1}
    for source, name in ((tmp_path / "one.parquet", "a.parquet"), (parts, "b.parquet")):
        summary = score_parquet_on_dask(client, bundle, source, tmp_path / name, "skip")
        assert summary == single
        # bit for bit: the same per-chunk step scores each row alike in any partition
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / name), expected, check_exact=True)
    # ... but the file's row groups are the input's partitions (here 700 rows), not the
    # chunks (300): other bytes, so the score stage lists the scheduler as a param
    groups = pq.ParquetFile(tmp_path / "b.parquet").metadata.num_row_groups
    assert groups != pq.ParquetFile(tmp_path / "single.parquet").metadata.num_row_groups
    assert (tmp_path / "b.parquet").read_bytes() != (tmp_path / "single.parquet").read_bytes()
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert "resources.dask_scheduler" in stages["score"]["params"]
    with pytest.raises(DataError, match=r"bad row.*row 1235: age_in_years"):
        score_parquet_on_dask(client, bundle, parts, tmp_path / "c.parquet", "fail")
    assert not (tmp_path / "c.parquet").exists()  # nothing half-written
