"""Lineage fingerprints (contract B): every artifact record says what config and data it
was produced from, and every reader refuses, in one line, a record from another run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from valuegate.errors import ArtifactError
from valuegate.io import atomic_write_json
from valuegate.stages import common


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_schema(config, rows: int = 100) -> None:
    from valuegate.config.fingerprint import config_fingerprints

    fingerprints = config_fingerprints(config)
    atomic_write_json(
        common.ASSESSED / "schema.json",
        {
            "task": "binary",
            "target": "y",
            "positive_label": "bad",
            "numeric": ["a"],
            "categorical": [],
            "amount_column": None,
            "id_column": None,
            "categories": {},
            "rows": {"train": rows, "valid": rows, "test": rows},
            "positives": None,
            "source_sha256": "x",
            "lineage": {"data": fingerprints["data"], "seed": fingerprints["seed"]},
        },
    )


def test_a_stamped_record_is_current_until_a_section_it_depends_on_changes(workdir, compose):
    config = compose()
    write_schema(config)
    record = common.stamp({"passed": []}, config)
    keys = common.gate_keys(config)
    common.check_lineage(record, config, "metrics/gate.json", keys)  # current: no error

    other = compose("objective.volume=999")
    with pytest.raises(ArtifactError) as caught:
        common.check_lineage(record, other, "metrics/gate.json", keys)
    message = str(caught.value)
    assert "metrics/gate.json was produced from another config/data (objective differs)" in message
    assert "dvc exp run" in message and "\n" not in message

    # The tune settings are not something the gate's record depends on.
    common.check_lineage(record, compose("tune.n_trials=3"), "metrics/gate.json", keys)
    # Deselecting other candidates (valuegate tune model=xgboost) keeps xgboost's record.
    solo = compose("model=xgboost")
    common.check_lineage(record, solo, "gate", common.gate_keys(solo, ["xgboost"]))
    # A candidate's search space matters to tuning, not to the fitted candidate.
    wider = compose("model.xgboost.search_space.max_depth={type: int, low: 2, high: 12}")
    common.check_lineage(record, wider, "gate", common.gate_keys(wider))
    assert common.stale_keys(record, wider, common.tune_keys("xgboost")) == [
        "model.xgboost.search_space"
    ]


def test_new_data_on_disk_makes_every_record_stale(workdir, compose):
    config = compose()
    write_schema(config, rows=100)
    record = common.stamp({}, config)
    write_schema(config, rows=120)  # e.g. remedies dropped rows, or another split
    assert common.stale_keys(record, config, common.DATA_KEYS) == ["rows"]


def test_data_prepared_from_another_config_is_refused(workdir, compose):
    write_schema(compose())
    common.check_data(compose())
    with pytest.raises(ArtifactError, match=r"data/assessed was prepared from another config"):
        common.check_data(compose("+experiment=diabetes"))
    with pytest.raises(ArtifactError, match=r"\(seed differ"):
        common.check_data(compose("seed=7"))


def test_a_record_without_lineage_is_refused_in_one_line(workdir, compose):
    config = compose()
    write_schema(config)
    with pytest.raises(ArtifactError, match="records no lineage"):
        common.check_lineage({"studies": {}}, config, "metrics/tune.json", ["tune"])


def test_a_stale_tune_record_does_not_reach_the_gate(workdir, compose):
    """The gate reads baselines and candidates only: an earlier run's tune record (here
    from another split) is not read, while a reader of tuned models refuses it."""
    config = compose()
    write_schema(config)
    stale = common.stamp({"studies": {"xgboost": {}}}, compose("seed=1"))
    atomic_write_json(common.TUNE_FILE, stale)
    assert "xgboost_tuned" not in common.model_dirs(config, tuned=False)
    with pytest.raises(ArtifactError, match=r"reports/tune.json was produced from another"):
        common.model_dirs(config)
    atomic_write_json(common.TUNE_FILE, common.stamp({"studies": {"xgboost": {}}}, config))
    assert common.model_dirs(config)["xgboost_tuned"][0] == "tuned"


def test_gate_record_is_read_only_when_current(workdir, compose):
    config = compose()
    write_schema(config)
    atomic_write_json(common.GATE_FILE, common.stamp({"candidates": {}}, config))
    assert common.read_gate_record(config)["candidates"] == {}
    with pytest.raises(ArtifactError, match=r"gate\.json was produced from another config"):
        common.read_gate_record(compose("gate.n_resamples=200"))
    (workdir / common.GATE_FILE).write_text("{")
    with pytest.raises(ArtifactError, match="not readable JSON"):
        common.read_gate_record(config)


def test_fingerprints_are_stable_text(compose):
    from valuegate.config.fingerprint import config_fingerprints

    first, second = config_fingerprints(compose()), config_fingerprints(compose())
    assert first == second
    assert json.loads(json.dumps(first)) == first
    assert "meta" not in first  # the conf/ fingerprint changes with every edit of conf/
