"""The HTTP service as a real process: `valuegate serve` on a free localhost port."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.conftest import tool_env
from tests.deploy_helpers import make_bundle, raw_rows
from valuegate.bundle import decide, load_bundle
from valuegate.registry import Registry
from valuegate.serving.log import read_log, read_log_frame

TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(root: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """`valuegate serve` on the champion of root/registry, on a free port, once healthy."""
    port = free_port()
    env = {**tool_env(), "VALUEGATE_TOKEN": TOKEN}
    cmd = [
        str(Path(sys.executable).parent / "valuegate"), "serve", "--registry",
        str(root / "registry"), "--model", "champion", "--port", str(port), *extra,
    ]  # fmt: skip
    process = subprocess.Popen(
        cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"server did not start:\n{process.stdout.read()}")
        time.sleep(0.2)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def served_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("serve")
    make_bundle(root / "registry" / "v1")
    Registry(root / "registry").promote("v1")
    return root


@pytest.fixture(scope="module")
def server(served_root):
    log_path = served_root / "predictions.sqlite"
    process, base = start_server(served_root, "--log", str(log_path))
    try:
        yield base, log_path, load_bundle(served_root / "registry" / "v1")
    finally:
        stop(process)


def records(n: int) -> list[dict]:
    frame = raw_rows(n).drop(columns=["creditability"])
    return json.loads(frame.to_json(orient="records"))


def test_predict_one_and_many_match_the_bundle(server):
    base, _, bundle = server
    rows = records(3)
    one = httpx.post(f"{base}/predict", json=rows[0], headers=AUTH)
    assert one.status_code == 200, one.text
    body = one.json()
    assert body["model_version"] == "v1" and body["threshold"] == 0.3
    assert body["score"] == bundle.score_record(rows[0])
    assert body["decision"] == (body["score"] >= 0.3)
    # the same value model as batch scoring: business.BinaryValueModel
    amount = np.array([float(rows[0][bundle.amount_column])])
    batch = decide(bundle, np.array([body["score"]]), amount)["expected_value"][0]
    assert body["expected_value"] == pytest.approx(batch)
    assert len(body["request_id"]) == 32
    many = httpx.post(f"{base}/predict", json=rows, headers=AUTH).json()
    assert [p["score"] for p in many["predictions"]] == [bundle.score_record(r) for r in rows]


def test_ready_metadata_and_metrics(server):
    base, _, _ = server
    assert httpx.get(f"{base}/ready").json() == {
        "status": "ready", "model_version": "v1", "verified": True,
    }  # fmt: skip
    meta = httpx.get(f"{base}/metadata", headers=AUTH).json()
    assert meta["hot_path"] == "xgboost_numpy" and meta["decision"]["value"] == 0.3
    httpx.post(f"{base}/predict", json=records(1)[0], headers=AUTH)
    text = httpx.get(f"{base}/metrics").text
    assert 'valuegate_requests_total{path="/predict",status="200"}' in text
    assert "valuegate_request_seconds_bucket" in text
    assert "valuegate_decisions_total" in text


def test_metrics_add_up_every_workers_requests(served_root, tmp_path):
    process, base = start_server(
        served_root, "--workers", "2", "--log", str(tmp_path / "log.sqlite")
    )
    try:
        body = records(1)[0]
        for _ in range(30):  # a new connection each time, so both workers answer some
            with httpx.Client() as client:
                assert client.post(f"{base}/predict", json=body, headers=AUTH).status_code == 200
        text = httpx.get(f"{base}/metrics").text
    finally:
        stop(process)
    assert 'valuegate_requests_total{path="/predict",status="200"} 30.0' in text
    assert "valuegate_decisions_total" in text


def _known(prop: dict) -> list:
    """The enum of known categories in a field's schema (inside anyOf, maybe nullable)."""
    out = []
    for choice in prop.get("anyOf", [prop]):
        out += _known(choice) if "anyOf" in choice else choice.get("enum", [])
    return out


def test_openapi_shows_real_fields_and_categories(server):
    base, _, _ = server
    spec = httpx.get(f"{base}/openapi.json").json()
    record = spec["components"]["schemas"]["Record"]
    assert {"type": "number"}.items() <= record["properties"]["credit_amount"]["anyOf"][0].items()
    assert "radio/television" in _known(record["properties"]["purpose"])
    assert "purpose" in record["required"] and "credit_amount" in record["required"]


