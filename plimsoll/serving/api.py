"""The gateway's HTTP API (FastAPI): answers with provenance, health, readiness, what is served.

Every refusal is JSON that names the field and the fix: a body that is not JSON, too large,
with unknown fields, or without a usable question. Nothing a client sends reaches the model
unchecked, and no request can take a worker down: an unexpected error is a 500 with a
request id, and the model's own failures are fallbacks (plimsoll/serving/gateway.py).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Annotated

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from plimsoll.serving.gateway import Gateway
from plimsoll.serving.webhooks import ALIAS_ENTITY, verify

log = logging.getLogger("plimsoll.serving")
EXAMPLE = '{"question": "How do I split a string?", "user": "u-123", "session": null}'


class AnswerRequest(BaseModel):
    """The body of POST /v1/answer."""

    model_config = ConfigDict(extra="forbid")
    question: StrictStr
    user: Annotated[StrictStr, Field(max_length=256)] | None = None
    session: Annotated[StrictStr, Field(max_length=256)] | None = None


def refusal(status: int, problem: str, *, field: str | None = None, fix: str,
            headers: dict[str, str] | None = None) -> JSONResponse:
    """A 4xx/5xx body a person can act on."""
    return JSONResponse({"error": {"status": status, "problem": problem, "field": field,
                                   "fix": fix}}, status_code=status, headers=headers)


def create_app(gateway: Gateway, *, max_input_chars: int, webhook_secret: str | None = None,
               manage_lifecycle: bool = True) -> FastAPI:
    """The FastAPI app over one Gateway; `manage_lifecycle` starts and stops it with the app."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if manage_lifecycle:
            gateway.start()
        try:
            yield
        finally:
            if manage_lifecycle:
                gateway.stop()

    app = FastAPI(title="Plimsoll gateway", lifespan=lifespan,
                  description="Grounded answers from the model the `champion` alias names, "
                  "with provenance on every answer.")
    limit = gateway.fallbacks.request.max_body_bytes
    metrics = gateway.observer.metrics
    if metrics is not None:
        app.add_middleware(RequestMetrics, metrics=metrics)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        fix = {404: "see GET /docs for the endpoints: POST /v1/answer, GET /v1/model, "
               "/healthz, /readyz", 405: "check the method: POST /v1/answer, GET for the rest"}
        return refusal(exc.status_code, str(exc.detail),
                       fix=fix.get(exc.status_code, "check the request"))

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        request_id = uuid.uuid4().hex
        log.exception("unexpected error (request %s)", request_id, exc_info=exc)
        return refusal(500, f"unexpected error ({type(exc).__name__}); request {request_id}",
                       fix="retry; if it persists, report the request id to the platform "
                       "team", headers={"X-Request-Id": request_id})

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """The process is up (liveness)."""
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        """A bundle is loaded and has answered a probe (readiness); 503 says why not."""
        ready, reason = gateway.ready()
        return JSONResponse({"ready": ready, "reason": reason}, status_code=200 if ready
                            else 503)

    @app.get("/v1/model")
    def model() -> dict[str, object]:
        """What is served, since when, what is warm, and what is wrong."""
        return gateway.status()

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        """The golden signals in Prometheus' text format (plimsoll/observability/metrics.py)."""
        if metrics is None:
            return refusal(404, "metrics are off on this gateway", fix="start plimsoll "
                           "serve without --no-metrics")
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.post("/v1/answer")
    async def answer(request: Request) -> JSONResponse:
        """Answer one question, with citations, guard findings, fallback and provenance."""
        body = await _read_body(request, limit)
        if isinstance(body, JSONResponse):
            return body
        parsed = _parse(body, max_input_chars)
        if isinstance(parsed, JSONResponse):
            return parsed
        carrier = {name: request.headers[name] for name in ("traceparent", "tracestate")
                   if name in request.headers}
        served = await run_in_threadpool(gateway.answer, parsed.question, user=parsed.user,
                                         session=parsed.session, trace_headers=carrier or None)
        return JSONResponse(served.body(), headers=served.headers())

    @app.post("/v1/hooks/mlflow")
    async def mlflow_webhook(request: Request) -> JSONResponse:
        """MLflow's registry webhooks: an alias event (signed) makes the watcher look now."""
        if not webhook_secret:
            return refusal(403, "webhooks are off on this gateway", fix="set "
                           "PLIMSOLL_WEBHOOK_SECRET to the secret the MLflow webhook was "
                           "created with; polling still sees every alias move")
        body = await _read_body(request, limit)
        if isinstance(body, JSONResponse):
            return body
        why = verify(webhook_secret, {k.lower(): v for k, v in request.headers.items()}, body)
        gateway.counters["webhooks_refused" if why else "webhooks_accepted"] += 1
        if why:
            log.warning("refused an MLflow webhook delivery: %s", why)
            return refusal(401, f"webhook refused: {why}", field="X-MLflow-Signature",
                           fix="register the webhook with this gateway's secret")
        try:
            event = json.loads(body)
        except ValueError:
            return refusal(400, "the webhook body is not JSON", fix="send MLflow's payload")
        data = event.get("data") if isinstance(event, dict) else None
        relevant = (isinstance(data, dict) and event.get("entity") == ALIAS_ENTITY
                    and data.get("name") == gateway.reference.model_name)
        if relevant:
            gateway.nudge()
        return JSONResponse({"accepted": True, "checked_now": relevant})

    return app


