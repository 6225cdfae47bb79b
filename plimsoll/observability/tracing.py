"""The gateway's traces: OpenTelemetry spans, tail-sampled, exported off the request path.

Each gateway builds its own `Tracing` (its own TracerProvider, never the global one: tests
and a process may run several gateways). Ended spans are buffered by trace; when the root
span ("gateway.answer") ends, its attributes become a TraceSummary for the TailSampler, and
kept traces go to one background thread through a bounded queue. A full queue drops the
trace (counted); a request never waits on an exporter. Exporters: OTLP over HTTP (prod),
MLflow Tracing into the gateway's tracking store (local), or none.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import math
import os
import queue
import secrets
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache

from opentelemetry import trace as trace_api
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from plimsoll.common.errors import PlimsollError
from plimsoll.observability.policy import ObservabilityPolicy, TracingPolicy
from plimsoll.observability.sampling import UNSAMPLED, Kept, TailSampler, TraceSummary

log = logging.getLogger("plimsoll.observability.tracing")

# -- the span tree and the attributes the sampler and the exporters read ---------------------
ROOT_SPAN = "gateway.answer"
STAGE_SPANS = ("guard.input", "retrieval", "guard.passages", "answer.compose", "guard.output")
REQUEST_ID = "plimsoll.request_id"
MODEL_NAME = "plimsoll.model.name"
MODEL_VERSION = "plimsoll.model.version"
PROMPT_TEMPLATE = "plimsoll.prompt.template"
INDEX_SNAPSHOT = "plimsoll.index.snapshot"
FLAGS_VARIANT = "plimsoll.flags.variant"
USER_SEGMENT = "plimsoll.user.segment"
ROUTE = "plimsoll.route"
GUARD_ACTION = "plimsoll.guard.action"  # "none" = no guard triggered
FALLBACK = "plimsoll.fallback"  # absent or empty = no fallback
SAMPLING_REASONS = "plimsoll.sampling.reasons"  # written on the exported root: why it was kept
GUARD_NOT_TRIGGERED = "none"
# GenAI semantic conventions, where they fit an extractive answer.
GENAI_OPERATION = "gen_ai.operation.name"
GENAI_PROVIDER = "gen_ai.provider.name"
GENAI_REQUEST_MODEL = "gen_ai.request.model"
GENAI_RESPONSE_ID = "gen_ai.response.id"
GENAI_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GENAI_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
PROVIDER = "plimsoll"
ERROR_TYPE = "error.type"

# -- what each decision is counted as (plimsoll_traces_total{decision, reason}) --------------
KEPT, DROPPED = "kept", "dropped"
QUEUE_FULL = "queue_full"  # kept, but the export queue was full
EXPORT_FAILED = "export_failed"  # kept, but the exporter refused, failed or timed out
UNFINISHED = "unfinished"  # spans whose root never ended, evicted from the buffer
SHUTDOWN = "shutdown"  # ended after shutdown began, or still queued when its wait ran out
INTERNAL = "internal"  # the processor failed on it (a bug; logged)
EXPORTED = ("exported", "ok")  # delivered to the exporter

OTLP_ENDPOINT_ENV = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
OTLP_TIMEOUT_ENV = ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")
SEGMENT_KEY_ENV = "PLIMSOLL_SEGMENT_KEY"
SEGMENT_CHARS = 16
# MLflow shows the tree by span type: guards, retrieval and the composed answer.
MLFLOW_SPAN_TYPES = {ROOT_SPAN: "CHAIN", "guard.input": "GUARDRAIL", "retrieval": "RETRIEVER",
                     "guard.passages": "GUARDRAIL", "answer.compose": "TASK",
                     "guard.output": "GUARDRAIL"}
MLFLOW_TRACE_TAGS = (MODEL_NAME, MODEL_VERSION, PROMPT_TEMPLATE, INDEX_SNAPSHOT, FLAGS_VARIANT,
                     ROUTE, GUARD_ACTION, FALLBACK, SAMPLING_REASONS)

OnDecision = Callable[[str, str], None]


class TracingError(PlimsollError):
    """The tracing settings cannot give a working exporter."""


# -- user segments ---------------------------------------------------------------------------
def user_segment(user: str | None, key: bytes) -> str | None:
    """A user's segment: a keyed hash (HMAC-SHA256, 16 hex chars), never the raw id."""
    if not user:
        return None
    return hmac.new(key, user.encode("utf-8"), hashlib.sha256).hexdigest()[:SEGMENT_CHARS]


