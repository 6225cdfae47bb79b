"""Gateway tracing: what reaches each exporter, and that a request never waits on one."""

import contextlib
import logging
import shutil
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from plimsoll.observability import tracing as T
from plimsoll.observability.policy import ObservabilityPolicy

KEY = b"test-segment-key"
MS = 1_000_000  # ns


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def policy(exporter="auto", queue=512, **sampling):
    sampling = {"slowest_n": 1, "window_s": 10, "rate": 0.0, **sampling}
    return ObservabilityPolicy(version=1, sampling=sampling,
                               tracing={"exporter": exporter, "export_queue": queue})


@pytest.fixture
def gateways():
    """Tracing objects made by a test, shut down after it even when it fails."""
    made = []

    def make(*args, **kwargs):
        kwargs.setdefault("key", KEY)
        kwargs.setdefault("environ", {})
        made.append(T.Tracing(*args, **kwargs))
        return made[-1]

    yield make
    for tracing in made:
        tracing.shutdown(timeout_s=1)


def request(tracing, request_id, *, ms=10, user=None, version="3", prompt="answer-v2",
            flags="pin=off,canary=off", guard="none", fallback=None, error=False, at=None):
    """One synthetic answer: the root and its five stages, `ms` long, ending at `at` ns."""
    end = at if at is not None else time.time_ns()
    start = end - ms * MS
    attributes = {T.REQUEST_ID: request_id, T.MODEL_NAME: "docs", T.MODEL_VERSION: version,
                  T.PROMPT_TEMPLATE: prompt, T.FLAGS_VARIANT: flags, T.GUARD_ACTION: guard,
                  T.INDEX_SNAPSHOT: "snap-1", T.ROUTE: "champion",
                  T.USER_SEGMENT: tracing.segment(user)}
    if fallback:
        attributes[T.FALLBACK] = fallback
    tracer = tracing.tracer
    root = tracer.start_span(T.ROOT_SPAN, kind=trace_api.SpanKind.SERVER, start_time=start,
                             attributes={k: v for k, v in attributes.items() if v is not None})
    context = trace_api.set_span_in_context(root)
    step = (end - start) // (len(T.STAGE_SPANS) + 1)
    for i, name in enumerate(T.STAGE_SPANS):
        child = tracer.start_span(name, context=context, start_time=start + i * step,
                                  attributes={"plimsoll.stage": i})
        child.end(end_time=start + (i + 1) * step)
    if error:
        root.set_status(trace_api.Status(trace_api.StatusCode.ERROR, "model_error"))
    root.end(end_time=end)
    return root.get_span_context().trace_id


def exported_by_request(exporter):
    traces = {}
    for span in exporter.get_finished_spans():
        traces.setdefault(span.context.trace_id, []).append(span)
    out = {}
    for spans in traces.values():
        (root,) = [s for s in spans if s.parent is None]
        out[root.attributes[T.REQUEST_ID]] = (root, spans)
    return out


# -- sampling through the processor ------------------------------------------------------
def test_exactly_the_sampled_traces_reach_the_exporter(gateways):
    clock = Clock()
    memory = InMemorySpanExporter()
    tracing = gateways(policy(slowest_n=1), exporter=memory, clock=clock)
    stream = [  # (at s, request id, what)
        (1, "r1", {"user": "alice"}),  # first user, first kind
        (2, "r2", {"user": "alice", "ms": 90}),  # the window's slowest: kept at its close
        (3, "r3", {"user": "alice", "ms": 20}),
        (4, "r4", {"guard": "refuse"}),
        (5, "r5", {"fallback": "static_suggestions"}),
        (6, "r6", {"error": True}),
        (7, "r7", {"prompt": "just-the-facts"}),  # a new kind
        (8, "r8", {"user": "bob"}),
        (9, "r9", {}),
        (12, "r10", {"ms": 5}),  # window 1: its slowest, released at shutdown
        (13, "r11", {"ms": 1}),
    ]
    for at, request_id, what in stream:
        clock.now = at
        request(tracing, request_id, **what)
    assert tracing.force_flush(5)
    assert tracing.processor.open_traces == 0
    got = exported_by_request(memory)
    reasons = {rid: root.attributes[T.SAMPLING_REASONS] for rid, (root, _) in got.items()}
    assert reasons == {"r1": ("first_user", "first_kind"), "r2": ("slowest",),
                       "r4": ("guard",), "r5": ("fallback",), "r6": ("failed",),
                       "r7": ("first_kind",), "r8": ("first_user",)}
    tracing.shutdown()
    reasons = {rid: root.attributes[T.SAMPLING_REASONS]
               for rid, (root, _) in exported_by_request(memory).items()}
    assert set(reasons) == {"r1", "r2", "r4", "r5", "r6", "r7", "r8", "r10"}
    assert reasons["r10"] == ("slowest",)
    for root, spans in exported_by_request(memory).values():
        assert sorted(s.name for s in spans) == sorted([T.ROOT_SPAN, *T.STAGE_SPANS])
        assert all(s.parent.span_id == root.context.span_id for s in spans if s is not root)
    assert tracing.counters() == {
        ("kept", "first_user"): 2, ("kept", "first_kind"): 1, ("kept", "guard"): 1,
        ("kept", "fallback"): 1, ("kept", "failed"): 1, ("kept", "slowest"): 2,
        ("dropped", "unsampled"): 3, ("exported", "ok"): 8}


