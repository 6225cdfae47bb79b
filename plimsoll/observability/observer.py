"""What the gateway reports about each request: metrics, a trace, a log line, drift features.

The gateway calls one GatewayObserver at a few points (a bundle loaded, the served version
changed, an answer composed); each part is optional, so an observer with none is a few no-op
calls. What must be counted at once (answers, failures, fallbacks, findings, cost) is counted
on the request's thread; what costs more (token counts, drift features, the feature row)
is done on one background thread after the answer is sent, from a bounded queue that drops
(and counts) rather than make a request wait.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime

log = logging.getLogger("plimsoll.serving")
request_log = logging.getLogger("plimsoll.serving.requests")
BACKLOG = 1024  # answers waiting for token counts and features beyond this are not counted
CHUNK_TOKEN_CACHE = 100_000  # token counts of cited chunks kept (cleared when full)


@dataclass(frozen=True)
class AnswerEvent:
    """One composed answer, as the observer's background thread needs it."""

    question: str
    served: object  # GatewayAnswer
    result: object | None  # the answerer's Answer (None for a static fallback)
    version: str | None
    at: datetime
    cpu_seconds: float
    log_line: dict = field(default_factory=dict)  # the request log's fields
    outcome: str = ""


class GatewayObserver:
    """Metrics, traces, request logs and drift features of one gateway (each optional)."""

    def __init__(self, *, model_name: str, metrics=None, tracing=None, features=None,
                 segment_key: bytes | None = None) -> None:
        self.model_name = model_name
        self.metrics = metrics
        self.tracing = tracing
        self.features = features
        self.segment_key = segment_key
        self._extras: dict[str, tuple[object, object, object]] = {}  # version → tokenizer..
        self._queue: queue.Queue = queue.Queue(BACKLOG)
        self._chunk_tokens: dict[str, int] = {}
        self._thread: threading.Thread | None = None
        self.dropped = 0
        if metrics is not None or features is not None:
            self._thread = threading.Thread(target=self._work, name="plimsoll-observe",
                                            daemon=True)
            self._thread.start()

    @property
    def tracer(self):
        """The OpenTelemetry tracer of the answer path, or None when tracing is off."""
        return self.tracing.tracer if self.tracing is not None else None

    def segment(self, user: str | None) -> str | None:
        """The anonymised user segment (a keyed hash; never the raw id)."""
        if not user:
            return None
        from plimsoll.observability.tracing import user_segment

        return user_segment(user, self.segment_key)

    # -- the bundle's life -----------------------------------------------------------------
    def bundle_loaded(self, bundle) -> None:
        """A version opened: count the disk cache lookup, keep what features need of it."""
        if self.metrics is not None:
            self.metrics.cache_lookup("bundle", bool(getattr(bundle, "cache_hit", False)))
        answerer = bundle.answerers.get("answer")
        if answerer is None:
            return
        tokenizer = getattr(answerer.encoder, "tokenizer", None)
        centroid = vocab = None
        if self.features is not None:
            from plimsoll.observability.features import encoder_vocabulary, snapshot_centroid

            try:
                centroid = snapshot_centroid(answerer.snapshot)
                vocab = encoder_vocabulary(answerer.encoder.directory.path)
            except Exception:  # a feature must never stop a version from serving
                log.exception("could not read the centroid or vocabulary of version %s",
                              bundle.version)
        self._extras[bundle.version] = (tokenizer, centroid, vocab)

    def bundle_dropped(self, version: str) -> None:
        """A version left memory."""
        self._extras.pop(version, None)

    def swapped(self, bundle, alias: str | None) -> None:
        """The alias's version is now served."""
        if self.metrics is None:
            return
        built = bundle.built_at.timestamp() if bundle.built_at else None
        self.metrics.set_served(version=bundle.version, alias=alias,
                                prompt_template=bundle.provenance.get("prompt_template", ""),
                                index_snapshot=bundle.provenance.get("index_snapshot_id", ""),
                                built_at_unix=built)

    def flags_seen(self, values: Mapping[str, object]) -> None:
        """The flags' values as the router last read them."""
        if self.metrics is not None:
            self.metrics.set_flags({name: flag_variant(value) for name, value in values.items()})

    # -- one request -----------------------------------------------------------------------
    @contextmanager
    def request_span(self, request_id: str, *, user: str | None, session: str | None,
                     carrier: Mapping[str, str] | None = None):
        """The root span of one answer (None when tracing is off).

        `carrier` holds the request's headers: a W3C `traceparent` from the caller makes
        this span a child of the caller's trace.
        """
        if self.tracing is None or self.tracing.provider is None:
            with nullcontext():
                yield None
            return
        context = None
        if carrier:
            from opentelemetry.propagate import extract

            context = extract(carrier)
        attributes = {"gen_ai.response.id": request_id, "gen_ai.operation.name": "chat",
                      "plimsoll.model.name": self.model_name,
                      "plimsoll.user.segment": self.segment(user),
                      # The session is hashed like the user: it can identify a person too.
                      "gen_ai.conversation.id": self.segment(session)}
        with self.tracing.root_span(request_id, attributes, context=context) as span:
            yield span

    def answered(self, span, *, question: str, served, result, decision, route: str,
                 version: str | None, failure: str | None,
                 fallback_reasons: tuple[str, ...], cpu_seconds: float,
                 user: str | None) -> None:
        """One answer composed (or fallen back): count it, finish its span, log it."""
        outcome = _outcome(served, failure)
        findings = _findings(result)
        if self.metrics is not None:
            self.metrics.observe_answer(model_version=version, outcome=outcome,
                                        failure=failure, fallback=served.fallback,
                                        fallback_reasons=fallback_reasons, findings=findings,
                                        cpu_seconds=cpu_seconds)
            if result is not None:
                hits, misses = getattr(result, "passage_cache", (0, 0))
                self.metrics.cache_lookup("passage_verdict", True, hits)
                self.metrics.cache_lookup("passage_verdict", False, misses)
        provenance = served.provenance
        variant = decision_variant(decision, route)
        if span is not None:
            from opentelemetry.trace import Status, StatusCode

            span.set_attributes({
                "plimsoll.model.version": str(version or "none"),
                "gen_ai.request.model": f"{self.model_name}/{version or 'none'}",
                "plimsoll.prompt.template": str(provenance.get("prompt_template") or "none"),
                "plimsoll.index.snapshot": str(provenance.get("index_snapshot_id") or "none"),
                "plimsoll.flags.variant": variant, "plimsoll.route": route,
                "plimsoll.guard.action": str(served.guard.get("action", "none")),
                "plimsoll.fallback": served.fallback or "",
                "plimsoll.outcome": outcome, "plimsoll.citations": len(served.citations),
                "plimsoll.cpu_ms": round(cpu_seconds * 1000, 3)})
            if failure:
                span.set_status(Status(StatusCode.ERROR, failure))
        segment = span.attributes.get("plimsoll.user.segment") if span is not None and \
            hasattr(span, "attributes") else self.segment(user)
        line = {"request_id": served.request_id, "model": self.model_name,
                "model_version": version, "alias": provenance.get("alias"),
                "route": route, "prompt_template": provenance.get("prompt_template"),
                "index_snapshot": provenance.get("index_snapshot_id"),
                "flags_variant": variant, "user_segment": segment,
                "outcome": outcome, "fallback": served.fallback, "failure": failure,
                "guard_action": served.guard.get("action"),
                "latency_ms": round(served.latency_ms, 2),
                "cpu_ms": round(cpu_seconds * 1000, 2)}
        if span is not None:
            context = span.get_span_context()
            line["trace_id"] = format(context.trace_id, "032x")
            line["span_id"] = format(context.span_id, "016x")
        event = AnswerEvent(question, served, result, version, datetime.now(UTC),
                            cpu_seconds, line, outcome)
        if self._thread is None:
            request_log.info("answered %s", outcome, extra=line)
            return
        try:
            # The log line is written from the background thread too: a request pays for
            # one queue put, not for making a log record.
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1
            request_log.info("answered %s", outcome, extra=line)

    # -- off the request path --------------------------------------------------------------
    def _work(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                self._queue.task_done()
                return
            try:
                self._observe_later(event)
            except Exception:  # observing must never take the gateway down
                log.exception("could not record an answer's tokens or features")
            finally:
                self._queue.task_done()

    def _observe_later(self, event: AnswerEvent) -> None:
        if event.log_line:
            request_log.info("answered %s", event.outcome, extra=event.log_line)
        tokenizer, centroid, vocab = self._extras.get(event.version or "", (None, None, None))
        result, served = event.result, event.served
        if self.metrics is not None and tokenizer is not None:
            counts = self._token_counts(tokenizer, event, result)
            self.metrics.observe_answer_tokens(event.version, counts)
        if self.features is not None:
            from plimsoll.observability.features import extract_features

            row = extract_features(
                event.question, served.answer, request_id=served.request_id, at=event.at,
                model=self.model_name, model_version=event.version,
                route=str(served.provenance.get("route") or ""), abstained=served.abstained,
                refused=served.refused, guard_flagged=bool(served.guard.get("findings")),
                fallback=served.fallback,
                cited_doc_ids=[c["doc_id"] for c in served.citations],
                latency_ms=served.latency_ms,
                cpu_ms=event.cpu_seconds * 1000,
                query_vector=getattr(result, "query_vector", None), centroid=centroid,
                vocab=vocab)
            self.features.put(row)

    def _token_counts(self, tokenizer, event: AnswerEvent, result) -> dict[str, int]:
        """Tokens of the question, the cited passages and the answer (the encoder's tokenizer).

        A passage's count is kept by chunk id: the same passages are cited again and again.
        """
        backend = getattr(tokenizer, "backend_tokenizer", None)

        def count(texts: list[str]) -> list[int]:
            if not texts:
                return []
            if backend is not None:  # the Rust tokenizer, without building a BatchEncoding
                return [len(e.ids) for e in backend.encode_batch(texts,
                                                                 add_special_tokens=False)]
            return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]

        hits = list(result.citations) if result is not None else []
        missing = [hit for hit in hits if hit.chunk_id not in self._chunk_tokens]
        for hit, n in zip(missing, count([hit.text for hit in missing]), strict=True):
            if len(self._chunk_tokens) >= CHUNK_TOKEN_CACHE:
                self._chunk_tokens.clear()
            self._chunk_tokens[hit.chunk_id] = n
        question, answer = count([event.question, event.served.answer])
        return {"question": question, "answer": answer,
                "passages": sum(self._chunk_tokens.get(hit.chunk_id, 0) for hit in hits)}

    def close(self, timeout: float = 5.0) -> None:
        """Finish what is queued, then stop (the feature recorder flushes, traces export)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
        if self.features is not None:
            self.features.close()
        if self.tracing is not None:
            self.tracing.shutdown()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until the background queue is empty and its last event done (tests)."""
        import time

        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self._queue.unfinished_tasks


