"""The package step in memory (pipeline/package.py) and the `package` stage over it: the
same record and bundle either way; against a champion the record holds the decision churn
and the seed stability, and an uplift within the seed spread is not promoted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT
from valuegate.business import value_model
from valuegate.config.loading import compose_config, validate, write_params
from valuegate.data import file_sha256, load_raw
from valuegate.deploy import decision_churn, seed_stability
from valuegate.io import to_json
from valuegate.pipeline import run, steps
from valuegate.pipeline.common import as_recorded
from valuegate.pipeline.package import finish_record
from valuegate.registry import Registry

SMALL = (
    "assess.n_folds=2",
    "gate.cross_fit.folds=3",
    "gate.cross_fit.choice_resamples=50",
    "deploy.n_resamples=200",
    "deploy.seed_stability.seeds=2",
)


def test_churn_splits_the_uplift_by_direction_and_seed_spread_calls_noise(compose):
    config = compose()
    model = value_model(config)
    rng = np.random.default_rng(0)
    n = 2000
    y = (rng.random(n) < 0.3).astype(int)
    old = np.clip(0.3 + 0.3 * (y - 0.3) + rng.normal(0, 0.2, n), 0, 1)
    new = np.clip(old + rng.normal(0, 0.05, n), 0, 1)
    churn = decision_churn(model, y, new, 0.5, old, 0.5, None, 300, 1, 0.95)
    flipped = (new >= 0.5) != (old >= 0.5)
    assert churn["flipped"] == int(flipped.sum()) > 0
    assert churn["flipped_share"] == pytest.approx(flipped.mean())
    assert churn["new_acts"]["rows"] + churn["new_holds"]["rows"] == churn["flipped"]
    # Where both decide alike they are worth the same: the flips are the whole uplift.
    uplift = model.value_at_point(y, new, 0.5) - model.value_at_point(y, old, 0.5)
    assert churn["value_per_period"] == pytest.approx(uplift)
    for part in ("new_acts", "new_holds"):
        assert churn[part]["ci_lower"] <= churn[part]["value_per_period"] <= churn[part]["ci_upper"]
    # Identical models: nothing flips, worth nothing.
    same = decision_churn(model, y, old, 0.5, old, 0.5, None, 100, 1, 0.95)
    assert same["flipped"] == 0 and same["value_per_period"] == 0

    refits = [{"seed": 43, "scores": new, "point": 0.45}, {"seed": 44, "scores": old, "point": 0.5}]
    record = seed_stability(model, y, None, (new, 0.5), refits, observed_uplift=uplift)
    values = record["value_per_period"]
    assert set(values) == {"shipped", "seed 43", "seed 44"}
    assert record["spread"] == pytest.approx(max(values.values()) - min(values.values()))
    assert record["noise"] == (uplift <= record["spread"])
    assert seed_stability(model, y, None, (new, 0.5), [], observed_uplift=1.0)["spread"] == 0


def test_an_uplift_within_the_seed_spread_is_noise_and_not_promoted(compose):
    from valuegate.deploy import ChampionEvidence, budget_attempt, deploy_decision

    config = compose()
    model = value_model(config)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    good = np.clip(y * 0.6 + rng.normal(0.2, 0.15, 400), 0, 1)
    worse = rng.uniform(0, 1, 400)
    champion = ChampionEvidence("v1", worse, 0.5, np.ones(400, dtype=bool), {"fresh": 400})
    figures = {"value_per_period": 100_000, "roc_auc": 0.8}

    def decide(refits):
        attempt = budget_attempt({"test_rows": {}}, "fp", {"model": "m"}, 0.05, 400)
        calls = []
        record = deploy_decision(
            config, model, "xgboost", figures, y, good, None, 0.45, champion, attempt,
            seed_refits=lambda: calls.append(1) or refits,
        )  # fmt: skip
        return record, calls

    # Seeds that agree: the uplift stands, promoted; the record says what flips.
    steady, calls = decide([{"seed": 43, "scores": good, "point": 0.45}])
    assert calls == [1] and steady["promote"] and not steady["seed_stability"]["noise"]
    assert steady["seed_stability"]["spread"] == 0
    assert "decisions flip on" in steady["reason"] and steady["churn"]["flipped"] > 0
    # A seed whose model is as bad as the champion: the same config moves by more than
    # the uplift, so the uplift is noise.
    shaky, _ = decide([{"seed": 43, "scores": worse * 0.2, "point": 0.5}])
    assert shaky["versus_champion"]["passed"] and shaky["seed_stability"]["noise"]
    assert not shaky["promote"] and not shaky["packaged"]
    assert "noise, not packaged" in shaky["reason"] and "deploy.seed_stability" in shaky["reason"]
    # Off: not measured, never called.
    off = compose("deploy.seed_stability.seeds=0")
    attempt = budget_attempt({"test_rows": {}}, "fp", {"model": "m"}, 0.05, 400)
    record = deploy_decision(
        off, model, "xgboost", figures, y, good, None, 0.45, champion, attempt,
        seed_refits=lambda: pytest.fail("refitted with seed_stability.seeds 0"),
    )  # fmt: skip
    assert record["promote"] and "seed_stability" not in record


def _project(tmp: Path, overrides: tuple[str, ...]):
    """A run directory: params.yaml of `overrides`, the example's data, no conf/ (so no
    freshness check); returns the config."""
    raw = compose_config(ROOT / "conf", [*SMALL, *overrides])
    config = validate(raw)
    (tmp / "data/raw").mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / config.data.path, tmp / config.data.path)
    write_params(raw, tmp / "params.yaml")
    return config


def _in_memory(config, result, registry: Registry):
    """The package step on an in-memory run, against `registry` (read only)."""
    from valuegate.stages.common import stamp
    from valuegate.stages.package import read_honest_estimate

    splits, schema = result.data
    evaluation = as_recorded(result.evaluation)
    name = evaluation["final"]["model"]
    role = result.models[name].info["role"]
    source = f"models/{'candidates' if role == 'candidate' else role + 's'}/{name}/model.skops"
    final = steps.final_model(result.models[name], source)
    champion = registry.champion
    honest, note = read_honest_estimate()
    held = registry.holding(name, final.predictions_sha256)
    step = steps.package(
        config, schema, splits, evaluation, final,
        champion=registry.load() if champion and held is None else None,
        champion_name=champion, ledger=registry.budget(), honest=honest, honest_note=note,
        held=held, next_version=registry.next_version(),
    )  # fmt: skip
    return step, lambda record: stamp(record, config, schema=schema)


@pytest.mark.slow
def test_the_package_stage_writes_what_the_step_returns_and_compares_with_the_champion(
    tmp_path, monkeypatch
):
    from valuegate.stages import package as stage
    from valuegate.stages.outputs import write_result

    monkeypatch.chdir(tmp_path)
    registry = Registry("models/registry/german_credit")
    records = []
    # the second run reuses the first's prepared and assessed data (same data, seed and
    # assess settings), as a sweep's runs do: one assessment, not two
    cache: dict = {}
    # On 1,000 rows no candidate passes the gate: the linear baseline goes forward, and a
    # change of its C makes the challenger.
    for candidate in (("model=[xgboost]",), ("model=[xgboost]", "+baseline.linear.params.C=0.05")):
        config = _project(tmp_path, candidate)
        sha = file_sha256(config.data.path)
        result = run(config, load_raw(config.data), sha, tune=False, cache=cache)
        write_result(result, tmp_path)
        step, stamped = _in_memory(config, result, registry)
        stage.main([])
        written = json.loads(Path("reports/deploy.json").read_text())
        # The stage adds only what writing the bundle decides (version, scoring path,
        # the champion after it).
        after = written["champion_after"]
        if step.bundle is not None:
            finish_record(step.record, step.bundle.version, written["hot_path"], after)
        else:
            finish_record(step.record, None, None, after)
        assert to_json(stamped(step.record)) == Path("reports/deploy.json").read_text()
        records.append(written)
        if step.bundle is not None:
            manifest = json.loads(
                Path(registry.root / step.bundle.version / "manifest.json").read_text()
            )
            for key in ("model", "decision", "calibration", "figures", "data", "row_lineage"):
                assert json.loads(to_json(step.bundle.manifest[key])) == manifest[key], key
    first, second = records
    assert first["packaged"] and first["version"] == "v1" and "churn" not in first
    # The second model meets the champion on the test rows neither has seen.
    versus = second["versus_champion"]
    assert versus["champion"] == "v1" and versus["rows"] >= 100
    churn = second["churn"]
    assert churn["applies"] and churn["rows"] == versus["rows"]
    assert churn["value_per_period"] == pytest.approx(versus["observed_uplift"], abs=1e-6)
    stability = second["seed_stability"]
    assert stability["seeds"] == [43, 44] and stability["spread"] >= 0
    assert "decisions flip on" in second["reason"] or stability["noise"]
    assert f"seed spread {round(stability['spread']):,d} EUR/month" in second["reason"]
    assert registry.integrity("v1") == ("ok", None)


def test_a_promotion_cut_short_is_finished_but_a_rollback_is_respected(tmp_path):
    from tests.deploy_helpers import make_bundle
    from valuegate.bundle import MANIFEST, sha256_file
    from valuegate.io import atomic_write_json

    def packaged(version: str, promote: bool) -> None:
        directory = tmp_path / "reg" / version
        make_bundle(directory, version=version, params={"n_estimators": 5})
        # as the package stage writes it: the deploy gate's record in the manifest
        manifest = json.loads((directory / MANIFEST).read_text())
        manifest["deploy_gate"] = {"promote": promote}
        atomic_write_json(directory / MANIFEST, manifest)
        (directory / (MANIFEST + ".sha256")).write_text(sha256_file(directory / MANIFEST))

    registry = Registry(tmp_path / "reg")
    packaged("v1", True)
    registry.promote("v1")
    packaged("v2", True)  # the run was killed after writing v2, before promoting it
    packaged("v3", False)  # packaged without promotion (e.g. no fair comparison)
    assert not registry.unfinished_promotion("v1")  # the champion already
    assert registry.unfinished_promotion("v2")
    assert not registry.unfinished_promotion("v3")
    registry.promote("v2")
    assert registry.rollback() == "v1"
    # rolled back by a person: never promoted again by a rerun
    assert not registry.unfinished_promotion("v2")
    assert json.loads((tmp_path / "reg" / "champion.json").read_text())["demoted"] == ["v2"]
    registry.promote("v2")  # a person may promote it again
    assert registry.champion == "v2" and "demoted" not in json.loads(
        (tmp_path / "reg" / "champion.json").read_text()
    )
