"""The gateway's core: which bundle answers each request, and what the answer says it was.

Plain Python (the HTTP layer is plimsoll/serving/http.py). A watcher thread follows the alias
(`champion` by default) on the registry's cheap path, the one `plimsoll rollback` uses, and
wakes early when an MLflow webhook says an alias moved. A version is loaded and warmed in the
background, then swapped in by replacing one reference: a request holds the bundle it started
with to its end, so no answer mixes versions. The previous champion stays loaded, so rolling
back is the same pointer swap. Flags (plimsoll/serving/flags.py) pin a version, route a canary
share, switch the answer mode and strict safety, and pick shadow traffic; fallbacks
(policies/fallbacks.yaml) answer when the model or its data is not fit to.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from plimsoll.common.errors import PlimsollError
from plimsoll.common.hashing import sha256_text
from plimsoll.release.promotion import CHAMPION, PREVIOUS
from plimsoll.serving.answerer import Answer, best_sentence
from plimsoll.serving.bundle_cache import BundleCache, LoadedBundle, open_model_dir
from plimsoll.serving.fallbacks import (
    SHORT_FORM,
    STATIC,
    FallbackPolicy,
    Freshness,
    slice_ttls,
    snapshot_freshness,
)

log = logging.getLogger("plimsoll.serving")
RETRY_FAILED_S = 30.0  # a version that failed to load is tried again after this
FLAG_LOAD_CHECK_S = 0.5  # how soon a version a flag names starts loading
SHADOW_QUEUE = 64  # shadow requests waiting beyond this are dropped, never the user's


class ModelReferenceError(PlimsollError):
    """--model names nothing the gateway can serve."""


@dataclass(frozen=True)
class ModelReference:
    """What the gateway serves: an alias it follows, a fixed version, or a model directory."""

    text: str
    model_name: str = ""
    alias: str | None = None
    version: str | None = None
    directory: Path | None = None

    @classmethod
    def parse(cls, text: str) -> ModelReference:
        """`models:/NAME@ALIAS`, `models:/NAME/N`, or a downloaded model directory."""
        from plimsoll.release.registry import MODEL_REF

        match = MODEL_REF.match(text)
        if match is not None and match["version"] != "latest":
            return cls(text, match["name"], alias=match["alias"], version=match["version"])
        if match is None and text.strip() and (Path(text) / "artifacts").is_dir():
            return cls(text, directory=Path(text).resolve())
        raise ModelReferenceError(
            f"'{text}' is not a model the gateway can serve", field="--model",
            fix="use models:/NAME@ALIAS (followed as it moves), models:/NAME/N, or a "
            "downloaded model directory (one with artifacts/)" + (
                " (latest is not a release: name an alias or a version)"
                if match is not None else ""))


@dataclass(frozen=True)
class Decision:
    """How one request is answered when no flag store is configured: follow the alias."""

    version: str | None = None
    route: str = "alias"
    answer_mode: str = "answer"
    strict_safety: bool = False
    shadow_version: str | None = None
    values: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class GatewayAnswer:
    """One response: the answer, how it was decided, and what served it."""

    request_id: str
    answer: str
    abstained: bool
    refused: bool
    citations: list[dict[str, object]]
    guard: dict[str, object]
    fallback: str | None
    latency_ms: float
    provenance: dict[str, object]
    fallback_reason: str | None = None

    def body(self) -> dict[str, object]:
        """The JSON body of POST /v1/answer."""
        body = {"answer": self.answer, "abstained": self.abstained, "refused": self.refused,
                "citations": self.citations, "guard": self.guard, "fallback": self.fallback,
                "request_id": self.request_id, "latency_ms": round(self.latency_ms, 2),
                "provenance": self.provenance}
        if self.fallback_reason:
            body["fallback_reason"] = self.fallback_reason
        return body

    def headers(self) -> dict[str, str]:
        """The provenance a proxy or a log line can read without parsing the body."""
        p = self.provenance
        return {"X-Request-Id": self.request_id,
                "X-Plimsoll-Model-Version": str(p.get("model_version") or "none"),
                "X-Plimsoll-Prompt-Template": str(p.get("prompt_template") or "none"),
                "X-Plimsoll-Index-Snapshot": str(p.get("index_snapshot_id") or "none"),
                **({"X-Plimsoll-Fallback": self.fallback} if self.fallback else {})}


class Gateway:
    """Serves one model reference: follows its alias, keeps bundles warm, answers, falls back."""

    def __init__(self, reference: ModelReference, *, tracking_uri: str,
                 fallbacks: FallbackPolicy, cache_root: Path, manifests: Path | None = None,
                 flags=None, shadow_store=None, check_history=None, watch_s: float = 1.0,
                 answer_workers: int = 4, observer=None) -> None:
        from plimsoll.observability.observer import GatewayObserver

        self.reference = reference
        self.tracking_uri = tracking_uri
        self.fallbacks = fallbacks
        self.flags = flags
        self.shadow_store = shadow_store
        self.check_history = check_history
        self.watch_s = watch_s
        # Metrics, traces, request logs, drift features (none of them: a few no-op calls).
        self.observer = observer or GatewayObserver(model_name=reference.model_name)
        self.cache = BundleCache(cache_root, tracking_uri, reference.model_name)
        self.slice_ttls = slice_ttls(manifests) if manifests else {}
        self.started_at = datetime.now(UTC)
        self._bundles: dict[str, LoadedBundle] = {}
        self._champion: LoadedBundle | None = None
        self._champion_since: datetime | None = None
        self._previous: str | None = None
        self._alias_target: str | None = None
        self._alias_checked_at: datetime | None = None
        self._unavailable = "the gateway is starting: no bundle is loaded yet"
        self._alias_error: str | None = None
        self._load_errors: dict[str, tuple[float, str]] = {}
        self._loading: dict[str, Future] = {}
        self._freshness: dict[str, Freshness] = {}
        self._fresh_checked = 0.0
        self._backend = None
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._loader = ThreadPoolExecutor(1, thread_name_prefix="plimsoll-load")
        self._answers = ThreadPoolExecutor(answer_workers, thread_name_prefix="plimsoll-answer")
        self._shadow_queue: queue.Queue = queue.Queue(SHADOW_QUEUE)
        self._shadow_thread: threading.Thread | None = None
        self.counters = {"answers": 0, "fallbacks": 0, "shadow_recorded": 0,
                         "shadow_dropped": 0, "shadow_failed": 0, "swaps": 0,
                         "webhooks_accepted": 0, "webhooks_refused": 0}

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Start watching (and the flag poller); the first load begins at once."""
        if self.flags is not None:
            self.flags.start()
        self._watcher = threading.Thread(target=self._watch, name="plimsoll-watch",
                                         daemon=True)
        self._watcher.start()
        if self.shadow_store is not None:
            self._shadow_thread = threading.Thread(target=self._shadow_worker,
                                                   name="plimsoll-shadow", daemon=True)
            self._shadow_thread.start()

    def stop(self) -> None:
        """Stop the threads; answers in flight finish."""
        self._stop.set()
        self._wake.set()
        if self._watcher is not None:
            self._watcher.join(timeout=10)
        if self._shadow_thread is not None:
            self._shadow_queue.put(None)
            self._shadow_thread.join(timeout=10)
        if self.flags is not None:
            self.flags.stop()
        self._loader.shutdown(wait=False, cancel_futures=True)
        self._answers.shutdown(wait=False, cancel_futures=True)
        self.observer.close()

    def nudge(self) -> None:
        """Check the alias now (an MLflow webhook said it moved)."""
        self._wake.set()

    def wait_until_ready(self, timeout: float) -> bool:
        """Block until a champion is loaded (for tests and benchmarks)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._champion is not None:
                return True
            time.sleep(0.05)
        return self._champion is not None

    # -- watching --------------------------------------------------------------------------
    def _watch(self) -> None:
        next_tick = 0.0
        while not self._stop.is_set():
            try:
                if self._wake.is_set() or time.monotonic() >= next_tick:
                    self._wake.clear()
                    self.tick()
                    next_tick = time.monotonic() + self.watch_s
                else:
                    # Between registry reads, a flag that names a version (the router
                    # polls its store) starts that version loading without waiting.
                    for version in self._flagged_versions():
                        self._ensure_loading(version)
            except Exception as exc:  # the watcher must outlive any one bad tick
                log.exception("gateway watch tick failed")
                self._unavailable = self._unavailable or f"watch failed: {exc}"
            self._wake.wait(min(self.watch_s, FLAG_LOAD_CHECK_S))

    def tick(self) -> None:
        """One look at the registry and the flags: load what is wanted, swap, re-judge data."""
        target = self._resolve_target()
        wanted = [v for v in (target, self._standby(), *self._flagged_versions()) if v]
        for version in dict.fromkeys(wanted):
            self._ensure_loading(version)
        if target is not None and target in self._bundles:
            self._swap(target)
        self._evict(set(wanted))
        self._judge_freshness()
        if self.flags is not None:
            self.observer.flags_seen(self.flags.status().get("values", {}))

    def _resolve_target(self) -> str | None:
        ref = self.reference
        if ref.directory is not None:
            return "directory"
        if ref.version is not None:
            self._alias_target = ref.version
            return ref.version
        try:
            target = self._aliases().get(ref.model_name, ref.alias)
        except PlimsollError as exc:
            self._backend = None  # reopened next tick: the store may come back
            self._alias_error = f"the registry at {self.tracking_uri} could not be read " \
                                f"({exc.problem})"
            if self._champion is None:
                self._unavailable = self._alias_error
            return self._alias_target  # keep serving what was last resolved
        self._alias_error = None
        self._alias_checked_at = datetime.now(UTC)
        self._alias_target = target
        if target is None and self._champion is None:
            self._unavailable = (f"no version of {ref.model_name} has the alias "
                                 f"'{ref.alias}' yet: approve a candidate (plimsoll review "
                                 "N approved --by NAME; the approval sensor promotes it), or "
                                 f"serve one now with --model models:/{ref.model_name}/N")
        return target

    def _standby(self) -> str | None:
        """The version a rollback of `champion` goes to, kept warm even after a restart."""
        if self.reference.alias != CHAMPION or self._alias_error:
            return self._previous
        try:
            return self._aliases().get(self.reference.model_name, PREVIOUS) or self._previous
        except PlimsollError:
            return self._previous

    def _aliases(self):
        if self._backend is None:
            from plimsoll.release.aliases import RestAliases, fast_aliases

            uri = self.tracking_uri
            # A short timeout: the watch loop must notice a dead server, not hang on it.
            self._backend = RestAliases(uri, timeout=3.0) if uri.startswith(
                ("http://", "https://")) else fast_aliases(uri)
        return self._backend

    def _flagged_versions(self) -> list[str]:
        if self.flags is None:
            return []
        values = self.flags.status().get("values", {})
        found = []
        for name in ("pin", "canary", "shadow"):
            value = values.get(name)
            if isinstance(value, dict) and value.get("version"):
                found.append(str(value["version"]))
        return found

    def _ensure_loading(self, version: str) -> None:
        with self._lock:
            if version in self._bundles or version in self._loading:
                return
            failed = self._load_errors.get(version)
            if failed and time.monotonic() - failed[0] < RETRY_FAILED_S:
                return
            self._loading[version] = self._loader.submit(self._load, version)

    def _load(self, version: str) -> None:
        try:
            if self.reference.directory is not None:
                bundle = open_model_dir(self.reference.directory)
            else:
                tags = self._aliases().version_tags(self.reference.model_name, version)
                bundle = self.cache.open(version, tags)
        except Exception as exc:  # any failure leaves the served bundle alone
            problem = exc.problem if isinstance(exc, PlimsollError) else \
                f"{type(exc).__name__}: {str(exc)[:200]}"
            log.warning("could not load %s version %s: %s", self.reference.model_name,
                        version, problem)
            with self._lock:
                self._load_errors[version] = (time.monotonic(), problem)
                self._loading.pop(version, None)
                if self._champion is None:
                    self._unavailable = f"version {version} did not load: {problem}"
            return
        log.info("loaded %s version %s in %.1fs", bundle.model_name, version,
                 bundle.load_seconds)
        self.observer.bundle_loaded(bundle)
        with self._lock:
            self._bundles[version] = bundle
            self._load_errors.pop(version, None)
            self._loading.pop(version, None)
        self._judge_freshness(force_version=version)
        self._wake.set()  # swap now if it is the alias's target

    def _swap(self, version: str) -> None:
        with self._lock:
            current = self._champion
            if current is not None and current.version == version:
                return
            if current is not None:
                self._previous = current.version
            self._champion = self._bundles[version]  # the swap: one reference
            self._champion_since = datetime.now(UTC)
            self._unavailable = ""
            self.counters["swaps"] += 1
        self.observer.swapped(self._bundles[version], self.reference.alias)
        log.info("serving %s version %s (was %s)", self.reference.model_name, version,
                 current.version if current else "nothing")

    def _evict(self, wanted: set[str]) -> None:
        with self._lock:
            keep = wanted | {b.version for b in (self._champion,) if b} | {self._previous}
            for version in [v for v in self._bundles if v not in keep]:
                del self._bundles[version]  # its files stay in the disk cache
                self._freshness.pop(version, None)
                self.observer.bundle_dropped(version)

    def _judge_freshness(self, force_version: str | None = None) -> None:
        policy = self.fallbacks.retrieval_stale
        due = time.monotonic() - self._fresh_checked >= policy.recheck_s
        if not due and force_version is None:
            return
        with self._lock:
            bundles = list(self._bundles.values())
        if not due:
            bundles = [b for b in bundles if b.version == force_version]
        names = sorted({name for b in bundles for name in b.slices})
        checks: dict[str, object] = {}
        if self.check_history is not None and policy.failed_checks and names:
            try:
                checks = self.check_history.latest(names)
            except PlimsollError as exc:
                log.warning("could not read the slices' check results: %s", exc.problem)
        for bundle in bundles:
            self._freshness[bundle.version] = snapshot_freshness(
                policy, built_at=bundle.built_at, slices=bundle.slices,
                slice_ttl_days=self.slice_ttls, latest_checks=checks)
        if due:
            self._fresh_checked = time.monotonic()

    # -- answering -------------------------------------------------------------------------
    def answer(self, question: str, *, user: str | None = None, session: str | None = None,
               trace_headers: dict[str, str] | None = None) -> GatewayAnswer:
        """Answer one question; never raises for a model or data failure (it falls back).

        `trace_headers` (the request's `traceparent`, `tracestate`) continue a caller's trace.
        """
        started = time.perf_counter()
        request_id = uuid.uuid4().hex
        with self.observer.request_span(request_id, user=user, session=session,
                                        carrier=trace_headers) as span:
            decision = self._decide(user, session, request_id)
            bundle, route = self._pick(decision)
            self.counters["answers"] += 1
            served, result, failure, kinds, cpu = self._answer(
                question, request_id, started, decision, bundle, route, span)
            self.observer.answered(
                span, question=question, served=served, result=result, decision=decision,
                route=served.provenance.get("route") or route,
                version=served.provenance.get("model_version"), failure=failure,
                fallback_reasons=kinds, cpu_seconds=cpu, user=user)
        if result is not None and decision.shadow_version and \
                decision.shadow_version != bundle.version:
            self._queue_shadow(question, served, result, bundle, decision.shadow_version)
        return served

    def _answer(self, question: str, request_id: str, started: float, decision,
                bundle: LoadedBundle | None, route: str, span):
        """(served, the answerer's Answer or None, failure kind, fallback kinds, CPU s)."""
        if bundle is None:
            return (self._static(request_id, started, decision, self._unavailable), None,
                    "unavailable", ("unavailable",), 0.0)
        freshness = self._freshness.get(bundle.version, Freshness())
        mode = "facts" if freshness.stale and "facts" in bundle.answerers else \
            decision.answer_mode if decision.answer_mode in bundle.answerers else "answer"
        answerer = bundle.answerer(mode)
        budget = self.fallbacks.model_unavailable.answer_budget_ms / 1000
        context = None
        if span is not None:
            from opentelemetry import context as otel_context

            context = otel_context.get_current()
        try:
            result, cpu = self._answers.submit(
                self._run, answerer, question, decision.strict_safety, context).result(budget)
        except FutureTimeout:
            return (self._static(request_id, started, decision,
                                 f"version {bundle.version} took longer than the "
                                 f"{budget * 1000:.0f} ms budget", bundle), None, "timeout",
                    ("timeout",), 0.0)
        except Exception as exc:
            log.exception("version %s failed to answer", bundle.version)
            return (self._static(request_id, started, decision, f"version {bundle.version} "
                                 f"failed to answer ({type(exc).__name__})", bundle), None,
                    "model_error", ("model_error",), 0.0)
        text = result.text
        fallback = reason = None
        if freshness.stale:
            fallback, reason = SHORT_FORM, "; ".join(freshness.reasons)
            text = f"{text}\n\n{self.fallbacks.retrieval_stale.nudge}"
        provenance = self._provenance(bundle, route, decision, answerer.metadata, mode)
        served = GatewayAnswer(
            request_id=request_id, answer=text, abstained=result.abstained,
            refused=result.refused,
            citations=[{"doc_id": hit.doc_id, "chunk_id": hit.chunk_id,
                        "quote": best_sentence(question, hit.text),
                        "score": round(float(hit.score), 4)} for hit in result.citations],
            guard={"action": result.guard.action,
                   "findings": [f.as_dict() for f in result.guard.findings]},
            fallback=fallback, fallback_reason=reason,
            latency_ms=(time.perf_counter() - started) * 1000, provenance=provenance)
        if fallback:
            self.counters["fallbacks"] += 1
        return served, result, None, freshness.kinds if fallback else (), cpu

    def _run(self, answerer, question: str, strict: bool, context) -> tuple[Answer, float]:
        """On an answer worker: the answer (its spans under the request's) and its CPU s."""
        token = None
        if context is not None:
            from opentelemetry import context as otel_context

            token = otel_context.attach(context)
        cpu = time.thread_time()
        try:
            return (answerer.answer(question, strict=strict, tracer=self.observer.tracer),
                    time.thread_time() - cpu)
        finally:
            if token is not None:
                otel_context.detach(token)

    def _decide(self, user: str | None, session: str | None, request_id: str):
        if self.flags is None:
            return Decision()
        try:
            return self.flags.decide(user=user, session=session, request_id=request_id)
        except Exception:  # a flag bug must not fail an answer: follow the alias
            log.exception("flag evaluation failed; following the alias")
            return Decision(values={"error": "flag evaluation failed"})

    def _pick(self, decision) -> tuple[LoadedBundle | None, str]:
        champion = self._champion
        if decision.version:
            version = str(decision.version)
            routed = self._bundles.get(version)
            if routed is not None:
                return routed, decision.route
            # Not loaded (yet): the champion answers meanwhile, and the route says why.
            why = "failed to load" if version in self._load_errors else "not loaded yet"
            return champion, f"alias ({decision.route} version {version} {why})"
        return champion, "alias"

    def _provenance(self, bundle: LoadedBundle, route: str, decision, metadata: dict,
                    mode: str) -> dict[str, object]:
        provenance = {k: v for k, v in bundle.provenance.items() if k != "prompt_templates"}
        provenance.update({
            "alias": self.reference.alias if route == "alias" or route.startswith("alias")
            else None,
            "route": route,
            "prompt_template": metadata.get("prompt_template", provenance["prompt_template"]),
            "answer_mode": mode,
            "flags": decision.values,
        })
        return provenance

    def _static(self, request_id: str, started: float, decision, reason: str,
                bundle: LoadedBundle | None = None) -> GatewayAnswer:
        self.counters["fallbacks"] += 1
        provenance: dict[str, object] = {
            "model_name": self.reference.model_name, "model_version": None,
            "alias": self.reference.alias, "route": "fallback", "run_id": None,
            "prompt_template": None, "index_snapshot_id": None, "flags": decision.values,
            "attempted_version": bundle.version if bundle else None}
        return GatewayAnswer(
            request_id=request_id, answer=self.fallbacks.static_text(), abstained=True,
            refused=False, citations=[], guard={"action": "none", "findings": []},
            fallback=STATIC, fallback_reason=reason,
            latency_ms=(time.perf_counter() - started) * 1000, provenance=provenance)

    # -- shadow traffic --------------------------------------------------------------------
    def _queue_shadow(self, question: str, served: GatewayAnswer, result: Answer,
                      bundle: LoadedBundle, challenger: str) -> None:
        if self.shadow_store is None:
            return
        try:
            self._shadow_queue.put_nowait((question, served, result, bundle.version,
                                           challenger))
        except queue.Full:
            self.counters["shadow_dropped"] += 1

    def _shadow_worker(self) -> None:
        while True:
            item = self._shadow_queue.get()
            if item is None or self._stop.is_set():
                return
            try:
                self._shadow_one(*item)
            except Exception:
                self.counters["shadow_failed"] += 1
                log.exception("shadow request failed")

    def _shadow_one(self, question: str, served: GatewayAnswer, result: Answer,
                    served_version: str, challenger: str) -> None:
        from plimsoll.serving.shadow import ShadowPair, agreement

        bundle = self._bundles.get(challenger)
        if bundle is None:
            self.counters["shadow_dropped"] += 1  # not loaded yet
            return
        started = time.perf_counter()
        error = None
        try:
            other = bundle.answerer("answer").answer(question)
        except Exception as exc:
            other, error = None, f"{type(exc).__name__}: {str(exc)[:200]}"
        ours = tuple(hit.doc_id for hit in result.citations)
        theirs = tuple(hit.doc_id for hit in other.citations) if other else ()
        pair = ShadowPair(
            request_id=served.request_id, at=datetime.now(UTC),
            model=self.reference.model_name, served_version=served_version,
            challenger_version=challenger, question_sha256=sha256_text(question),
            question_chars=len(question), served_citations=ours,
            challenger_citations=theirs, served_abstained=result.abstained,
            challenger_abstained=bool(other and other.abstained),
            served_refused=result.refused, challenger_refused=bool(other and other.refused),
            served_latency_ms=served.latency_ms,
            challenger_latency_ms=(time.perf_counter() - started) * 1000 if other else None,
            agreement=agreement(ours, theirs, result.abstained, other.abstained)
            if other else 0.0, challenger_error=error)
        self.shadow_store.record(pair)
        self.counters["shadow_recorded"] += 1

    # -- what is served --------------------------------------------------------------------
    def ready(self) -> tuple[bool, str]:
        """(ready, why): ready once a bundle is loaded and has answered its probe."""
        if self._champion is not None:
            return True, f"serving version {self._champion.version}"
        return False, self._unavailable or "no bundle is loaded yet"

    def status(self) -> dict[str, object]:
        """GET /v1/model: what is served, since when, what is warm, and what is wrong."""
        champion = self._champion
        with self._lock:
            warm = [{"version": b.version, "loaded_at": b.loaded_at.isoformat(),
                     "load_seconds": round(b.load_seconds, 2),
                     "index_snapshot_id": b.provenance["index_snapshot_id"],
                     "stale": list(self._freshness.get(b.version, Freshness()).reasons)}
                    for b in self._bundles.values()]
            loading = sorted(self._loading)
            failed = {v: why for v, (_, why) in self._load_errors.items()}
        ready, why = self.ready()
        return {
            "model": self.reference.text, "model_name": self.reference.model_name,
            "alias": self.reference.alias, "ready": ready, "reason": why,
            "serving": ({"version": champion.version, "since": self._champion_since.isoformat()
                         if self._champion_since else None, **champion.provenance}
                        if champion else None),
            "alias_target": self._alias_target,
            "alias_checked_at": self._alias_checked_at.isoformat()
            if self._alias_checked_at else None,
            "registry_error": self._alias_error, "previous_champion": self._previous,
            "warm": warm, "loading": loading, "failed": failed,
            "watch_interval_s": self.watch_s,
            "flags": self.flags.status() if self.flags is not None else None,
            "started_at": self.started_at.isoformat(), "counters": dict(self.counters),
        }


def wait_for(predicate: Callable[[], bool], timeout: float, every: float = 0.05) -> bool:
    """Poll until `predicate` holds or `timeout` passes (tests and benchmarks)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return predicate()