def test_bad_input_is_422_naming_the_field(server):
    base, _, _ = server
    row = records(1)[0]
    for field, value in [("credit_amount", True), ("credit_amount", 1e308), ("purpose", False),
                         ("credit_amount", "12"), ("purpose", 2.5)]:  # fmt: skip
        bad = httpx.post(f"{base}/predict", json={**row, field: value}, headers=AUTH)
        assert bad.status_code == 422, (field, value, bad.text)
        assert [d["loc"] for d in bad.json()["detail"]] == [["body", field]], bad.text
    many = httpx.post(f"{base}/predict", json=[row, {**row, "age_in_years": True}], headers=AUTH)
    assert [d["loc"] for d in many.json()["detail"]] == [["body", "1", "age_in_years"]]
    plain = httpx.post(
        f"{base}/predict", content=json.dumps(row), headers={**AUTH, "content-type": "text/plain"}
    )
    assert plain.status_code == 415 and "application/json" in plain.json()["detail"]
    bare = httpx.post(f"{base}/predict", content=json.dumps(row).encode(), headers=AUTH)
    assert bare.status_code == 415
    charset = {**AUTH, "content-type": "application/json; charset=utf-8"}
    assert httpx.post(f"{base}/predict", content=json.dumps(row), headers=charset).is_success
    nan = httpx.post(
        f"{base}/predict",
        content=json.dumps({**row, "credit_amount": float("nan")}),
        headers={**AUTH, "content-type": "application/json"},
    )
    assert nan.status_code == 422 and nan.json()["detail"][0]["loc"][-1] == "credit_amount"
    broken = httpx.post(
        f"{base}/predict",
        content=b"{not json",
        headers={**AUTH, "content-type": "application/json"},
    )
    assert broken.status_code == 422