def segment_key(environ: Mapping[str, str] | None = None) -> bytes:
    """The segment key: $PLIMSOLL_SEGMENT_KEY, else one random key for this process."""
    environ = os.environ if environ is None else environ
    if value := environ.get(SEGMENT_KEY_ENV):
        return value.encode("utf-8")
    return _process_segment_key()


@lru_cache(maxsize=1)
def _process_segment_key() -> bytes:
    # One per process, so every gateway in it agrees; a restart starts new segments.
    log.warning("%s is not set: user segments use a random key for this process, so they "
                "are not stable across restarts or replicas (first-of-user sampling and "
                "per-segment counts start over); set it to a secret shared by the replicas",
                SEGMENT_KEY_ENV)
    return secrets.token_bytes(32)


# -- from spans to a summary -----------------------------------------------------------------
def is_root(span: ReadableSpan) -> bool:
    """The local root of a trace: no parent, or a parent in another process."""
    return span.parent is None or span.parent.is_remote


def summarize(root: ReadableSpan, spans: Sequence[ReadableSpan]) -> TraceSummary:
    """The sampler's view of a finished trace, read from its root's attributes."""
    attrs = root.attributes or {}

    def text(key: str) -> str:
        value = attrs.get(key)
        return "" if value is None else str(value)

    start, end = root.start_time or 0, root.end_time or 0
    guard = text(GUARD_ACTION)
    return TraceSummary(
        trace_id=root.context.trace_id,
        duration_ms=max(end - start, 0) / 1e6,
        user_segment=text(USER_SEGMENT) or None,
        kind=(text(MODEL_VERSION), text(PROMPT_TEMPLATE), text(FLAGS_VARIANT)),
        guard_triggered=bool(guard) and guard != GUARD_NOT_TRIGGERED,
        failed=root.status.status_code is trace_api.StatusCode.ERROR,
        fallback=text(FALLBACK) or None,
        payload=tuple(spans))


def annotated(kept: Kept) -> list[ReadableSpan]:
    """A kept trace's spans, its root carrying the reasons it was kept."""
    spans = list(kept.summary.payload or ())
    for i, span in enumerate(spans):
        if is_root(span):
            spans[i] = _with_attributes(span, {SAMPLING_REASONS: tuple(kept.reasons)})
    return spans


def _with_attributes(span: ReadableSpan, extra: Mapping[str, object]) -> ReadableSpan:
    return ReadableSpan(
        name=span.name, context=span.context, parent=span.parent, resource=span.resource,
        attributes={**(span.attributes or {}), **extra},
        events=span.events, links=span.links, kind=span.kind, status=span.status,
        start_time=span.start_time, end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope)


# -- the processor: buffer, sample, hand over ------------------------------------------------
@dataclass
class _OpenTrace:
    spans: list[ReadableSpan] = field(default_factory=list)
    last_seen: float = 0.0


_STOP = object()