def test_a_failed_request_is_kept_and_its_exception_still_raised(gateways):
    memory = InMemorySpanExporter()
    tracing = gateways(policy(slowest_n=0), exporter=memory)
    with tracing.root_span("ok-1", {T.MODEL_VERSION: "3", T.GUARD_ACTION: "none"}), \
            tracing.stage("retrieval"):
        pass  # the first of its kind: kept
    with tracing.root_span("ok-2", {T.MODEL_VERSION: "3", T.GUARD_ACTION: "none"}):
        pass  # nothing special: dropped at rate 0
    with pytest.raises(RuntimeError, match="model down"), \
            tracing.root_span("bad", {T.MODEL_VERSION: "3", T.PROMPT_TEMPLATE: None}):
        raise RuntimeError("model down")
    assert tracing.force_flush(5)
    got = exported_by_request(memory)
    assert set(got) == {"ok-1", "bad"}
    root, _ = got["bad"]
    assert root.attributes[T.SAMPLING_REASONS] == ("failed",)
    assert root.status.status_code is trace_api.StatusCode.ERROR
    # Only the type leaves the process: the message may quote the user's question.
    assert root.status.description == "RuntimeError" and root.events == ()
    assert root.attributes["error.type"] == "RuntimeError"
    assert root.kind is trace_api.SpanKind.SERVER
    assert root.attributes[T.GENAI_PROVIDER] == "plimsoll"
    assert [s.name for s in got["ok-1"][1]] == ["retrieval", T.ROOT_SPAN]