def test_too_large_is_413_and_no_token_is_401(server):
    base, _, _ = server
    big = httpx.post(f"{base}/predict", content=b"x" * 2_000_000, headers=AUTH)
    assert big.status_code == 413
    row = records(1)[0]
    assert httpx.post(f"{base}/predict", json=row).status_code == 401
    wrong = httpx.post(f"{base}/predict", json=row, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert httpx.get(f"{base}/health").status_code == 200  # probes stay open


def test_log_holds_what_was_served(server):
    base, log_path, _ = server
    rows = records(2)
    served = httpx.post(
        f"{base}/predict", json=rows, headers={**AUTH, "X-Request-ID": "req-log-1"}
    ).json()
    logged = [r for r in read_log(log_path) if r["request_id"] == "req-log-1"]
    assert [r["score"] for r in logged] == [p["score"] for p in served["predictions"]]
    assert [r["decision"] for r in logged] == [p["decision"] for p in served["predictions"]]
    assert logged[0]["inputs"]["purpose"] == rows[0]["purpose"]
    assert all(r["model_version"] == "v1" for r in logged)
    # the typed frame monitoring reads (tests/test_prediction_log.py tests the log itself)
    frame = read_log_frame(log_path, model_version="v1")
    frame = frame[frame["request_id"] == "req-log-1"]
    assert frame["score"].tolist() == [p["score"] for p in served["predictions"]]
    assert frame["purpose"].astype(str).tolist() == [r["purpose"] for r in rows]
    assert frame["duration_in_month"].tolist() == [float(r["duration_in_month"]) for r in rows]


def test_openapi_fuzzing_finds_no_server_error(server):
    """schemathesis generates requests from the OpenAPI spec; none may get a 5xx."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode

    base, _, _ = server
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    failures, statuses = [], set()
    for operation in schema.get_all_operations():
        op = operation.ok()
        modes = [GenerationMode.POSITIVE]
        if op.method.upper() == "POST":  # a GET without parameters has no invalid form
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:

            @settings(
                max_examples=30,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=op.as_strategy(generation_mode=mode))
            def check(case):
                response = case.call(headers=AUTH, timeout=10)
                statuses.add((case.path, response.status_code))
                if response.status_code >= 500:
                    failures.append((case.method, case.path, response.status_code, response.text))

            check()
    assert not failures, failures[:3]
    # the fuzzing reached the model: some generated records were scored, some refused
    assert ("/predict", 200) in statuses and ("/predict", 422) in statuses


# --------------------------------------------------------------------------- the service
# agrees with batch scoring (in-process: the same app `valuegate serve` runs)


@pytest.fixture(scope="module")
def synth_client(tmp_path_factory):
    from fastapi.testclient import TestClient

    from tests.test_scoring_inputs import SYNTH, build, write_synth
    from valuegate.serving.app import create_app

    root = tmp_path_factory.mktemp("synth_serve")
    write_synth(root / "synth.csv")
    bundle = build(root, SYNTH)[0]
    with TestClient(create_app(bundle)) as client:
        yield client, bundle, root


def test_service_takes_integer_codes_gaps_and_unseen_levels_as_batch_does(synth_client, tmp_path):
    from valuegate.serving.batch import predict_file

    client, bundle, root = synth_client
    typed = pd.read_csv(root / "synth.csv").head(12).drop(columns=["label"])
    typed["region_code"] = typed["region_code"].astype("Int64")  # JSON integers: 7, not 7.0
    typed["branch"] = typed["branch"].astype(int)
    typed.loc[0, "channel"] = "kiosk"  # unseen
    typed.loc[1, "channel"] = None  # training had no gaps here
    typed.loc[2, "age"] = None
    typed.loc[3, "region_code"] = 99  # an unseen code
    body = json.loads(typed.to_json(orient="records"))
    assert isinstance(body[4]["region_code"], int | None) and isinstance(body[4]["branch"], int)
    response = client.post("/predict", json=body)
    assert response.status_code == 200, response.text
    served = [p["score"] for p in response.json()["predictions"]]
    typed.to_csv(tmp_path / "in.csv", index=False)
    predict_file(bundle, tmp_path / "in.csv", tmp_path / "out.parquet", on_error="fail")
    assert served == pd.read_parquet(tmp_path / "out.parquet")["score"].tolist()
    # a code as text scores as the code
    one = {**body[5], "region_code": 7}
    as_text = client.post("/predict", json={**one, "region_code": "7"}).json()["score"]
    assert client.post("/predict", json=one).json()["score"] == as_text
    metrics = client.get("/metrics").text
    assert 'valuegate_unseen_categories_total{field="channel"} 1.0' in metrics
    assert 'valuegate_unseen_categories_total{field="region_code"} 1.0' in metrics
    assert 'valuegate_missing_not_in_training_total{field="channel"} 1.0' in metrics
    assert 'valuegate_missing_not_in_training_total{field="age"} 1.0' in metrics
    # every key is still required: a forgotten field is a 422, not an imputed value
    partial = {k: v for k, v in body[5].items() if k != "age"}
    missing = client.post("/predict", json=partial)
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "age"]


def test_docs_list_integer_codes_sorted_naturally(synth_client):
    client, _bundle, _root = synth_client
    spec = client.get("/openapi.json").json()
    branch = spec["components"]["schemas"]["Record"]["properties"]["branch"]
    assert _known(branch) == [str(i) for i in range(1, 31)] + list(range(1, 31))
    record = {"grade": "A", "region_code": 7, "branch": 10, "channel": "web", "income": 3000.0,
              "age": 40}  # fmt: skip
    assert client.post("/predict", json=record).status_code == 200
    for value in (3.4e38, -3.4e38):
        assert client.post("/predict", json={**record, "income": value}).status_code == 200
    for value in (3.5e38, 1e308):
        refused = client.post("/predict", json={**record, "income": value})
        assert refused.status_code == 422 and "float32" in refused.json()["detail"][0]["msg"]


@pytest.fixture(scope="module")
def docs_client(served_root):
    from fastapi.testclient import TestClient

    from tests.conftest import ROOT
    from valuegate.serving.app import create_app

    bundle = load_bundle(served_root / "registry" / "v1")
    settings = {"examples_dir": str(ROOT / "docs" / "examples")}
    with TestClient(create_app(bundle, settings)) as client:
        yield client


def test_docs_page_and_its_assets_are_served_locally(docs_client):
    import re

    for page in ("/docs", "/redoc"):
        html = docs_client.get(page).text
        assert not re.search(r"https?://", html), f"{page} refers to another host"
        assets = re.findall(r'(?:src|href)="(/[^"]+)"', html)
        assert any(a.endswith(".js") for a in assets), html
        for asset in assets:
            served = docs_client.get(asset)
            assert served.status_code == 200 and len(served.content) > 1000, asset
    assert "SwaggerUIBundle" in docs_client.get("/docs-assets/swagger-ui-bundle.js").text


def test_docs_show_examples_errors_and_the_money_unit(docs_client):
    spec = docs_client.get("/openapi.json").json()
    predict = spec["paths"]["/predict"]["post"]
    examples = predict["requestBody"]["content"]["application/json"]["examples"]
    applicant = json.loads((Path(__file__).parents[1] / "docs/examples/applicant.json").read_text())
    assert examples["applicant"]["value"] == applicant
    assert examples["applicant (list)"]["value"] == [applicant]
    # the example is a valid request
    assert docs_client.post("/predict", json=applicant).status_code == 200
    for status in ("401", "413", "415", "422"):
        assert predict["responses"][status]["description"], status
    schemas = spec["components"]["schemas"]
    for name in ("Prediction", "PredictResponse"):
        assert "EUR per case" in schemas[name]["properties"]["expected_value"]["description"]


def test_docs_examples_skip_files_for_other_fields(tmp_path):
    from valuegate.serving.app import request_examples

    (tmp_path / "mine.json").write_text('{"a": 1, "b": "x"}')
    (tmp_path / "other.json").write_text('{"a": 1}')
    (tmp_path / "broken.json").write_text("{")
    assert list(request_examples(tmp_path, ["b", "a"])) == ["mine", "mine (list)"]
    assert request_examples(tmp_path / "absent", ["a"]) == {}
