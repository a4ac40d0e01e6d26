"""The HTTP prediction service: FastAPI app built from a verified bundle.

The request model is generated from the bundle's input schema (numeric fields are strict
numbers finite as float32, categorical fields text or integer codes, resolved to the
training categories by bundle.RecordChecker, the per-record twin of batch scoring's
bundle.check_chunk), so /docs shows the real fields and bad input gets a 422 naming the
field; a body that is not JSON (by its Content-Type) gets a 415. The per-request path never builds a
DataFrame for xgboost bundles: validated record -> numpy encoder -> booster.inplace_predict.

/docs (Swagger UI) and /redoc work offline: their JavaScript and CSS are served by the app
itself from the `fastapi-offline` package (under /docs-assets/), not from a CDN. /docs shows
request examples from `docs/examples/*.json` (those whose fields are the bundle's), the 401,
413, 415 and 422 answers, and the money unit of `expected_value`.
"""

import contextlib
import hmac
import json
import os
import socket
import time
import uuid
from typing import Annotated, Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi_offline import FastAPIOffline
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    create_model,
)

from valuegate.bundle import FLOAT32_MAX, Bundle, RecordChecker
from valuegate.serving.log import PredictionLog

# prometheus_client's multiprocess mode: read when prometheus_client is first imported.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

PROTECTED = ("/predict", "/metadata")
ENV_SETTINGS = "VALUEGATE_SERVE_SETTINGS"


def _category_schema(field: dict[str, Any]) -> dict[str, Any]:
    """What /docs shows for a categorical field: the known categories, sorted naturally
    (2 before 10), as text and, for integer codes, as integers; and whether other values
    are accepted (scored as the model scores a level it never saw)."""
    known = list(field["categories"])
    codes = []
    for category in known:
        try:
            number = float(category)
        except ValueError:
            continue
        if number.is_integer():
            codes.append(int(number))
    choices: list[dict[str, Any]] = [{"type": "string", "enum": known}]
    if codes:
        choices.append({"type": "integer", "enum": codes})
    accepted = field.get("unseen", "accepted") == "accepted"
    if accepted:
        choices += [{"type": "string"}, {"type": "integer"}]
    return {
        "anyOf": choices,
        "description": f"one of {len(known)} known categories"
        + (", as text or as the integer code" if codes else "")
        + (
            "; any other text or integer is accepted as an unseen category (scored as the "
            "model scores a level it never saw, and counted)"
            if accepted
            else ""
        ),
    }


def record_model(bundle: Bundle) -> type[BaseModel]:
    """The request model: numeric fields are strict JSON numbers (`true` is not 1.0)
    finite as float32, the precision the model computes in (|x| <= 3.4e38: 1e308 would
    reach the model as infinity); categorical fields are text or an integer (resolved
    to the training category by bundle.RecordChecker, as batch scoring does). A field is
    nullable (JSON null) when the fitted pipeline takes a missing value; every field is
    required, so a misspelt or forgotten key is a 422, not a silently imputed value."""
    fields: dict[str, Any] = {}
    for i, field in enumerate(bundle.fields):
        name = field["name"]
        if field["dtype"] == "category":
            # left_to_right: text is tried first, then an integer (as fast as a Literal;
            # pydantic's default "smart" union tries every member: ~25% slower here)
            kind: Any = Annotated[
                StrictStr | StrictInt,
                Field(union_mode="left_to_right"),
                WithJsonSchema(_category_schema(field)),
            ]
            spec = Field(alias=name)
        else:
            kind = Annotated[float, Strict()]
            spec = Field(
                alias=name,
                allow_inf_nan=False,
                ge=-FLOAT32_MAX,
                le=FLOAT32_MAX,
                description="a number, finite as float32 (|x| <= 3.4e38)",
            )
        if field.get("nullable"):
            kind = kind | None
        fields[f"f{i}"] = (kind, spec)
    return create_model(
        "Record",
        __config__=ConfigDict(extra="forbid", populate_by_name=False),
        **fields,
    )