def test_a_root_continuing_a_callers_trace_is_still_this_gateways_root(gateways):
    from opentelemetry import propagate

    memory = InMemorySpanExporter()
    tracing = gateways(policy(), exporter=memory)
    caller = propagate.extract(
        {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
    with tracing.root_span("continued", {T.MODEL_VERSION: "3"}, context=caller), \
            tracing.stage("retrieval"):
        pass
    assert tracing.force_flush(5)
    spans = memory.get_finished_spans()
    assert len(spans) == 2
    root = next(s for s in spans if s.name == T.ROOT_SPAN)
    assert root.parent.is_remote and root.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert root.attributes[T.SAMPLING_REASONS] == ("first_kind",)


def test_a_sampler_bug_never_reaches_the_request(gateways, monkeypatch, caplog):
    tracing = gateways(policy(rate=1.0), exporter=InMemorySpanExporter())

    def broken(_summary):
        raise ValueError("bug")

    monkeypatch.setattr(tracing.sampler, "offer", broken)
    with caplog.at_level(logging.WARNING):
        request(tracing, "unlucky")  # span.end() inside does not raise
    assert tracing.counters() == {("dropped", "internal"): 1}
    assert "could not be sampled" in caplog.text


def test_each_gateway_has_its_own_provider_not_the_global_one(gateways):
    first, second = InMemorySpanExporter(), InMemorySpanExporter()
    a = gateways(policy(rate=1.0), exporter=first)
    b = gateways(policy(rate=1.0), exporter=second)
    request(a, "from-a")
    request(b, "from-b")
    assert a.force_flush(5) and b.force_flush(5)
    assert set(exported_by_request(first)) == {"from-a"}
    assert set(exported_by_request(second)) == {"from-b"}
    assert not isinstance(trace_api.get_tracer_provider(), type(a.provider))


# -- bounded memory ----------------------------------------------------------------------
def test_unfinished_traces_are_evicted_by_count_and_by_age(gateways):
    clock = Clock()
    memory = InMemorySpanExporter()
    seen = []
    tracing = gateways(policy(rate=1.0), exporter=memory, clock=clock, max_open_traces=3,
                       open_trace_ttl_s=60, on_decision=lambda d, r: seen.append((d, r)))
    roots = []
    for i in range(5):  # roots that never end; their children did
        root = tracing.tracer.start_span(T.ROOT_SPAN, attributes={T.REQUEST_ID: f"open-{i}"})
        tracing.tracer.start_span("retrieval",
                                  context=trace_api.set_span_in_context(root)).end()
        roots.append(root)
    assert tracing.processor.open_traces == 3
    assert tracing.counters()[("dropped", "unfinished")] == 2
    clock.now = 61  # the three left have been idle past the TTL
    request(tracing, "fresh")
    assert tracing.processor.open_traces == 0
    assert tracing.counters()[("dropped", "unfinished")] == 5
    assert seen.count(("dropped", "unfinished")) == 5
    roots[0].end()  # its children were evicted: the root alone is still decided, once
    late = tracing.tracer.start_span("guard.output",
                                     context=trace_api.set_span_in_context(roots[0]))
    late.end()  # after its root: dropped, not buffered again
    assert tracing.processor.late_spans == 1 and tracing.processor.open_traces == 0


# -- the export queue never blocks a request ----------------------------------------------
class BlockingExporter(SpanExporter):
    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.spans = []

    def export(self, spans):
        self.entered.set()
        self.release.wait(10)
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self):
        self.release.set()


def test_a_full_export_queue_drops_and_counts_never_blocks(gateways):
    exporter = BlockingExporter()
    seen = []
    tracing = gateways(policy(rate=1.0, slowest_n=0, queue=2), exporter=exporter,
                       on_decision=lambda d, r: seen.append((d, r)))
    request(tracing, "t1")
    assert exporter.entered.wait(5)  # the worker holds t1 in a stuck export
    started = time.perf_counter()
    for i in range(2, 6):
        request(tracing, f"t{i}")
    assert time.perf_counter() - started < 0.5
    assert tracing.counters()[("dropped", "queue_full")] == 2
    assert seen == [("kept", "first_kind"), ("kept", "sampled"), ("kept", "sampled"),
                    ("dropped", "queue_full"), ("dropped", "queue_full")]
    exporter.release.set()
    assert tracing.force_flush(5)
    assert tracing.counters()[("exported", "ok")] == 3


# -- OTLP over HTTP -----------------------------------------------------------------------
class Receiver:
    """A tiny OTLP/HTTP collector on 127.0.0.1 that decodes what it is sent."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        received = self.received = []
        self.paths = []
        paths = self.paths

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                message = ExportTraceServiceRequest()
                message.ParseFromString(body)
                received.append(message)
                paths.append(self.path)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def spans(self):
        for message in self.received:
            for resource_spans in message.resource_spans:
                resource = {a.key: a.value.string_value
                            for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        yield resource, span

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def attribute(span, key):
    for item in span.attributes:
        if item.key == key:
            value = item.value
            kind = value.WhichOneof("value")
            if kind == "array_value":
                return tuple(v.string_value for v in value.array_value.values)
            return getattr(value, kind)
    return None


def test_otlp_receiver_gets_the_kept_spans_and_attributes(gateways):
    receiver = Receiver()
    try:
        tracing = gateways(policy(), environ={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url},
                           service_name="plimsoll-gateway-test")
        assert tracing.exporter_kind == "otlp"
        request(tracing, "otlp-1", user="alice", guard="refuse")
        assert tracing.force_flush(10)
        spans = list(receiver.spans())
        assert receiver.paths == ["/v1/traces"]
        assert sorted(span.name for _, span in spans) == sorted([T.ROOT_SPAN, *T.STAGE_SPANS])
        resource, root = next((r, s) for r, s in spans if s.name == T.ROOT_SPAN)
        assert resource["service.name"] == "plimsoll-gateway-test"
        assert attribute(root, T.REQUEST_ID) == "otlp-1"
        assert attribute(root, T.MODEL_VERSION) == "3"
        assert attribute(root, T.GUARD_ACTION) == "refuse"
        assert attribute(root, T.USER_SEGMENT) == T.user_segment("alice", KEY)
        assert attribute(root, T.SAMPLING_REASONS) == ("guard", "first_user", "first_kind")
        assert all(s.parent_span_id == root.span_id for _, s in spans if s is not root)
        assert tracing.counters()[("exported", "ok")] == 1
    finally:
        receiver.close()


@contextlib.contextmanager
def refusing_endpoint():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now: connection refused
    yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def hanging_endpoint():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held, stop = [], threading.Event()

    def accept():
        server.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(server.accept()[0])  # accepted, never answered

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        server.close()


@pytest.mark.parametrize("endpoint", [refusing_endpoint, hanging_endpoint])
def test_a_collector_that_refuses_or_hangs_never_slows_a_request(gateways, endpoint, caplog):
    with endpoint() as url, caplog.at_level(logging.WARNING):
        tracing = gateways(policy(rate=1.0),
                           environ={"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": url + "/v1/traces"},
                           export_timeout_s=0.3)
        slowest_end = 0.0
        for i in range(3):
            started = time.perf_counter()
            request(tracing, f"lost-{i}")
            slowest_end = max(slowest_end, time.perf_counter() - started)
        assert slowest_end < 0.1
        assert tracing.force_flush(10)
        counters = tracing.counters()
        assert counters[("dropped", "export_failed")] == 3
        assert ("exported", "ok") not in counters
        started = time.perf_counter()
        tracing.shutdown(timeout_s=1)
        assert time.perf_counter() - started < 2
    assert "could not be exported" in caplog.text


# -- MLflow Tracing ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def empty_store(tmp_path_factory):
    """An empty, migrated sqlite tracking store to copy: migrating one takes seconds."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


def fresh_store(empty_store, directory):
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(empty_store, directory / "mlflow.db")
    return f"sqlite:///{directory / 'mlflow.db'}"


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch, empty_store):
    """A tmp sqlite tracking store with a LoggedModel registered as version 1 of "docs"."""
    from mlflow.tracking import MlflowClient

    uri = fresh_store(empty_store, tmp_path)
    # MLflow resolves a models:/ source through the default client (a known gap of its): point
    # that at the same store for this test only.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("models", artifact_location=str(tmp_path / "a"))
    run = client.create_run(experiment_id)
    model = client.create_logged_model(experiment_id, name="docs",
                                       source_run_id=run.info.run_id)
    client.create_registered_model("docs")
    version = client.create_model_version("docs", source=f"models:/{model.model_id}",
                                          run_id=run.info.run_id)
    return uri, client, model.model_id, str(version.version), tmp_path, run.info