def flag_variant(value: object) -> str:
    """A flag's value as a short label: off, on, facts, v3, v3@10%."""
    if value is None or value is False:
        return "off"
    if value is True:
        return "on"
    if isinstance(value, Mapping):
        version = value.get("version")
        percent = value.get("percent")
        if version is None:
            return "off"
        return f"v{version}" + (f"@{percent:g}%" if isinstance(percent, int | float) else "")
    return str(value)[:32]


def decision_variant(decision, route: str) -> str:
    """How one request was routed, as the trace's flag variant: route, mode, strict."""
    version = getattr(decision, "version", None)
    parts = [f"route={route.split(' ', 1)[0]}" + (f":v{version}" if version else ""),
             f"mode={getattr(decision, 'answer_mode', 'answer')}",
             f"strict={'on' if getattr(decision, 'strict_safety', False) else 'off'}"]
    return ",".join(parts)


def _outcome(served, failure: str | None) -> str:
    if failure or served.fallback == "static_suggestions":
        return "unavailable"
    if served.refused:
        return "refused"
    if served.abstained:
        return "abstained"
    return "answered_cited" if served.citations else "answered_uncited"


def _findings(result) -> list[tuple[str, object]]:
    if result is None:
        return []
    report = result.guard
    return ([("input", f) for f in report.input.findings]
            + [("passage", f) for f in report.passages.findings]
            + [("output", f) for f in report.output.findings])