def _error_detail(errors: list[dict[str, Any]], prefix: tuple = ()) -> list[dict[str, Any]]:
    """pydantic's errors as 422 details: field and reason only (echoing the input could
    hold NaN or bytes that are not JSON), one entry per field (a categorical is text or
    an integer: pydantic reports both union members), bounds said in words."""
    detail = []
    seen = set()
    for e in errors:
        loc = [*prefix, *(str(p) for p in e.get("loc", ()))]
        kind = e.get("type")
        msg = str(e.get("msg"))
        if loc and loc[-1] in ("str", "int") and kind in ("string_type", "int_type"):
            loc, msg = loc[:-1], "Input should be text or an integer (a category)"
            kind = "category_type"
        elif kind in ("less_than_equal", "greater_than_equal"):
            msg = (
                f"Input should be finite as float32, |x| <= {FLOAT32_MAX:.6g}: the model "
                "computes in float32, where a larger value is infinity"
            )
        elif kind == "float_type":
            msg = "Input should be a number (JSON true/false and text are not numbers)"
        key = (tuple(loc), kind)
        if key in seen:
            continue
        seen.add(key)
        detail.append({"loc": loc, "msg": msg, "type": kind})
    return detail


SCORE = (
    "binary: the calibrated probability of the positive outcome (0-1); regression: the "
    "model's prediction, in the target's unit"
)
DECISION = (
    "binary: true when score >= threshold (act on the case); regression: score + offset, "
    "the value to act on"
)
EXPECTED_VALUE = (
    "binary: the expected business value of this decision for this case, in the objective's "
    "currency per case (/metadata: objective.currency), from the bundle's value model; "
    "regression: null"
)


class Prediction(BaseModel):
    score: float = Field(description=SCORE)
    decision: bool | float = Field(description=DECISION)
    expected_value: float | None = Field(description=EXPECTED_VALUE)


class PredictResponse(BaseModel):
    request_id: str = Field(description="the X-Request-Id header, or a new id")
    model_version: str = Field(description="the registry version of the bundle that scored")
    threshold: float | None = Field(None, description="binary: the decision threshold")
    offset: float | None = Field(None, description="regression: the offset added to score")
    score: float | None = Field(None, description=f"one record sent: {SCORE}")
    decision: bool | float | None = Field(None, description=f"one record sent: {DECISION}")
    expected_value: float | None = Field(None, description=f"one record sent: {EXPECTED_VALUE}")
    predictions: list[Prediction] | None = Field(
        None, description="a list of records sent: one prediction per record, in order"
    )


def _error(description: str, example: Any) -> dict[str, Any]:
    """An error answer for /docs: every one is JSON `{"detail": ...}`."""
    return {
        "description": description,
        "content": {
            "application/json": {
                "schema": {"type": "object", "properties": {"detail": {}}},
                "example": {"detail": example},
            }
        },
    }


PREDICT_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _error(
        "missing or wrong `Authorization: Bearer <token>` (only when the service runs with "
        "a token: deploy.serve.token_env)",
        "missing or wrong bearer token",
    ),
    413: _error(
        "the body is larger than deploy.serve.max_request_bytes", "request body larger than ..."
    ),
    415: _error(
        "the body is not sent as JSON (Content-Type: application/json)",
        "send the records as JSON (Content-Type: application/json), not text/plain",
    ),
    422: _error(
        "a record is invalid: each problem names the field (loc), what is wrong (msg) and its "
        "type; also more records than deploy.serve.max_records",
        [
            {
                "loc": ["body", "amount"],
                "msg": "Input should be a valid number",
                "type": "float_type",
            }
        ],
    ),
}