def test_mlflow_trace_is_searchable_with_its_tree_tags_and_model_link(gateways, mlflow_store):
    uri, client, model_id, version, tmp_path, run = mlflow_store
    tracing = gateways(policy("mlflow"), tracking_uri=uri, artifact_root=str(tmp_path / "t"))
    started_ns = time.time_ns()
    with tracing.root_span("req-42", {
            T.MODEL_NAME: "docs", T.MODEL_VERSION: version, T.PROMPT_TEMPLATE: "answer-v2",
            T.FLAGS_VARIANT: "pin=off,canary=off", T.INDEX_SNAPSHOT: "snap-1",
            T.ROUTE: "champion", T.GUARD_ACTION: "none",
            T.USER_SEGMENT: tracing.segment("alice")}) as root:
        for name in T.STAGE_SPANS:
            with tracing.stage(name, {"plimsoll.stage": name}):
                time.sleep(0.001)
        root.set_attribute("gen_ai.usage.output_tokens", 17)
    assert tracing.force_flush(30)
    assert tracing.counters()[("exported", "ok")] == 1
    # In the experiment of the run that produced the version, linked to that run: one click
    # from the version page (Source run → Traces) in the MLflow UI.
    (found,) = client.search_traces(locations=[run.experiment_id])
    assert [t.info.trace_id for t in client.search_traces(
        locations=[run.experiment_id], model_id=model_id)] == [found.info.trace_id]
    info = found.info
    assert info.trace_metadata["mlflow.modelId"] == model_id
    assert info.trace_metadata["mlflow.sourceRun"] == run.run_id
    assert info.trace_metadata["mlflow.trace.user"] == T.user_segment("alice", KEY)
    assert info.client_request_id == "req-42"
    assert info.state.value == "OK"
    assert {k: info.tags[k] for k in (T.MODEL_NAME, T.MODEL_VERSION, T.PROMPT_TEMPLATE,
                                     T.FLAGS_VARIANT, T.INDEX_SNAPSHOT, T.SAMPLING_REASONS)} == {
        T.MODEL_NAME: "docs", T.MODEL_VERSION: version, T.PROMPT_TEMPLATE: "answer-v2",
        T.FLAGS_VARIANT: "pin=off,canary=off", T.INDEX_SNAPSHOT: "snap-1",
        T.SAMPLING_REASONS: "first_user,first_kind"}
    assert info.tags["mlflow.traceName"] == T.ROOT_SPAN
    spans = found.data.spans
    assert len(spans) == 6
    (top,) = [s for s in spans if s.parent_id is None]
    assert top.name == T.ROOT_SPAN and top.span_type == "CHAIN"
    children = sorted((s for s in spans if s is not top), key=lambda s: s.start_time_ns)
    assert [s.name for s in children] == list(T.STAGE_SPANS)
    assert all(s.parent_id == top.span_id for s in children)
    assert [s.span_type for s in children] == ["GUARDRAIL", "RETRIEVER", "GUARDRAIL", "TASK",
                                               "GUARDRAIL"]
    assert all(top.start_time_ns <= s.start_time_ns <= s.end_time_ns <= top.end_time_ns
               for s in children)
    assert all(s.end_time_ns - s.start_time_ns >= 1_000_000 for s in children)  # the sleeps
    assert top.start_time_ns >= started_ns
    assert abs(info.execution_duration - (top.end_time_ns - top.start_time_ns) / 1e6) <= 1
    assert top.attributes[T.REQUEST_ID] == "req-42"
    assert top.attributes["gen_ai.usage.output_tokens"] == 17
    assert children[1].attributes["plimsoll.stage"] == "retrieval"
    assert info.token_usage["output_tokens"] == 17