class TailSamplingProcessor(SpanProcessor):
    """Buffers ended spans by trace, tail-samples at the root's end, exports in the background.

    The export thread hands the exporter up to `max_batch` kept traces at a time (a collector
    that hangs costs one timeout per batch, not per trace); a failed batch counts each of its
    traces "export_failed". Memory is bounded everywhere: at most `max_open_traces`
    unfinished traces (the least recently active, or any idle for `open_trace_ttl_s`, are
    evicted and counted "unfinished"), `max_spans_per_trace` spans each, the sampler's N
    slowest per window, and `export_queue` kept traces waiting. `on_decision(decision,
    reason)` is told every count as it happens (the gateway's plimsoll_traces_total).
    """

    def __init__(self, sampler: TailSampler, exporter: SpanExporter | None, *,
                 export_queue: int = 512, max_open_traces: int = 4096,
                 max_spans_per_trace: int = 256, open_trace_ttl_s: float = 300.0,
                 tick_s: float = 0.5, max_batch: int = 64, shutdown_timeout_s: float = 5.0,
                 on_decision: OnDecision | None = None) -> None:
        self.sampler = sampler
        self.exporter = exporter
        self.clock = sampler.clock
        self.max_open_traces = max_open_traces
        self.max_spans_per_trace = max_spans_per_trace
        self.open_trace_ttl_s = open_trace_ttl_s
        self.tick_s = tick_s
        self.max_batch = max_batch
        self.shutdown_timeout_s = shutdown_timeout_s
        self.on_decision = on_decision
        self._lock = threading.Lock()
        self._open: OrderedDict[int, _OpenTrace] = OrderedDict()
        # Traces decided lately: a span that ends after its root is dropped, not re-buffered.
        self._decided: OrderedDict[int, None] = OrderedDict()
        self._queue: queue.Queue = queue.Queue(maxsize=export_queue)
        self._pending = 0  # kept traces queued or being exported
        self._idle = threading.Condition(threading.Lock())
        self._counts: Counter[tuple[str, str]] = Counter()
        self._unreported: list[tuple[str, str]] = []  # counted, not yet told to on_decision
        self.late_spans = 0
        self.truncated_spans = 0
        self._closed = False
        self._stopping = threading.Event()
        self._worker = threading.Thread(target=self._run, name="plimsoll-trace-export",
                                        daemon=True)
        self._worker.start()

    # -- SpanProcessor ----------------------------------------------------------------------
    def on_start(self, span, parent_context=None) -> None:
        """Nothing to do until spans end."""

    def on_end(self, span: ReadableSpan) -> None:
        """Buffer a span; at its trace's root, decide the trace (on the request thread).

        Never raises: this runs inside the request's span.end().
        """
        try:
            self._on_end(span)
        except Exception as exc:  # tracing must never fail the request it describes
            with self._lock:
                self._count((DROPPED, INTERNAL))
            log.warning("a trace could not be sampled (%s: %s); it is dropped",
                        type(exc).__name__, exc)

    def _on_end(self, span: ReadableSpan) -> None:
        trace_id = span.context.trace_id
        root = is_root(span)
        kept: list[Kept] = []
        with self._lock:
            if self._closed:
                if root:
                    self._count((DROPPED, SHUTDOWN))
            elif trace_id in self._decided:
                self.late_spans += 1
            elif not root:
                self._buffer(trace_id, span)
            else:
                kept = self._decide(trace_id, span)
        self._hand_over(kept)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Wait until every trace kept so far is exported (held slowest stay held)."""
        return self._wait_idle(timeout_millis / 1000)

    def shutdown(self) -> None:
        """Release the held slowest, export what is queued (bounded wait), stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            released = self.sampler.close()
            for _ in self._open:
                self._count((DROPPED, UNFINISHED))
            self._open.clear()
        self._hand_over(released)
        self._wait_idle(self.shutdown_timeout_s)
        self._stopping.set()
        # Wakes the worker now; when the queue is full (a hung exporter) the event stops it
        # once the exporter lets go, and as a daemon it never holds up the process's exit.
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_STOP)
        self._worker.join(timeout=0.5)
        if self.exporter is not None:
            try:
                self.exporter.shutdown()
            except Exception as exc:  # an exporter's shutdown must not stop the gateway's
                log.warning("trace exporter shutdown failed: %s", exc)

    # -- what the gateway and tests read ----------------------------------------------------
    def release_closed_windows(self) -> int:
        """Hand over the held slowest of a window that closed (the worker does this itself)."""
        with self._lock:
            if self._closed:
                return 0
            released = self.sampler.flush()
        self._hand_over(released)
        return len(released)

    def release_held(self) -> int:
        """Hand over every held slowest now, window closed or not (tests, drains)."""
        with self._lock:
            released = self.sampler.close()
        self._hand_over(released)
        return len(released)

    def counters(self) -> dict[tuple[str, str], int]:
        """{(decision, reason): traces}: kept/dropped by reason, and ("exported", "ok")."""
        with self._lock:
            return dict(self._counts)

    @property
    def open_traces(self) -> int:
        """Unfinished traces buffered now."""
        return len(self._open)

    # -- under the lock ---------------------------------------------------------------------
    def _buffer(self, trace_id: int, span: ReadableSpan) -> None:
        now = self.clock()
        pending = self._open.get(trace_id)
        if pending is None:
            pending = self._open[trace_id] = _OpenTrace()
        else:
            self._open.move_to_end(trace_id)
        pending.last_seen = now
        if len(pending.spans) < self.max_spans_per_trace:
            pending.spans.append(span)
        else:
            self.truncated_spans += 1
        self._evict(now)

    def _evict(self, now: float) -> None:
        # Least recently active first, so the front is both the oldest and the idlest.
        while self._open:
            oldest_id, oldest = next(iter(self._open.items()))
            if len(self._open) <= self.max_open_traces and \
                    now - oldest.last_seen < self.open_trace_ttl_s:
                return
            del self._open[oldest_id]
            self._count((DROPPED, UNFINISHED))

    def _count(self, decision: tuple[str, str], n: int = 1) -> None:
        if n <= 0:
            return
        self._counts[decision] += n
        self._unreported += [decision] * n

    def _decide(self, trace_id: int, root: ReadableSpan) -> list[Kept]:
        pending = self._open.pop(trace_id, None)
        spans = [*pending.spans, root] if pending else [root]
        self._decided[trace_id] = None
        if len(self._decided) > self.max_open_traces:
            self._decided.popitem(last=False)
        self._evict(self.clock())
        before = self.sampler.dropped[UNSAMPLED]
        kept = self.sampler.offer(summarize(root, spans))
        self._count((DROPPED, UNSAMPLED), self.sampler.dropped[UNSAMPLED] - before)
        return kept

    # -- off the lock -----------------------------------------------------------------------
    def _hand_over(self, kept: list[Kept]) -> None:
        """Queue kept traces (never blocking: a full queue drops), then report the counts."""
        for item in kept:
            with self._idle:
                self._pending += 1
            try:
                self._queue.put_nowait(item)
                decision = (KEPT, item.reason)
            except queue.Full:
                with self._idle:
                    self._pending -= 1
                decision = (DROPPED, QUEUE_FULL)
            with self._lock:
                self._count(decision)
        self._report()

    def _report(self) -> None:
        with self._lock:
            reports, self._unreported = self._unreported, []
        if self.on_decision is None:
            return
        for decision, reason in reports:
            try:
                self.on_decision(decision, reason)
            except Exception as exc:  # a metrics callback must not fail a request
                log.debug("trace decision callback failed: %s", exc)

    def _wait_idle(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._idle:
            while self._pending > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def _run(self) -> None:
        failing = False
        while True:
            try:
                first = self._queue.get(timeout=self.tick_s)
            except queue.Empty:
                first = None
            batch = [] if first is None else [first]
            while first is not None and len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(item is _STOP for item in batch)
            traces = [item for item in batch if item is not _STOP]
            if traces:
                failing = self._export(traces, failing)
            if stop or self._stopping.is_set():
                self._drop_left_over()
                return
            try:
                self.release_closed_windows()
            except Exception as exc:  # the worker must outlive any one bad trace
                log.warning("releasing the slowest traces failed: %s", exc)

    def _drop_left_over(self) -> None:
        """Kept traces still queued when shutdown's wait ran out: counted, not lost silently."""
        left = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            left += item is not _STOP
        if left:
            with self._lock:
                self._count((DROPPED, SHUTDOWN), left)
            self._report()
            with self._idle:
                self._pending -= left
                self._idle.notify_all()

    def _export(self, traces: list[Kept], failing: bool) -> bool:
        """Export a batch; returns whether the exporter is failing (logged once, not per batch)."""
        error = None
        try:
            spans = [span for kept in traces for span in annotated(kept)]
            ok = self.exporter is None or \
                self.exporter.export(spans) is SpanExportResult.SUCCESS
        except Exception as exc:  # an exporter bug or outage must not kill the worker
            ok, error = False, exc
        with self._lock:
            if ok:
                self._counts[EXPORTED] += len(traces)
            else:
                self._count((DROPPED, EXPORT_FAILED), len(traces))
        if not ok and not failing:
            log.warning("%d kept trace(s) could not be exported (%s); further failures are "
                        "counted in plimsoll_traces_total{decision=\"dropped\","
                        "reason=\"export_failed\"}", len(traces),
                        error or "the exporter reported a failure")
        elif ok and failing:
            log.info("trace export recovered")
        self._report()
        with self._idle:
            self._pending -= len(traces)
            self._idle.notify_all()
        return not ok


# -- exporters -------------------------------------------------------------------------------
def choose_exporter(policy: TracingPolicy, environ: Mapping[str, str]) -> str:
    """"otlp", "mlflow" or "none": auto means OTLP when an OTLP endpoint is set, else MLflow."""
    if policy.exporter != "auto":
        return policy.exporter
    return "otlp" if any(environ.get(name) for name in OTLP_ENDPOINT_ENV) else "mlflow"


def otlp_exporter(environ: Mapping[str, str], timeout_s: float) -> SpanExporter:
    """OTLP/HTTP to $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or $OTEL_EXPORTER_OTLP_ENDPOINT/v1/traces.

    A short timeout (unless $OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT says otherwise) bounds how
    long the export thread spends on a collector that does not answer.
    """
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    endpoint = environ.get(OTLP_ENDPOINT_ENV[0]) or None
    if endpoint is None and (base := environ.get(OTLP_ENDPOINT_ENV[1])):
        endpoint = base.rstrip("/") + "/v1/traces"
    timeout = None if any(environ.get(name) for name in OTLP_TIMEOUT_ENV) else timeout_s
    return OTLPSpanExporter(endpoint=endpoint, timeout=timeout)


class MlflowTraceExporter(SpanExporter):
    """Writes kept traces into an MLflow tracking store, linked to the model version served.

    Each trace is one TraceInfo (tags: the plimsoll.* root attributes; metadata: the served
    version's LoggedModel id as "mlflow.modelId") and its spans with their own ids, parents,
    times and attributes, written through a TracingClient bound to this store's URI. MLflow's
    fluent tracing state (its tracer provider, the global tracking URI, the active
    experiment) is never touched, so gateways writing to different stores at once do not mix.
    """

    def __init__(self, tracking_uri: str, experiment: str, *,
                 registry_uri: str | None = None, artifact_root: str | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri
        self.artifact_root = artifact_root
        self.experiment = experiment
        self._registry = None
        self._client = None
        self._experiment_id: str | None = None
        self._failing = False
        self._model_ids: OrderedDict[tuple[str, str], tuple[str | None, str | None,
                                                            str | None]] = OrderedDict()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Write each trace among `spans`; FAILURE if any could not be written."""
        by_trace: dict[int, list[ReadableSpan]] = {}
        for span in spans:
            by_trace.setdefault(span.context.trace_id, []).append(span)
        ok = True
        for trace_spans in by_trace.values():
            try:
                self._write(trace_spans)
            except Exception as exc:  # a store outage fails the batch, never the worker
                # Why, once per outage: the processor counts every failed trace.
                (log.debug if self._failing else log.warning)(
                    "traces cannot be written to the MLflow store at %s (%s: %s)",
                    self.tracking_uri, type(exc).__name__, str(exc).splitlines()[0][:200]
                    if str(exc) else "")
                self._failing, ok = True, False
            else:
                self._failing = False
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        """Nothing is held open between exports."""

    def model_id(self, model: str, version: str) -> str | None:
        """The LoggedModel behind a registered version (ModelVersion.model_id), if it has one."""
        return self.served(model, version)[0]

    def served(self, model: str, version: str) -> tuple[str | None, str | None, str | None]:
        """(LoggedModel id, source run id, that run's experiment id) of a registered version.

        A trace goes into the experiment of the run that produced the version, linked to
        that run (mlflow.sourceRun): in the MLflow UI it is one click from the version page
        (Source run → Traces). Unknown parts are None and the trace is still written.
        """
        key = (model, version)
        if key in self._model_ids:
            self._model_ids.move_to_end(key)
            return self._model_ids[key]
        from plimsoll.release.registry import RegistryError, VersionNotRegistered

        try:
            found = self._models().version(model, version)
        except VersionNotRegistered:
            found = None  # a trace of an unregistered version is still written, unlinked
        model_id = getattr(found, "model_id", None) if found is not None else None
        source = getattr(found, "source", "") or ""
        if not model_id and source.startswith("models:/m-"):
            model_id = source.removeprefix("models:/").split("/")[0]
        run_id = getattr(found, "run_id", None) if found is not None else None
        experiment_id = None
        if run_id:
            try:
                experiment_id = self._models().run_experiment(run_id)
            except RegistryError:
                run_id = None  # the run is gone: link to the version alone
        self._model_ids[key] = (model_id or None, run_id or None, experiment_id)
        if len(self._model_ids) > 256:
            self._model_ids.popitem(last=False)
        return self._model_ids[key]

    def _models(self):
        if self._registry is None:
            from plimsoll.release.registry import ModelRegistry

            self._registry = ModelRegistry(self.tracking_uri, registry_uri=self.registry_uri,
                                           experiment=self.experiment,
                                           artifact_root=self.artifact_root)
        return self._registry

    def _tracing_client(self):
        if self._client is None:
            from mlflow.tracing.client import TracingClient

            self._client = TracingClient(self.tracking_uri)
        return self._client

    def _write(self, spans: list[ReadableSpan]) -> None:
        from mlflow.entities import Span, TraceInfo, TraceLocation, TraceState
        from mlflow.tracing.constant import (
            TRACE_SCHEMA_VERSION,
            TRACE_SCHEMA_VERSION_KEY,
            SpanAttributeKey,
            TraceMetadataKey,
            TraceTagKey,
        )
        from mlflow.tracing.utils import generate_mlflow_trace_id_from_otel_trace_id

        roots = [span for span in spans if is_root(span)]
        if not roots:
            raise TracingError("a kept trace without its root span", field="spans")
        root = roots[0]
        if self._experiment_id is None:
            self._experiment_id = self._models().ensure_reachable()
        trace_id = generate_mlflow_trace_id_from_otel_trace_id(root.context.trace_id)
        attrs = root.attributes or {}
        metadata = {TRACE_SCHEMA_VERSION_KEY: str(TRACE_SCHEMA_VERSION)}
        experiment_id = self._experiment_id
        if attrs.get(MODEL_NAME) and attrs.get(MODEL_VERSION):
            model_id, run_id, run_experiment = self.served(str(attrs[MODEL_NAME]),
                                                           str(attrs[MODEL_VERSION]))
            if model_id:
                metadata[TraceMetadataKey.MODEL_ID] = model_id
            if run_id and run_experiment:
                metadata[TraceMetadataKey.SOURCE_RUN] = run_id
                experiment_id = run_experiment
        if attrs.get(USER_SEGMENT):
            metadata[TraceMetadataKey.TRACE_USER] = str(attrs[USER_SEGMENT])
        tags = {TraceTagKey.TRACE_NAME: root.name}
        for key in MLFLOW_TRACE_TAGS:
            value = attrs.get(key)
            if value not in (None, ""):
                tags[key] = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
        start_ms = (root.start_time or 0) // 1_000_000
        end_ms = (root.end_time or root.start_time or 0) // 1_000_000
        failed = root.status.status_code is trace_api.StatusCode.ERROR
        info = TraceInfo(
            trace_id=trace_id, trace_location=TraceLocation.from_experiment_id(experiment_id),
            request_time=start_ms, execution_duration=max(end_ms - start_ms, 0),
            state=TraceState.ERROR if failed else TraceState.OK,
            client_request_id=str(attrs[REQUEST_ID]) if attrs.get(REQUEST_ID) else None,
            trace_metadata=metadata, tags=tags)
        client = self._tracing_client()
        client.start_trace(info)

        def mlflow_span(span: ReadableSpan) -> Span:
            # MLflow keeps attribute values JSON-encoded, and names the trace on every span.
            values = {key: json.dumps(list(value) if isinstance(value, tuple) else value)
                      for key, value in (span.attributes or {}).items()}
            values[SpanAttributeKey.REQUEST_ID] = json.dumps(trace_id)
            values[SpanAttributeKey.SPAN_TYPE] = json.dumps(
                MLFLOW_SPAN_TYPES.get(span.name, "UNKNOWN"))
            if usage := _token_usage(span.attributes or {}):  # MLflow's token columns
                values[SpanAttributeKey.CHAT_USAGE] = json.dumps(usage)
            # The local root is MLflow's root even when a caller's trace continues above it.
            copy = ReadableSpan(
                name=span.name, context=span.context,
                parent=None if span is root else span.parent, resource=span.resource,
                attributes=values, events=span.events, links=span.links, kind=span.kind,
                status=span.status, start_time=span.start_time, end_time=span.end_time,
                instrumentation_scope=span.instrumentation_scope)
            return Span(copy)

        client.log_spans(experiment_id, [mlflow_span(span) for span in spans])


def _token_usage(attrs: Mapping[str, object]) -> dict[str, int] | None:
    tokens = {}
    for key, name in ((GENAI_INPUT_TOKENS, "input_tokens"),
                      (GENAI_OUTPUT_TOKENS, "output_tokens")):
        value = attrs.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            tokens[name] = value
    if not tokens:
        return None
    tokens["total_tokens"] = sum(tokens.values())
    return tokens


# -- the one object the gateway holds --------------------------------------------------------
class Tracing:
    """One gateway's tracing: its tracer, its tail sampler and its exporter thread.

    `exporter` overrides the policy's choice (tests pass an in-memory one). With the
    exporter "none" the tracer is a no-op: spans cost nothing and nothing is kept.
    """

    def __init__(self, policy: ObservabilityPolicy, *, tracking_uri: str | None = None,
                 registry_uri: str | None = None, artifact_root: str | None = None,
                 exporter: SpanExporter | None = None,
                 service_name: str = "plimsoll-gateway",
                 resource_attributes: Mapping[str, str] | None = None,
                 environ: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 on_decision: OnDecision | None = None, export_timeout_s: float = 2.0,
                 key: bytes | None = None, **processor_options) -> None:
        environ = os.environ if environ is None else environ
        self.policy = policy
        self.key = key if key is not None else segment_key(environ)
        self.exporter_kind = "custom" if exporter is not None else \
            choose_exporter(policy.tracing, environ)
        if exporter is None and self.exporter_kind == "otlp":
            exporter = otlp_exporter(environ, export_timeout_s)
        elif exporter is None and self.exporter_kind == "mlflow":
            if not tracking_uri:
                raise TracingError(
                    "traces go to MLflow, but the gateway has no tracking URI",
                    field="tracing.exporter", file="policies/observability.yaml",
                    fix="give the gateway its MLflow tracking URI (--tracking-uri or "
                    "$MLFLOW_TRACKING_URI), set OTEL_EXPORTER_OTLP_ENDPOINT for OTLP, or "
                    "set tracing.exporter: none")
            exporter = MlflowTraceExporter(tracking_uri, policy.tracing.mlflow_experiment,
                                           registry_uri=registry_uri,
                                           artifact_root=artifact_root)
        self.exporter = exporter
        if self.exporter_kind == "none":
            self.provider = None
            self.sampler = None
            self.processor = None
            self.tracer: trace_api.Tracer = trace_api.NoOpTracer()
            return
        self.sampler = TailSampler(policy.sampling, clock=clock)
        self.processor = TailSamplingProcessor(
            self.sampler, exporter, export_queue=policy.tracing.export_queue,
            on_decision=on_decision, **processor_options)
        resource = Resource.create({"service.name": service_name,
                                    **dict(resource_attributes or {})})
        self.provider = TracerProvider(resource=resource)
        self.provider.add_span_processor(self.processor)
        self.tracer = self.provider.get_tracer("plimsoll.gateway")

    def segment(self, user: str | None) -> str | None:
        """The user's segment under this gateway's key (None for an anonymous request)."""
        return user_segment(user, self.key)

    @contextmanager
    def root_span(self, request_id: str, attributes: Mapping[str, object] | None = None, *,
                  context: object = None) -> Iterator[trace_api.Span]:
        """The request's root span ("gateway.answer", SERVER), current inside the block.

        An exception escaping the block marks it failed (status ERROR, error.type) and is
        re-raised. Set the sampler's attributes (guard action, fallback, ...) before it ends.
        """
        with self._span(ROOT_SPAN, {REQUEST_ID: request_id, GENAI_PROVIDER: PROVIDER,
                                    **_clean(attributes)},
                        context=context, kind=trace_api.SpanKind.SERVER) as span:
            yield span

    @contextmanager
    def stage(self, name: str, attributes: Mapping[str, object] | None = None
              ) -> Iterator[trace_api.Span]:
        """A child span of the current one (STAGE_SPANS: guard.input, retrieval, ...)."""
        with self._span(name, _clean(attributes)) as span:
            yield span

    @contextmanager
    def _span(self, name: str, attributes: dict[str, object], **options
              ) -> Iterator[trace_api.Span]:
        # Only the exception's type is recorded: its message and stack may quote the user's
        # question, and traces leave the process.
        with self.tracer.start_as_current_span(
                name, attributes=attributes, record_exception=False,
                set_status_on_exception=False, **options) as span:
            try:
                yield span
            except Exception as exc:
                span.set_attribute(ERROR_TYPE, type(exc).__qualname__)
                span.set_status(trace_api.Status(trace_api.StatusCode.ERROR,
                                                 type(exc).__qualname__))
                raise

    def force_flush(self, timeout_s: float = 5.0, *, release_held: bool = False) -> bool:
        """Wait until kept traces are exported; `release_held` also hands over the slowest."""
        if self.processor is None:
            return True
        if release_held:
            self.processor.release_held()
        return self.processor.force_flush(int(timeout_s * 1000))

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Export what is kept and held (waiting at most `timeout_s`), then stop; idempotent."""
        if self.provider is None:
            return
        self.processor.shutdown_timeout_s = timeout_s
        self.provider.shutdown()

    def counters(self) -> dict[tuple[str, str], int]:
        """{(decision, reason): traces} so far (empty with the exporter "none")."""
        return {} if self.processor is None else self.processor.counters()


def _clean(attributes: Mapping[str, object] | None) -> dict[str, object]:
    """OpenTelemetry refuses None values; a missing attribute is simply absent."""
    out = {}
    for key, value in (attributes or {}).items():
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            continue
        out[key] = value
    return out
