"""The data-centric assessment on small data built here, with planted faults."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import ROOT, copy_project, run
from valuegate.assess.assessment import assess
from valuegate.assess.findings import AssessmentBlockedError
from valuegate.assess.inputs import AssessData
from valuegate.assess.report import render_html
from valuegate.config import compose_config
from valuegate.config.loading import validate
from valuegate.config.schema import AssessConfig
from valuegate.data import load_raw, prepare
from valuegate.errors import ConfigError, DataError


def frame(
    n: int, seed: int, task: str = "binary", signal: float = 1.0, noise: float = 1.0
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    city = rng.choice(["north", "south", "east"], size=n)
    latent = signal * x[:, 0] + 0.8 * x[:, 1] + (city == "north") * 0.7
    out = pd.DataFrame(
        {
            "x1": x[:, 0],
            "x2": x[:, 1],
            "x3": x[:, 2],
            "x4": x[:, 3],
            "city": city.astype(object),
            "channel": rng.choice(["web", "branch"], size=n).astype(object),
        }
    )
    if task == "binary":
        noisy = latent + rng.logistic(size=n) * noise
        out["y"] = np.where(noisy > np.quantile(noisy, 0.7), "bad", "good").astype(object)
    else:
        out["y"] = latent * 10 + rng.normal(size=n) * 10
    return out


def data_of(splits: dict[str, pd.DataFrame], task: str = "binary", **kw) -> AssessData:
    sample = splits["train"]
    reserved = {"y", kw.get("id_column"), kw.get("time_column")}
    numeric = [c for c in sample if c not in reserved and pd.api.types.is_numeric_dtype(sample[c])]
    categorical = [c for c in sample if c not in reserved and c not in numeric]
    return AssessData(
        splits=splits,
        task=task,
        target="y",
        positive_label="bad" if task == "binary" else None,
        numeric=numeric,
        categorical=categorical,
        split_method=kw.pop("split_method", "stratified" if task == "binary" else "random"),
        **kw,
    )


def split3(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    n = len(df)
    a, b = int(0.6 * n), int(0.8 * n)
    return {
        "train": df.iloc[:a].reset_index(drop=True),
        "valid": df.iloc[a:b].reset_index(drop=True),
        "test": df.iloc[b:].reset_index(drop=True),
    }


def ids(assessment) -> dict[str, str]:
    return {f.id: f.severity for f in assessment.findings}


FAST = AssessConfig(n_folds=3)


def test_clean_data_passes_with_no_warnings():
    result = assess(data_of(split3(frame(1500, 0))), FAST, seed=0)
    assert not result.blocked
    assert not [f.id for f in result.findings if f.severity != "info"]
    assert result.figures["max_single_feature_auc"] < 0.85


def test_planted_leaky_column_is_found_and_blocks():
    df = frame(1500, 1)
    rng = np.random.default_rng(1)
    df["settled_late"] = (df["y"] == "bad") * 1.0 + rng.normal(size=len(df)) * 0.05
    result = assess(data_of(split3(df)), FAST, seed=0)
    assert ids(result)["target_leakage:settled_late"] == "block"
    assert [f.id for f in result.blocking] == ["target_leakage:settled_late"]
    assert "target_leakage:x1" not in ids(result)  # a strong real feature is not a leak
    assert result.metrics()["findings"]["block"] == 1


def test_a_missingness_pattern_that_gives_the_answer_away_is_leakage():
    df = frame(1500, 2)
    df["refund"] = np.where(df["y"] == "bad", np.nan, 1.0)  # filled only for good outcomes
    result = assess(data_of(split3(df)), FAST, seed=0)
    assert ids(result)["target_leakage:refund"] == "block"


def test_accepted_finding_no_longer_blocks_and_unknown_accepts_are_reported():
    df = frame(1500, 1)
    df["settled_late"] = (df["y"] == "bad") * 1.0
    config = AssessConfig(
        n_folds=3,
        accept=[
            {"id": "target_leakage:settled_late", "reason": "known at decision time here"},
            {"id": "shift:x4", "reason": "expected"},
        ],
    )
    result = assess(data_of(split3(df)), config, seed=0)
    assert not result.blocked
    finding = next(f for f in result.findings if f.id == "target_leakage:settled_late")
    assert finding.status == "accepted"
    assert "known at decision time" in finding.note
    assert result.unused_accepts == ["shift:x4"]
    assert result.counts()["accepted"] == 1


def test_post_outcome_column_blocks_and_a_missing_one_names_the_column():
    df = frame(900, 3)
    result = assess(
        data_of(split3(df)),
        AssessConfig(n_folds=3, leakage={"post_outcome_columns": ["x3"]}),
        seed=0,
    )
    assert ids(result)["post_outcome:x3"] == "block"
    with pytest.raises(DataError, match=r"post_outcome_columns\[0\].*'x33'.*did you mean 'x3'"):
        assess(
            data_of(split3(df)),
            AssessConfig(n_folds=3, leakage={"post_outcome_columns": ["x33"]}),
            seed=0,
        )


def test_a_post_outcome_column_already_dropped_is_noted_not_an_error():
    # Following the block's advice (data.features.drop) removes the column from the data.
    result = assess(
        data_of(split3(frame(900, 3))),
        AssessConfig(n_folds=3, leakage={"post_outcome_columns": ["settled_on"]}),
        seed=0,
    )
    assert ids(result)["post_outcome:settled_on"] == "info"
    assert not result.blocked


def test_a_declared_column_missing_from_a_split_blocks_and_stops_the_other_checks():
    splits = split3(frame(900, 3))
    splits["test"] = splits["test"].drop(columns=["city"])
    result = assess(data_of(splits), FAST, seed=0)
    assert [f.id for f in result.blocking] == ["missing_column:city"]
    assert set(result.seconds) == {"schema"}
    html = render_html(result, "t", "conf/assess/default.yaml")
    fine = html.split("<b>Fine:</b>")[1].split("</div>")[0]
    assert "none of the checks" in fine  # nothing else ran, so nothing else is "fine"


def test_an_accepted_finding_is_not_remedied():
    df = frame(1500, 1)
    df["settled_late"] = (df["y"] == "bad") * 1.0
    config = AssessConfig(
        n_folds=3,
        remedies={"drop_leaky_columns": True},
        accept=[{"id": "target_leakage:settled_late", "reason": "known at decision time"}],
    )
    result = assess(data_of(split3(df)), config, seed=0)
    assert result.dropped_columns == []
    finding = next(f for f in result.findings if f.id == "target_leakage:settled_late")
    assert finding.status == "accepted" and "known at decision time" in finding.note


def test_planted_duplicates_and_cross_split_duplicates_are_counted_exactly():
    splits = split3(frame(1500, 4))
    train = splits["train"]
    splits["train"] = pd.concat([train, train.iloc[[3, 3, 10, 20, 30]]], ignore_index=True)
    splits["valid"] = pd.concat([splits["valid"], train.iloc[[40, 41, 42]]], ignore_index=True)
    splits["test"] = pd.concat(
        [splits["test"], train.iloc[[50, 51]], splits["valid"].iloc[[0, 1, 2, 3]]],
        ignore_index=True,
    )
    result = assess(data_of(splits), FAST, seed=0)
    within = next(f for f in result.findings if f.id == "duplicates:within_split")
    cross = next(f for f in result.findings if f.id == "duplicates:cross_split")
    assert within.evidence["repeats"] == {"train": 5, "valid": 0, "test": 0}
    assert cross.evidence["rows_seen_earlier"] == {"train": 0, "valid": 3, "test": 6}
    assert result.figures["duplicate_rows"] == 5
    assert result.figures["cross_split_duplicates"] == 9
    # 9 of 609 held-out rows (1.5%) is above the 1% that blocks
    assert cross.severity == "block"
    assert cross.example_rows["valid"] == [300, 301, 302]


def test_remedies_drop_duplicates_and_leaky_columns_and_are_recorded():
    df = frame(1500, 5)
    df["settled_late"] = (df["y"] == "bad") * 1.0
    splits = split3(df)
    splits["test"] = pd.concat([splits["test"], splits["train"].iloc[:20]], ignore_index=True)
    config = AssessConfig(n_folds=3, remedies={"drop_leaky_columns": True, "drop_duplicates": True})
    result = assess(data_of(splits), config, seed=0)
    assert not result.blocked
    assert result.dropped_columns == ["settled_late"]
    assert len(result.dropped_rows["test"]) == 20
    assert {r["finding"] for r in result.remedies} == {
        "target_leakage:settled_late",
        "duplicates:cross_split",
    }
    from valuegate.assess.remedies import remedied_splits

    kept = remedied_splits(splits, result.dropped_columns, result.dropped_rows)
    assert len(kept["test"]) == len(splits["test"]) - 20
    assert "settled_late" not in kept["train"]


def test_flipped_labels_are_ranked_among_the_most_suspicious_rows():
    df = frame(2000, 6, signal=4.0, noise=0.05)  # labels follow the features
    splits = split3(df)
    train = splits["train"]
    # Flip confident rows: the ones the strong feature places far from the boundary.
    confident = np.argsort(-np.abs(train["x1"].to_numpy()))[:300]
    flipped = np.random.default_rng(0).choice(confident, size=25, replace=False)
    train.loc[flipped, "y"] = np.where(train.loc[flipped, "y"] == "bad", "good", "bad")
    # x1 alone nearly decides the label, so it is flagged as a leak; a leak the user has not
    # accepted is left out of the label-noise model (it would explain wrong labels too).
    blocked = assess(data_of(splits), FAST, seed=0)
    assert "target_leakage:x1" in {f.id for f in blocked.blocking}
    assert next(f for f in blocked.findings if f.id == "label_noise:suspected").evidence[
        "left_out_as_leaks"
    ] == ["x1"]
    accepted = AssessConfig(n_folds=3, accept=[{"id": "target_leakage:x1", "reason": "legit"}])
    result = assess(data_of(splits), accepted, seed=0)
    finding = next(f for f in result.findings if f.id == "label_noise:suspected")
    assert finding.evidence["left_out_as_leaks"] == []
    top = finding.example_rows["train"]  # the 20 most suspicious, lowest self-confidence first
    assert len(set(top) & set(flipped.tolist())) >= 15
    flagged = np.flatnonzero(result.charts["label_noise"]["flagged"])  # sample = all rows
    assert len(set(flagged.tolist()) & set(flipped.tolist())) >= 22
    assert finding.evidence["flagged"] < 80  # not everything is flagged


def test_shifted_feature_is_flagged():
    splits = split3(frame(3000, 7))
    splits["test"]["x2"] = splits["test"]["x2"] + 0.8
    result = assess(data_of(splits), FAST, seed=0)
    found = ids(result)
    assert found["shift:x2"] == "warn"
    assert not any(k.startswith("shift:x") and k != "shift:x2" for k in found)
    assert found["shift:adversarial"] == "warn"
    assert result.figures["adversarial_auc"] > 0.6


def test_quality_checks_find_constant_id_like_and_missing_columns():
    df = frame(1200, 8)
    df["batch"] = "2024"
    df["customer"] = [f"C{i:05d}" for i in range(len(df))]
    df["income"] = np.where(np.arange(len(df)) % 2 == 0, np.nan, 1.0) * df["x3"]
    df["age_text"] = np.where(
        np.arange(len(df)) % 10 == 0, "n/a", (df["x4"] * 10).round().astype(str)
    )
    result = assess(data_of(split3(df)), FAST, seed=0)
    found = ids(result)
    assert found["constant:batch"] == "warn"
    assert found["id_like:customer"] == "warn"
    assert found["missing_values:income"] == "warn"
    assert found["mixed_types:age_text"] == "warn"
    assert "high_cardinality:customer" not in found  # reported once, as an id


def test_imbalance_and_too_few_positives():
    df = frame(1500, 9)
    bad = np.flatnonzero(df["y"] == "bad")
    df.loc[bad[40:], "y"] = "good"  # 40 positives in all: 24 / 8 / 8 per split or so
    result = assess(data_of(split3(df)), FAST, seed=0)
    found = ids(result)
    assert found["class_balance:imbalance"] == "warn"
    assert found["too_few_positives:test"] == "block"


def test_regression_uses_r2_and_skips_label_noise_with_a_reason():
    df = frame(1200, 10, task="regression")
    df["leak"] = df["y"] + np.random.default_rng(0).normal(size=len(df))
    result = assess(data_of(split3(df), task="regression"), FAST, seed=0)
    found = ids(result)
    assert found["target_leakage:leak"] == "block"
    assert found["label_noise:skipped"] == "info"
    assert found["class_balance:skipped"] == "info"
    assert result.figures["max_single_feature_r2"] > 0.9
    html = render_html(result, "t", "conf/assess/default.yaml")
    fine = html.split("<b>Fine:</b>")[1].split("</div>")[0]
    not_checked = html.split("<b>Not checked:</b>")[1].split("</div>")[0]
    assert "Label noise" not in fine and "Label noise" in not_checked


def test_random_split_over_a_time_column_leaks_the_future():
    df = frame(1200, 11)
    df["when"] = pd.date_range("2024-01-01", periods=len(df), freq="h")
    shuffled = df.sample(frac=1.0, random_state=0).reset_index(drop=True)
    data = data_of(split3(shuffled), time_column="when", split_method="random")
    assert ids(assess(data, FAST, seed=0))["timeline:future_leak"] == "warn"
    ordered = data_of(split3(df), time_column="when", split_method="time")
    found = ids(assess(ordered, FAST, seed=0))
    assert "timeline:future_leak" not in found
    assert "timeline:unordered" not in found


def test_blocked_message_and_report_tell_how_to_fix_or_accept():
    df = frame(900, 12)
    df["settled_late"] = (df["y"] == "bad") * 1.0
    result = assess(data_of(split3(df)), FAST, seed=0)
    from valuegate.assess.findings import blocked_message

    message = blocked_message(result.blocking, "conf/assess/default.yaml", "r.html")
    assert '- {id: "target_leakage:settled_late", reason: "<why it is fine>"}' in message
    assert "data.features.drop" in message
    page = render_html(result, "t", "conf/assess/default.yaml")
    assert (
        page.index("Blocks the run") < page.index("Worth a look")
        if "Worth a look" in page
        else True
    )
    assert "target_leakage:settled_late" in page[: page.index("<h2>Findings")]
    assert "data:image/png;base64," in page
    assert "http://" not in page and "https://" not in page and "<script" not in page


def config_with(**assess_block) -> dict:
    raw = compose_config(ROOT / "conf")
    raw["assess"].update(assess_block)
    return raw


@pytest.mark.parametrize(
    ("accept_id", "expected"),
    [
        (
            "target_leakge:checking",
            r"assess\.accept\.0\.id: .*unknown check 'target_leakge' "
            r"\(did you mean 'target_leakage'\?\)",
        ),
        (
            "duplicates:cross_splt",
            r"did you mean 'duplicates:cross_split'\?.*allowed: "
            r"duplicates:within_split",
        ),
        ("leak", r"assess\.accept\.0\.id: 'leak' is not a finding id"),
    ],
)
def test_a_misspelt_accept_id_names_the_key_path_and_the_nearest_match(accept_id, expected):
    raw = config_with(accept=[{"id": accept_id, "reason": "because"}])
    with pytest.raises(ConfigError, match=expected):
        validate(raw)


def test_inconsistent_thresholds_name_the_keys():
    with pytest.raises(ConfigError, match=r"assess\.leakage: auc_warn \(0\.97\) must not exceed"):
        validate(config_with(leakage={"auc_warn": 0.97}))
    with pytest.raises(ConfigError, match=r"assess\.balance: min_positives_block"):
        validate(config_with(balance={"min_positives_block": 80}))
    with pytest.raises(ConfigError, match=r"post_outcome_columns.*\['late'\] more than once"):
        validate(config_with(leakage={"post_outcome_columns": ["late", "x", "late"]}))


def test_a_misspelt_assess_key_and_a_bad_severity_are_config_errors():
    raw = config_with(remedies={"drop_duplicate": True}, block_on=["blok"])
    with pytest.raises(ConfigError) as caught:
        validate(raw)
    message = str(caught.value)
    assert (
        "assess.remedies.drop_duplicate: unknown key 'drop_duplicate' (did you mean "
        "'drop_duplicates'?)" in message
    )
    assert "assess.block_on.0: 'blok' is not allowed (did you mean 'block'?)" in message


def test_the_embedded_example_passes_with_its_findings_reported(compose):
    config = compose()
    raw = load_raw(config.data, ROOT)
    splits, schema = prepare(raw, config.data, config.seed, "test")
    from valuegate.stages.assess import assess_data

    result = assess(assess_data(splits, schema, config), config.assess, config.seed)
    assert not result.blocked
    found = ids(result)
    assert found["label_noise:suspected"] in ("info", "warn")
    assert found["timeline:skipped"] == "info"
    assert result.figures["duplicate_rows"] == 0
    assert 0.6 < result.figures["max_single_feature_auc"] < 0.85


def test_stage_blocks_without_writing_assessed_data_and_a_rerun_writes_the_same_files(
    tmp_path, monkeypatch
):
    """The stage itself: a blocking finding writes the report and metrics, no data/assessed;
    once accepted, data/assessed. Tracked outputs (cache: false in dvc.yaml) hold no
    timings: a second run of the same data leaves git status and dvc.lock unchanged.
    Timings go to the untracked logs/."""
    from valuegate.config import write_params
    from valuegate.stages import assess as stage

    raw = compose_config(ROOT / "conf", ["assess.n_folds=2"])  # folds: not checked here
    raw["assess"]["leakage"]["post_outcome_columns"] = ["duration_in_month"]
    write_params(raw, tmp_path / "params.yaml")
    config = validate(raw)
    splits, schema = prepare(load_raw(config.data, ROOT), config.data, config.seed, "x")
    prepared = tmp_path / "data" / "prepared"
    prepared.mkdir(parents=True)
    for name, part in splits.items():
        part.to_parquet(prepared / f"{name}.parquet", index=False)
    (prepared / "schema.json").write_text(json.dumps(schema.to_dict()))
    (tmp_path / "data" / "assessed").mkdir()  # stale output from an earlier run
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AssessmentBlockedError, match="post_outcome:duration_in_month"):
        stage.main([])
    assert not (tmp_path / "data" / "assessed").exists()
    metrics = json.loads((tmp_path / "metrics" / "assess.json").read_text())
    assert metrics["blocked"] is True and metrics["findings"]["block"] == 1
    assert (tmp_path / "reports" / "assessment.html").stat().st_size > 1000

    raw["assess"]["accept"] = [{"id": "post_outcome:duration_in_month", "reason": "test"}]
    write_params(raw, tmp_path / "params.yaml")
    tracked = [stage.RECORD_FILE, stage.REPORT_FILE, stage.METRICS_FILE]
    stage.main([])
    assert (tmp_path / "data" / "assessed" / "train.parquet").samefile(prepared / "train.parquet")
    first = [(tmp_path / p).read_bytes() for p in tracked]
    # the honest estimate the deploy gate reads: the quick model on every feature (the
    # accepted column stays)
    honest = json.loads(first[0])["honest_estimate"]
    assert honest["metric"] == "roc_auc" and 0.6 < honest["value"] < 0.9
    assert honest["features"] == [*schema.numeric, *schema.categorical]
    assert json.loads(first[2])["honest_estimate"] == honest["value"]
    assert b"Honest estimate" in first[1]
    stage.main([])
    assert [(tmp_path / p).read_bytes() for p in tracked] == first
    assert b"seconds" not in first[0] and b"seconds" not in first[2]
    timings = json.loads((tmp_path / "logs" / "assess-timings.json").read_text())
    assert set(timings["seconds"]) >= {"schema", "leakage", "honest_estimate"}
    assert all(isinstance(v, float) for v in timings["seconds"].values())


def test_stage_remedy_rewrites_the_data_and_schema(tmp_path, monkeypatch):
    from valuegate.config import write_params
    from valuegate.stages import assess as stage

    raw = compose_config(ROOT / "conf", ["assess.n_folds=2"])  # folds: not checked here
    raw["assess"]["leakage"]["post_outcome_columns"] = ["duration_in_month"]
    raw["assess"]["remedies"]["drop_leaky_columns"] = True
    write_params(raw, tmp_path / "params.yaml")
    config = validate(raw)
    splits, schema = prepare(load_raw(config.data, ROOT), config.data, config.seed, "x")
    prepared = tmp_path / "data" / "prepared"
    prepared.mkdir(parents=True)
    for name, part in splits.items():
        part.to_parquet(prepared / f"{name}.parquet", index=False)
    (prepared / "schema.json").write_text(json.dumps(schema.to_dict()))
    monkeypatch.chdir(tmp_path)
    stage.main([])
    assessed = tmp_path / "data" / "assessed"
    new_schema = json.loads((assessed / "schema.json").read_text())
    assert "duration_in_month" not in new_schema["numeric"]
    assert len(new_schema["numeric"]) == len(schema.numeric) - 1
    assert "duration_in_month" not in pd.read_parquet(assessed / "train.parquet").columns
    record = json.loads((tmp_path / "reports" / "assessment.json").read_text())
    assert record["dropped_columns"] == ["duration_in_month"]
    assert record["findings"]["remedied"] == 1


def test_every_model_stage_reads_the_assessed_data():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert "data/prepared" in stages["assess"]["deps"]
    for name, stage in stages.items():
        deps = stage.get("deps") or stage.get("do", {}).get("deps", [])
        if name not in ("prepare", "assess"):
            assert "data/prepared" not in deps, name
    for name in ("baseline", "gate", "tune", "evaluate", "package"):
        assert "data/assessed" in stages[name]["deps"], name
    assert "data/assessed" in stages["train"]["do"]["deps"]


@pytest.mark.slow
def test_dvc_repro_stops_on_a_blocking_finding_until_it_is_accepted(tmp_path: Path):
    project = copy_project(tmp_path / "project")
    conf = project / "conf" / "assess" / "default.yaml"
    settings = yaml.safe_load(conf.read_text())
    settings["leakage"]["post_outcome_columns"] = ["duration_in_month"]
    settings["n_folds"] = 2  # the sampled models' folds: not what this test checks (cheaper)
    conf.write_text(yaml.safe_dump(settings))
    run(["valuegate", "compose"], project)
    failed = run(["dvc", "repro"], project, check=False)
    assert failed.returncode != 0
    assert "assessment blocked" in failed.stderr
    assert '- {id: "post_outcome:duration_in_month"' in failed.stderr
    assert "Traceback" not in failed.stderr
    assert not (project / "data" / "assessed").exists()
    assert not (project / "models" / "baselines").exists()
    assert not (project / "models" / "candidates" / "xgboost").exists()
    assert json.loads((project / "metrics" / "assess.json").read_text())["blocked"] is True

    settings["accept"] = [{"id": "post_outcome:duration_in_month", "reason": "test"}]
    conf.write_text(yaml.safe_dump(settings))
    run(["valuegate", "compose"], project)
    # Through the assessment: it now writes data/assessed, which every model stage reads
    # (test_every_model_stage_reads_the_assessed_data; the models' run on it is the shared
    # full run's, tests/conftest.py `ran_project`).
    passed = run(["dvc", "repro", "assess"], project)
    assert "Running stage 'assess'" in passed.stdout
    assert (project / "data" / "assessed" / "train.parquet").is_file()
    assert (
        json.loads((project / "metrics" / "assess.json").read_text())["findings"]["accepted"] == 1
    )


def test_the_planted_faults_example_finds_every_fault(tmp_path):
    """docs/examples/planted_faults.py: the example with a leak, cross-split copies,
    flipped labels and a shifted feature; its exit code says whether each was found."""
    import importlib.util

    path = ROOT / "docs" / "examples" / "planted_faults.py"
    spec = importlib.util.spec_from_file_location("planted_faults", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "planted.html"
    assert module.main(["--out", str(out)]) == 0
    html = out.read_text()
    assert "target_leakage:repaid_late" in html and "duplicates:cross_split" in html
    assert "Blocks the run" in html