def request_examples(directory: str | os.PathLike | None, names: list[str]) -> dict[str, Any]:
    """OpenAPI examples for /predict: each `directory/*.json` holding one record (an object)
    whose keys are exactly the bundle's field `names`, as itself and as a list of one;
    files for another dataset are skipped. {} when there is none (Swagger UI then builds
    one from the schema)."""
    from pathlib import Path

    examples: dict[str, Any] = {}
    if not directory or not Path(directory).is_dir():
        return examples
    for path in sorted(Path(directory).glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue  # an example is documentation: a broken one must not stop the service
        if not isinstance(record, dict) or sorted(record) != sorted(names):
            continue
        examples[path.stem] = {"summary": f"one record ({path.name})", "value": record}
        examples[f"{path.stem} (list)"] = {
            "summary": f"a list of records ({path.name}, once)",
            "value": [record],
        }
    return examples


class _Metrics:
    """Prometheus metrics. With several uvicorn workers (`valuegate serve --workers N`
    sets PROMETHEUS_MULTIPROC_DIR) each worker writes its values to that directory and
    `/metrics` adds up every worker's, whichever worker answers the scrape."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "valuegate_requests", "HTTP requests", ["path", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "valuegate_request_seconds",
            "request latency (seconds)",
            ["path"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.errors = Counter(
            "valuegate_errors", "responses with status >= 400", ["status"], registry=self.registry
        )
        self.decisions = Counter(
            "valuegate_decisions", "decisions made", ["decision"], registry=self.registry
        )
        self.scores = Histogram(
            "valuegate_scores",
            "scores served",
            buckets=tuple(i / 10 for i in range(1, 11)),
            registry=self.registry,
        )
        self.unseen = Counter(
            "valuegate_unseen_categories",
            "values of a categorical field that are not a training category (scored as an "
            "unknown level)",
            ["field"],
            registry=self.registry,
        )
        self.new_missing = Counter(
            "valuegate_missing_not_in_training",
            "missing values in a field that had none in training (imputed, or an unknown level)",
            ["field"],
            registry=self.registry,
        )
        self.info = Gauge(
            "valuegate_model_info",
            "the served model",
            ["version"],
            registry=self.registry,
            multiprocess_mode="max",
        )

    def exposition(self) -> Any:
        """The registry to expose: this process's, or every worker's added up."""
        if self.multiprocess_dir is None:
            return self.registry
        from prometheus_client import CollectorRegistry, multiprocess

        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path=self.multiprocess_dir)
        return merged


class Guard:
    """Pure ASGI middleware: request size limit (413), bearer token (401), metrics."""

    def __init__(self, app: Any, max_bytes: int, token: str | None, metrics: _Metrics):
        self.app, self.max_bytes, self.token, self.metrics = app, max_bytes, token, metrics
        self._expected = f"Bearer {token}".encode() if token else None
        self._children: dict[tuple[str, int], tuple[Any, Any, Any]] = {}

    async def _reply(self, send: Any, status: int, detail: str, extra=()) -> None:
        body = json.dumps({"detail": detail}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *extra,
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope["path"]
        status_box = [500]

        async def send_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status_box[0] = message["status"]
            await send(message)

        try:
            if self._expected is not None and path in PROTECTED:
                given = dict(scope["headers"]).get(b"authorization", b"")
                if not hmac.compare_digest(given, self._expected):
                    await self._reply(
                        send_status,
                        401,
                        "missing or wrong bearer token",
                        [(b"www-authenticate", b"Bearer")],
                    )
                    return
            if scope["method"] in ("POST", "PUT", "PATCH"):
                length = dict(scope["headers"]).get(b"content-length")
                if length is not None:
                    if not length.isdigit() or int(length) > self.max_bytes:
                        await self._reply(
                            send_status, 413, f"request body larger than {self.max_bytes} bytes"
                        )
                        return
                else:  # chunked: read up to the limit, then replay
                    chunks, size = [], 0
                    while True:
                        message = await receive()
                        chunks.append(message.get("body", b""))
                        size += len(chunks[-1])
                        if size > self.max_bytes:
                            await self._reply(
                                send_status, 413, f"request body larger than {self.max_bytes} bytes"
                            )
                            return
                        if not message.get("more_body"):
                            break
                    body = b"".join(chunks)
                    sent = False

                    async def replay() -> dict:
                        nonlocal sent
                        if sent:
                            return await receive()
                        sent = True
                        return {"type": "http.request", "body": body, "more_body": False}

                    receive = replay
            await self.app(scope, receive, send_status)
        finally:
            status = status_box[0]
            label = path if path in KNOWN_PATHS else "other"
            children = self._children.get((label, status))
            if children is None:
                children = self._children[(label, status)] = (
                    self.metrics.requests.labels(label, str(status)),
                    self.metrics.latency.labels(label),
                    self.metrics.errors.labels(str(status)) if status >= 400 else None,
                )
            children[0].inc()
            children[1].observe(time.perf_counter() - started)
            if children[2] is not None:
                children[2].inc()


KNOWN_PATHS = {
    "/predict", "/health", "/ready", "/metadata", "/metrics", "/docs", "/redoc", "/openapi.json"
}  # fmt: skip


def create_app(bundle: Bundle, settings: dict[str, Any] | None = None) -> Any:
    """The service for `bundle`: the FastAPI app inside the `Guard` middleware.
    settings: max_request_bytes, max_records, token_env, log_path (None: no log),
    examples_dir (request examples for /docs; None: none)."""
    settings = dict(settings or {})
    max_records = int(settings.get("max_records", 1000))
    token_env = settings.get("token_env")
    token = os.environ.get(token_env) if token_env else None
    log_path = settings.get("log_path")
    log = PredictionLog(log_path, bundle.fields, bundle.task) if log_path else None
    metrics = _Metrics()
    version = bundle.version
    metrics.info.labels(version).set(1)
    kind, point = bundle.operating_point
    point_key = "threshold" if kind == "threshold" else "offset"
    amount_column = bundle.amount_column
    Record = record_model(bundle)  # noqa: N806
    names = {f"f{i}": field["name"] for i, field in enumerate(bundle.fields)}
    binary = bundle.task == "binary"
    value_model = bundle.value_model  # business.value_model_from_record, as from the config

    # FastAPIOffline: FastAPI whose /docs and /redoc load their assets from this app
    app = FastAPIOffline(
        static_url="/docs-assets",
        title=f"valuegate: {bundle.manifest['model']['name']} {version}",
        description=(
            f"Decision: {bundle.manifest['decision'].get('action')} when score >= {point:g}"
            if binary
            else "Predictions shifted by the chosen offset."
        ),
        version=version,
    )
    app.state.ready = True

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        # Field and reason only: the offending input may hold NaN or bytes that are not
        # JSON, and echoing it could turn a 422 into a 500.
        return JSONResponse({"detail": _error_detail(exc.errors())}, status_code=422)

    app.state.bundle = bundle

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/ready")
    async def ready() -> Response:
        if getattr(app.state, "ready", False):
            return JSONResponse({"status": "ready", "model_version": version, "verified": True})
        return JSONResponse({"status": "not ready"}, status_code=503)

    @app.get("/metadata")
    async def metadata() -> dict[str, Any]:
        manifest = bundle.manifest
        return {
            "model_version": version,
            "model": manifest["model"],
            "decision": manifest["decision"],
            "input": manifest["input"],
            "figures": manifest.get("figures"),
            "data": manifest.get("data"),
            "libraries": manifest.get("libraries"),
            "git_revision": manifest.get("git_revision"),
            "created": manifest.get("created"),
            "hot_path": manifest["scoring"]["hot_path"],
        }

    @app.get("/metrics")
    async def prometheus() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return PlainTextResponse(
            generate_latest(metrics.exposition()), media_type=CONTENT_TYPE_LATEST
        )

    body_type = Record | Annotated[list[Record], Field(min_length=1, max_length=max_records)]
    adapter = TypeAdapter(body_type)
    if bundle.booster is not None:
        # One request at a time per event loop: OpenMP threads for one row only add
        # synchronisation (measured: ~250 -> ~170 us per row on this 2-core machine).
        bundle.booster.set_param({"nthread": 1})

    examples = request_examples(
        settings.get("examples_dir"), [field["name"] for field in bundle.fields]
    )
    body_content: dict[str, Any] = {"schema": {"$ref": "#/components/schemas/Body"}}
    if examples:
        body_content["examples"] = examples

    @app.post(
        "/predict",
        response_model=PredictResponse,
        responses=PREDICT_ERRORS,
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": body_content}}
        },
    )
    async def predict(request: Request) -> Response:
        # The body is parsed and validated in one step from the raw bytes (pydantic-core),
        # not by FastAPI's dependency machinery: the same model, a third of the cost.
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media != "application/json" and not media.endswith("+json"):
            return JSONResponse(
                {
                    "detail": f"send the records as JSON (Content-Type: application/json), "
                    f"not {media or 'a body without a Content-Type'}"
                },
                status_code=415,
            )
        raw = await request.body()
        try:
            body = adapter.validate_json(raw)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False)
            # The body is one record or a list of them: report against the form it has.
            branch = "list[Record]" if raw.lstrip()[:1] == b"[" else "Record"
            errors = [
                {**e, "loc": e["loc"][1:]} if e["loc"][:1] == (branch,) else e
                for e in errors
                if not e["loc"]
                or e["loc"][0] in (branch, "")
                or e["loc"][0] not in ("Record", "list[Record]")
            ]
            return JSONResponse({"detail": _error_detail(errors, ("body",))}, status_code=422)
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        many = isinstance(body, list)
        records = body if many else [body]
        checked = []
        for index, item in enumerate(records):
            try:
                checked.append(check_record({names[k]: v for k, v in item.__dict__.items()}))
            except ValueError as exc:
                field = str(exc).split(":", 1)[0]
                loc = ["body", *([index] if many else []), field]
                detail = [{"loc": loc, "msg": str(exc), "type": "unseen_category"}]
                return JSONResponse({"detail": detail}, status_code=422)
        rows = []
        out = []
        for record, unseen, new_missing in checked:
            for column in unseen:
                unseen_counter(column).inc()
            for column in new_missing:
                missing_counter(column).inc()
            score = bundle.score_record(record)
            amount = record.get(amount_column) if amount_column else None
            decision, ev = value_model.decide_one(score, point, amount)
            # counted by label: act / not act (binary), a value (regression)
            decision_counter[bool(decision) if binary else None].inc()
            score_histogram.observe(score)
            rows.append((record, score, decision, ev))
            out.append({"score": score, "decision": decision, "expected_value": ev})
        if log is not None:
            log.append(request_id, version, rows)
        payload: dict[str, Any] = {
            "request_id": request_id,
            "model_version": version,
            point_key: point,
        }
        if many:
            payload["predictions"] = out
        else:
            payload.update(out[0])
        return Response(
            json.dumps(payload).encode(),
            media_type="application/json",
            headers={"x-request-id": request_id},
        )

    score_histogram = metrics.scores
    check_record = RecordChecker(bundle.fields)

    def unseen_counter(column: str) -> Any:
        return metrics.unseen.labels(column)

    def missing_counter(column: str) -> Any:
        return metrics.new_missing.labels(column)

    decision_counter = {
        True: metrics.decisions.labels("positive"),
        False: metrics.decisions.labels("negative"),
        None: metrics.decisions.labels("value"),
    }
    body_schema = adapter.json_schema(ref_template="#/components/schemas/{model}")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            spec = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(body_schema.pop("$defs", {}))
            schemas["Body"] = {**body_schema, "title": "Body"}
            # the money unit of this bundle's objective, where the models say it generically
            currency = (bundle.manifest.get("objective") or {}).get("currency")
            if binary and currency:
                unit = f"{currency} per case"
                for name in ("Prediction", "PredictResponse"):
                    prop = schemas.get(name, {}).get("properties", {}).get("expected_value")
                    if prop is not None:
                        prop["description"] = prop["description"].replace(
                            "the objective's currency per case", unit
                        )
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    return Guard(app, int(settings.get("max_request_bytes", 1_048_576)), token, metrics)


def app_from_env() -> Any:
    """uvicorn factory (`valuegate serve` with --workers): bundle path and settings from
    the environment, verified again in every worker process."""
    from valuegate.bundle import load_bundle

    settings = json.loads(os.environ[ENV_SETTINGS])
    return create_app(load_bundle(settings["bundle"]), settings)


try:  # uvicorn's h11 protocol with TCP_NODELAY set on every connection (uvicorn #3149)
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class NoDelayH11Protocol(H11Protocol):
        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            sock = transport.get_extra_info("socket")
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().connection_made(transport)
except ImportError:  # pragma: no cover
    NoDelayH11Protocol = None  # type: ignore[assignment,misc]