def test_two_gateways_export_to_their_own_mlflow_stores_at_once(gateways, tmp_path,
                                                                empty_store):
    uris = [fresh_store(empty_store, tmp_path / name) for name in ("a", "b")]
    pair = [gateways(policy("mlflow", rate=1.0), tracking_uri=uri,
                     artifact_root=str(tmp_path / "art")) for uri in uris]

    def serve(index):
        for i in range(4):
            request(pair[index], f"{'ab'[index]}-{i}", version=str(index + 1))

    threads = [threading.Thread(target=serve, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(tracing.force_flush(30) for tracing in pair)
    from mlflow.tracking import MlflowClient

    for index, uri in enumerate(uris):
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name("plimsoll-gateway-traces")
        traces = client.search_traces(locations=[experiment.experiment_id])
        assert sorted(t.info.client_request_id for t in traces) == [
            f"{'ab'[index]}-{i}" for i in range(4)]
        assert {t.info.tags[T.MODEL_VERSION] for t in traces} == {str(index + 1)}
        # An unregistered version is written, just not linked to a model.
        assert all("mlflow.modelId" not in t.info.trace_metadata for t in traces)


def test_an_unreachable_mlflow_store_counts_failed_exports(gateways, tmp_path):
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the store's directory should be")
    tracing = gateways(policy("mlflow", rate=1.0),
                       tracking_uri=f"sqlite:///{blocked / 'mlflow.db'}")
    started = time.perf_counter()
    request(tracing, "lost")
    assert time.perf_counter() - started < 0.1
    assert tracing.force_flush(30)
    assert tracing.counters()[("dropped", "export_failed")] == 1


# -- choosing the exporter, and user segments ----------------------------------------------
def test_auto_chooses_otlp_when_an_endpoint_is_set_else_mlflow(gateways):
    auto = policy().tracing
    assert T.choose_exporter(auto, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}) == "otlp"
    assert T.choose_exporter(auto, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c"}) == "otlp"
    assert T.choose_exporter(auto, {"OTEL_EXPORTER_OTLP_ENDPOINT": ""}) == "mlflow"
    assert T.choose_exporter(policy("none").tracing, {"OTEL_EXPORTER_OTLP_ENDPOINT": "x"}) \
        == "none"
    with pytest.raises(T.TracingError) as refused:
        gateways(policy("auto"))  # MLflow, but no tracking URI
    assert refused.value.field == "tracing.exporter" and "MLFLOW_TRACKING_URI" in refused.value.fix
    off = gateways(policy("none"))
    with off.root_span("r") as span:
        assert not span.is_recording()
    assert off.counters() == {} and off.force_flush(1)


def test_user_segments_are_keyed_hashes_never_the_id(caplog):
    first = T.user_segment("alice@example.com", b"k1")
    assert first == T.user_segment("alice@example.com", b"k1")
    assert first != T.user_segment("alice@example.com", b"k2")
    assert len(first) == 16 and int(first, 16) >= 0 and "alice" not in first
    assert T.user_segment(None, b"k1") is None and T.user_segment("", b"k1") is None
    assert T.segment_key({"PLIMSOLL_SEGMENT_KEY": "shared"}) == b"shared"
    T._process_segment_key.cache_clear()
    with caplog.at_level(logging.WARNING, logger="plimsoll.observability.tracing"):
        key = T.segment_key({})
    assert T.segment_key({}) == key and len(key) == 32
    assert "not stable across restarts" in caplog.text