class RequestMetrics:
    """ASGI middleware: every request's endpoint, status, duration and served version."""

    def __init__(self, app, metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        """Time the request and read its status and X-Plimsoll-Model-Version."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        seen: dict[str, object] = {"code": 500, "version": None}

        async def send_and_note(message) -> None:
            if message["type"] == "http.response.start":
                seen["code"] = message["status"]
                for name, value in message.get("headers", ()):
                    if name == b"x-plimsoll-model-version" and value != b"none":
                        seen["version"] = value.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self.metrics.observe_request(scope.get("path", ""), int(seen["code"]),
                                         time.perf_counter() - started, seen["version"])


async def _read_body(request: Request, limit: int) -> bytes | JSONResponse:
    """The body, refused past `limit` bytes whether or not Content-Length says so."""
    fix = f"send at most {limit} bytes (policies/fallbacks.yaml, request.max_body_bytes)"
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return refusal(413, f"the body is {declared} bytes, over the limit of {limit}",
                       fix=fix)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return refusal(413, f"the body is over the limit of {limit} bytes", fix=fix)
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(body: bytes, max_input_chars: int) -> AnswerRequest | JSONResponse:
    try:
        raw = json.loads(body)
    except RecursionError:
        return refusal(400, "the body nests JSON too deeply to read", fix="send a flat "
                       f"object, e.g. {EXAMPLE}")
    except (ValueError, UnicodeDecodeError) as exc:
        return refusal(400, f"the body is not JSON ({str(exc)[:120]})", fix="send a JSON "
                       f"object with Content-Type: application/json, e.g. {EXAMPLE}")
    if not isinstance(raw, dict):
        return refusal(422, f"the body is a JSON {type(raw).__name__}, not an object",
                       fix=f"send an object, e.g. {EXAMPLE}")
    try:
        parsed = AnswerRequest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        if first["type"] == "extra_forbidden":
            problem = f"unknown field '{field}'"
            fix = "send only question, user and session"
        elif first["type"] == "missing":
            problem, fix = f"the field '{field}' is missing", f"e.g. {EXAMPLE}"
        else:
            problem = first["msg"]
            fix = ("question is a string" if field == "question" else
                   f"{field} is a string of at most 256 characters, or null")
        return refusal(422, problem, field=field, fix=fix)
    if not parsed.question.strip():
        return refusal(422, "the question is empty", field="question",
                       fix="ask something, e.g. \"How do I split a string?\"")
    if len(parsed.question) > max_input_chars:
        return refusal(422, f"the question is {len(parsed.question)} characters, over the "
                       f"limit of {max_input_chars}", field="question",
                       fix=f"shorten it to at most {max_input_chars} characters (policies/"
                       "guard.yaml, max_input_chars)")
    return parsed
