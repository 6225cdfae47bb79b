"""The gateway (`plimsoll serve`) under load: overhead, throughput, rollback to served, memory.

Publishes the example_faq slice into a temporary PLIMSOLL_HOME, builds a snapshot with the
base encoder, registers two versions of that bundle and promotes v1 then v2 (the ledger holds
both moves), starts `plimsoll serve` in its own process (default watch interval) and asks it
the questions of evalsets/python_docs_ci.jsonl. Measured in one run (issue 14):

1. Gateway overhead: p50/p95 of POST /v1/answer over one keep-alive connection against the
   same answerer called in this process (the gateway's cached model directory, opened with
   open_model_dir), interleaved request by request so machine noise hits both alike.
   Target: p50 over HTTP at most 1.2 times the in-process p50.
2. Throughput at 1, 4 and 16 concurrent clients (a thread and a connection each): requests/s,
   p50, p95 and the p95 beside the policy's latency SLO (informational: the SLO is CPU ms per
   request, this is wall clock under concurrency). Target: no response other than 200.
3. Rollback to served: with two clients asking in a loop, `plimsoll rollback` in a fresh
   process, timed from its exit to the first answer from the previous version; then back to
   v2 through the promoter. Each move waits a random part of the watch interval first.
   Targets: median under 2 s; no failed request during the swaps.
4. Resident memory of the gateway process with one bundle loaded, and with both warm after
   one unmeasured rollback/promote cycle run before any traffic (informational).
5. Instrumentation (issue 15): p50/p95 of the gateway as shipped (metrics, tail-sampled
   traces exported to MLflow, JSON request logs, request features) against a second gateway
   on the same store with them off, interleaved request by request. Target: p50 within 1.1x.

Usage: python benchmarks/serving_speed.py [--requests N] [--seconds S] [--swaps N]
                                          [--quick] [--json PATH]
Exit 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psutil  # noqa: E402

from plimsoll.common.files import read_jsonl  # noqa: E402
from plimsoll.common.hashing import sha256_file  # noqa: E402
from plimsoll.common.provenance import git_commit  # noqa: E402
from plimsoll.common.settings import Settings  # noqa: E402
from plimsoll.datasets.manifests import load_manifest  # noqa: E402
from plimsoll.datasets.slices import build_slice  # noqa: E402
from plimsoll.datasets.store import SliceStore  # noqa: E402
from plimsoll.guard.classifier import MODEL_PATH as CLASSIFIER_PATH  # noqa: E402
from plimsoll.guard.classifier import classifier_digest  # noqa: E402
from plimsoll.release.aliases import SqlAliases  # noqa: E402
from plimsoll.release.ledger import PromotionLedger  # noqa: E402
from plimsoll.release.lineage_record import LineageRecords  # noqa: E402
from plimsoll.release.policy import load_policy  # noqa: E402
from plimsoll.release.promotion import Promoter  # noqa: E402
from plimsoll.release.registry import DIGEST_TAG, Bundle, ModelRegistry, lineage_tags  # noqa: E402
from plimsoll.retrieval.chunking import ChunkingParams  # noqa: E402
from plimsoll.retrieval.encoder import EncoderDirectory  # noqa: E402
from plimsoll.retrieval.snapshot import SnapshotBuilder  # noqa: E402
from plimsoll.serving.bundle_cache import open_model_dir  # noqa: E402
from plimsoll.serving.pyfunc import pyfunc_model  # noqa: E402

OVERHEAD_TARGET, SWAP_TARGET_S, INSTRUMENTATION_TARGET = 1.2, 2.0, 1.1
LEVELS = (1, 4, 16)
WARMUP = 10
SWAP_CLIENTS = 2
IDLE_S = 3.0  # under uvicorn's 5 s keep-alive timeout
BUSY_WARNING = 0.05  # other processes' share of the CPUs past which the report warns
READY_TIMEOUT_S, SERVED_TIMEOUT_S = 180.0, 120.0
PLIMSOLL = Path(sys.executable).parent / "plimsoll"


@dataclass(frozen=True)
class Reply:
    """One answer as a client saw it."""

    status: int  # 0: no HTTP response (the connection failed)
    version: str | None  # provenance.model_version; None for a static fallback
    fallback: str | None
    seconds: float
    done_at: float  # time.perf_counter() when the last byte was read
    server_s: float | None = None  # the body's latency_ms: gateway.answer, inside the server


class GatewayClient:
    """One keep-alive HTTP connection to the gateway, as a client holds it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection: http.client.HTTPConnection | None = None
        self.used_at = 0.0

    def connect(self) -> None:
        """Open the connection now, so its set-up is not in the first answer's time."""
        self.close()
        self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        self.connection.connect()
        self.used_at = time.perf_counter()

    def _fresh(self) -> http.client.HTTPConnection:
        # uvicorn closes a keep-alive connection idle for 5 s; a pooled client would not
        # send on one that old, so neither does this one (that is no failed request).
        if self.connection is None or time.perf_counter() - self.used_at > IDLE_S:
            self.connect()
        return self.connection

    def ask(self, question: str) -> Reply:
        """POST /v1/answer; a broken connection is a reply with status 0, then a new one."""
        payload = json.dumps({"question": question})
        started = time.perf_counter()
        try:
            connection = self._fresh()
            started = time.perf_counter()
            connection.request("POST", "/v1/answer", body=payload,
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException):
            done = time.perf_counter()
            self.close()
            return Reply(0, None, None, done - started, done)
        done = self.used_at = time.perf_counter()
        version = fallback = server_s = None
        if response.status == 200:
            body = json.loads(raw)
            version = body.get("provenance", {}).get("model_version")
            fallback = body.get("fallback")
            server_s = body.get("latency_ms", 0) / 1000
        return Reply(response.status, version, fallback, done - started, done, server_s)

    def get(self, path: str) -> tuple[int, dict]:
        """(status, JSON body) of a GET."""
        try:
            connection = self._fresh()
            connection.request("GET", path)
            response = connection.getresponse()
            body = json.loads(response.read() or b"{}")
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        self.used_at = time.perf_counter()
        return response.status, body

    def close(self) -> None:
        """Drop the connection."""
        if self.connection is not None:
            self.connection.close()
            self.connection = None


@dataclass
class Traffic:
    """Clients asking in a loop in background threads; replies in the order they arrived."""

    port: int
    questions: list[str]
    clients: int = SWAP_CLIENTS
    replies: list[Reply] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Traffic:
        for number in range(self.clients):
            thread = threading.Thread(target=self._loop, args=(number,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _loop(self, offset: int) -> None:
        client = GatewayClient(self.port)
        asked = offset * 7
        while not self._stop.is_set():
            self.replies.append(client.ask(self.questions[asked % len(self.questions)]))
            asked += 1
        client.close()

    def first_served(self, version: str, since: int, timeout: float) -> Reply:
        """The first good answer from `version` among the replies after index `since`."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            for reply in self.replies[since:]:
                if reply.status == 200 and reply.version == version:
                    return reply
            time.sleep(0.005)
        raise SystemExit(f"serving_speed: version {version} was not served within "
                         f"{timeout:.0f}s of the alias move")


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (share in 0..100)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share / 100 * len(ordered)) - 1)]


def free_port() -> int:
    """A port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def build_home(settings: Settings) -> tuple[Promoter, list[str], str]:
    """Two registered versions of one bundle, champion moved to v1 then v2; the git commit."""
    layout = settings.layout
    store = SliceStore(layout.dvc_workspace, str(layout.dvc_remote))
    published = store.publish(build_slice(load_manifest(
        REPO / "data_manifests" / "example_faq.yaml")))
    encoder = EncoderDirectory.open(None)
    snapshot = SnapshotBuilder(layout.index_snapshots, layout.embedding_cache, encoder,
                               ChunkingParams()).build([published])
    layout.mlflow.mkdir(parents=True, exist_ok=True)
    records = LineageRecords(settings.ledger_url)
    registry = ModelRegistry(settings.tracking_uri, artifact_root=str(layout.mlflow / "artifacts"),
                             records=records)
    guard_policy = REPO / "policies" / "guard.yaml"
    bundle = Bundle(encoder.path, snapshot.path, REPO / "prompts" / "answer.md",
                    REPO / "prompts" / "abstain.md", guard_policy=guard_policy,
                    guard_classifier=CLASSIFIER_PATH)
    commit = git_commit(REPO)
    promoter = Promoter(None, PromotionLedger(settings.ledger_url), None, settings.model_name,
                        aliases=SqlAliases(settings.tracking_uri), records=records)
    experiment = registry.ensure_reachable()
    versions = []
    for key in ("serving-bench-a", "serving-bench-b"):
        with registry.training_run(experiment, key, {}) as run:
            version = registry.register(settings.model_name, bundle, lineage_tags({
                "bundle_key": key, "eval_scores": {}, "trained_by": "benchmark",
                "git_commit": commit, "mlflow_run_id": run.run_id,
                "guard_policy_digest": sha256_file(guard_policy),
                "guard_classifier_digest": classifier_digest(CLASSIFIER_PATH)}),
                run.run_id, pyfunc_model())
        versions.append(version)
        promote(promoter, version, "setup")
    return promoter, versions, commit


def promote(promoter: Promoter, version: str, reason: str) -> None:
    """Move champion the way an approval does: a ledger intent, the alias, done."""
    digest = promoter.aliases.version_tags(promoter.model, version).get(DIGEST_TAG, "")
    promoter._move_champion(version, action="promote", actor="benchmark",
                            reason=f"benchmark: {reason}", digest=digest)


def start_gateway(port: int, env: dict[str, str], log: Path, *extra: str) -> subprocess.Popen:
    """`plimsoll serve` as on-call runs it, in its own process, default watch interval."""
    return subprocess.Popen([str(PLIMSOLL), "serve", "--port", str(port), *extra], cwd=REPO,
                            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def bare_policy(folder: Path) -> Path:
    """The observability policy with request features off (metrics and traces are flags)."""
    import yaml

    policy = yaml.safe_load((REPO / "policies" / "observability.yaml").read_text())
    policy["features"]["enabled"] = False
    path = folder / "observability-bare.yaml"
    path.write_text(yaml.safe_dump(policy))
    return path


def measure_instrumentation(on: GatewayClient, off: GatewayClient, questions: list[str],
                            count: int) -> dict[str, object]:
    """The same questions to an instrumented gateway and a bare one, interleaved.

    `on` is plimsoll serve as shipped: /metrics, traces tail-sampled and exported to MLflow,
    JSON request logs, request features recorded; `off` runs with --no-metrics, --traces
    none and features off. Each request goes to both, in alternating order.
    """
    for question in questions[:WARMUP]:
        on.ask(question)
        off.ask(question)
    with_obs, without, not_ok = [], [], 0
    for i in range(count):
        question = questions[i % len(questions)]
        pair = ((on, with_obs), (off, without)) if i % 2 == 0 else ((off, without),
                                                                    (on, with_obs))
        for client, into in pair:
            reply = client.ask(question)
            not_ok += reply.status != 200
            into.append(reply.seconds * 1000)
    p50_on, p50_off = statistics.median(with_obs), statistics.median(without)
    p95_on, p95_off = percentile(with_obs, 95), percentile(without, 95)
    _, status = on.get("/v1/model")
    return {"requests_each": count, "on_p50_ms": round(p50_on, 2),
            "on_p95_ms": round(p95_on, 2), "off_p50_ms": round(p50_off, 2),
            "off_p95_ms": round(p95_off, 2), "ratio_p50": round(p50_on / p50_off, 3),
            "ratio_p95": round(p95_on / p95_off, 3), "non_200": not_ok,
            "counters": status.get("counters")}


def wait_ready(client: GatewayClient, process: subprocess.Popen, log: Path) -> float:
    """Seconds until GET /readyz is 200; exits with the gateway's log if it never is."""
    started = time.perf_counter()
    last: object = None
    while time.perf_counter() - started < READY_TIMEOUT_S:
        if process.poll() is not None:
            raise SystemExit(f"serving_speed: plimsoll serve exited {process.returncode}:\n"
                             + log.read_text()[-3000:])
        try:
            status, body = client.get("/readyz")
            if status == 200:
                return time.perf_counter() - started
            last = body
        except (OSError, http.client.HTTPException) as exc:
            last = exc
        time.sleep(0.2)
    raise SystemExit(f"serving_speed: not ready after {READY_TIMEOUT_S:.0f}s ({last}):\n"
                     + log.read_text()[-3000:])


def stop_gateway(process: subprocess.Popen) -> None:
    """Terminate the gateway, then kill it if it has not exited in 20 s."""
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=20)


def resident_mb(process: subprocess.Popen) -> dict[str, object]:
    """The gateway process's RSS (it starts no children; any it has are counted apart)."""
    gateway = psutil.Process(process.pid)
    children = gateway.children(recursive=True)
    return {"rss_mb": round(gateway.memory_info().rss / 2**20, 1), "children": len(children),
            "children_rss_mb": round(sum(c.memory_info().rss for c in children) / 2**20, 1)}


def cpu_snapshot(gateway: psutil.Process) -> tuple[float, float, float]:
    """(wall clock, CPU seconds the machine was busy, CPU seconds of ours and the gateway)."""
    machine = psutil.cpu_times()
    ours = psutil.Process().cpu_times()
    theirs = gateway.cpu_times()
    return (time.perf_counter(),
            machine.user + machine.nice + machine.system + machine.irq + machine.softirq,
            ours.user + ours.system + ours.children_user + ours.children_system
            + theirs.user + theirs.system)


def others_share(before: tuple[float, float, float], after: tuple[float, float, float]) -> float:
    """The share of all CPUs that other processes used between two snapshots."""
    wall, busy, ours = (b - a for a, b in zip(before, after, strict=True))
    return max(0.0, (busy - ours) / (wall * (os.cpu_count() or 1)))


SERVE_TORCH_THREADS = 1  # plimsoll serve's default --torch-threads


def measure_overhead(client: GatewayClient, answerer, questions: list[str],
                     count: int) -> dict[str, object]:
    """HTTP against in-process latency on the same questions, interleaved request by request."""
    for question in questions[:WARMUP]:
        client.ask(question)
        answerer.answer(question)
    over_http, in_server, in_process, not_ok = [], [], [], 0

    def by_http(question: str) -> None:
        nonlocal not_ok
        reply = client.ask(question)
        over_http.append(reply.seconds)
        in_server.append(reply.server_s or 0.0)
        not_ok += reply.status != 200

    def by_call(question: str) -> None:
        started = time.perf_counter()
        answerer.answer(question)
        in_process.append(time.perf_counter() - started)

    for asked in range(count):
        question = questions[asked % len(questions)]
        # Which goes first flips each request and each pass over the questions.
        first, second = (by_http, by_call) if (asked + asked // len(questions)) % 2 == 0 \
            else (by_call, by_http)
        first(question)
        second(question)
    summary = {"requests_each": count, "non_200": not_ok}
    for name, values in (("http", over_http), ("in_server", in_server),
                         ("in_process", in_process)):
        summary[f"{name}_p50_ms"] = round(percentile(values, 50) * 1000, 2)
        summary[f"{name}_p95_ms"] = round(percentile(values, 95) * 1000, 2)
    summary["ratio_p50"] = round(summary["http_p50_ms"] / summary["in_process_p50_ms"], 3)
    summary["ratio_p95"] = round(summary["http_p95_ms"] / summary["in_process_p95_ms"], 3)
    return summary


def in_process_default_threads(answerer, questions: list[str], count: int) -> dict:
    """The answerer alone at the process's default torch threads (informational)."""
    took = []
    for asked in range(count):
        started = time.perf_counter()
        answerer.answer(questions[asked % len(questions)])
        took.append(time.perf_counter() - started)
    return {"in_process_default_threads_p50_ms": round(percentile(took, 50) * 1000, 2),
            "in_process_default_threads_p95_ms": round(percentile(took, 95) * 1000, 2)}


def measure_throughput(port: int, questions: list[str], clients: int,
                       seconds: float) -> dict[str, object]:
    """Requests/s and latency with `clients` threads asking as fast as answers come back."""
    replies: list[Reply] = []
    clock: dict[str, float] = {}
    barrier = threading.Barrier(clients, action=lambda: clock.update(start=time.perf_counter()))

    def client_loop(offset: int) -> None:
        client = GatewayClient(port)
        client.connect()
        barrier.wait()
        asked = offset * 5
        while time.perf_counter() < clock["start"] + seconds:
            replies.append(client.ask(questions[asked % len(questions)]))
            asked += 1
        client.close()

    threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = max(r.done_at for r in replies) - clock["start"]
    latencies = [r.seconds for r in replies if r.status == 200]
    return {"clients": clients, "requests": len(replies), "seconds": round(elapsed, 2),
            "requests_per_s": round(len(replies) / elapsed, 1),
            "p50_ms": round(percentile(latencies, 50) * 1000, 1) if latencies else None,
            "p95_ms": round(percentile(latencies, 95) * 1000, 1) if latencies else None,
            "non_200": sum(r.status != 200 for r in replies),
            "fallbacks": sum(r.status == 200 and r.fallback is not None for r in replies)}


def rollback_cli(env: dict[str, str]) -> float:
    """`plimsoll rollback` in a fresh process, as on-call runs it; its wall time."""
    started = time.perf_counter()
    done = subprocess.run([str(PLIMSOLL), "rollback", "--reason", "benchmark"], cwd=REPO,
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"serving_speed: plimsoll rollback exited {done.returncode}:\n"
                         f"{done.stdout}{done.stderr}")
    return time.perf_counter() - started


def serving(client: GatewayClient, version: str) -> None:
    """Wait until GET /v1/model says `version` is served."""
    deadline = time.perf_counter() + SERVED_TIMEOUT_S
    while time.perf_counter() < deadline:
        _, status = client.get("/v1/model")
        if (status.get("serving") or {}).get("version") == version:
            return
        time.sleep(0.01)
    raise SystemExit(f"serving_speed: version {version} was not served within "
                     f"{SERVED_TIMEOUT_S:.0f}s of the alias move")


def warm_previous(client: GatewayClient, promoter: Promoter, versions: list[str],
                  env: dict[str, str]) -> float:
    """The unmeasured cycle: roll back (v1 loads cold), promote v2 again; seconds to v1 served."""
    rollback_cli(env)
    returned = time.perf_counter()
    serving(client, versions[0])
    cold_s = time.perf_counter() - returned
    promote(promoter, versions[1], "back to the newer version")
    serving(client, versions[1])
    _, status = client.get("/v1/model")
    warm = sorted(b["version"] for b in status["warm"])
    if warm != sorted(versions):
        raise SystemExit(f"serving_speed: expected both versions warm, got {warm}")
    return cold_s


def measure_swaps(traffic: Traffic, promoter: Promoter, versions: list[str],
                  env: dict[str, str], swaps: int, watch_s: float) -> dict[str, object]:
    """Rollback (CLI) then promote back, `swaps` times; seconds from each move to served."""
    previous, current = versions
    to_served, cli_s, back_s = [], [], []
    # Each move waits a random part of the watch interval first: a move made just after the
    # gateway swapped would otherwise always land just after a tick, and wait a whole interval.
    dephase = random.Random(14)
    for _ in range(swaps):
        time.sleep(dephase.uniform(0, watch_s))
        since = len(traffic.replies)
        cli_s.append(rollback_cli(env))
        returned = time.perf_counter()
        # Negative when the gateway swapped before the CLI process had exited: the alias
        # moves part-way through the command, before the ledger entry is completed.
        to_served.append(traffic.first_served(previous, since, SERVED_TIMEOUT_S).done_at
                         - returned)
        time.sleep(dephase.uniform(0, watch_s))
        since = len(traffic.replies)
        moved = time.perf_counter()
        promote(promoter, current, "back to the newer version")
        back_s.append(traffic.first_served(current, since, SERVED_TIMEOUT_S).done_at - moved)
    # Served before the command returned counts as 0 s: on-call waits for nothing then.
    waited = [max(0.0, s) for s in to_served]
    return {"rollback_to_served_s": [round(s, 3) for s in to_served],
            "served_before_exit": sum(s <= 0 for s in to_served),
            "best_s": round(min(waited), 3), "median_s": round(statistics.median(waited), 3),
            "worst_s": round(max(waited), 3),
            "rollback_cli_s": [round(s, 3) for s in cli_s],
            "cli_start_to_served_s": [round(c + s, 3) for c, s in zip(cli_s, to_served,
                                                                      strict=True)],
            "promote_to_served_s": [round(s, 3) for s in back_s]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300,
                        help="overhead: requests over HTTP and calls in process, each "
                        "(default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="throughput: seconds per concurrency level (default: %(default)s)")
    parser.add_argument("--swaps", type=int, default=5,
                        help="measured rollback/promote cycles (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 30 requests, 2 s per level, 2 swaps")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the summary as JSON here")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.seconds, args.swaps = 30, 2.0, 2
    begun = time.perf_counter()
    questions = [row["question"] for _, row in
                 read_jsonl(REPO / "evalsets" / "python_docs_ci.jsonl")]
    slo_ms = float(load_policy(REPO / "policies" / "slos.yaml").maximum["latency_p95_cpu_ms"])
    with tempfile.TemporaryDirectory(prefix="plimsoll-serving-bench-") as tmp:
        # One environment for this process and the CLI processes: this home, no other store.
        os.environ["PLIMSOLL_HOME"] = str(Path(tmp) / "home")
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        os.environ.pop("PLIMSOLL_LEDGER_URL", None)
        env = dict(os.environ)
        os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"  # here only: quiet output
        settings = Settings.from_env(env)
        promoter, versions, commit = build_home(settings)
        setup_s = time.perf_counter() - begun
        log = Path(tmp) / "serve.log"
        port = free_port()
        process = start_gateway(port, env, log)
        client = GatewayClient(port)
        try:
            ready_s = wait_ready(client, process, log)
            _, status = client.get("/v1/model")
            served = status["serving"]
            if served["version"] != versions[1] or len(status["warm"]) != 1:
                raise SystemExit(f"serving_speed: expected v{versions[1]} alone warm, got "
                                 f"{served['version']} with {status['warm']}")
            memory_one = resident_mb(process)
            # Before any traffic, so the second bundle's memory is not hidden in what the
            # allocator kept from serving (the traffic below grows it by 70 to 120 MB).
            cold_s = warm_previous(client, promoter, versions, env)
            memory_two = resident_mb(process)
            bundle = open_model_dir(settings.home / "serving" / "bundles" / settings.model_name
                                    / f"v{versions[1]}")
            gateway = psutil.Process(process.pid)
            marks = [cpu_snapshot(gateway)]
            import torch

            # The anchor runs as the gateway does (plimsoll serve --torch-threads, default
            # 1): the ratio is then what HTTP and the gateway add, not a thread-count choice.
            # The answerer at this process's default thread count is printed beside it.
            default_threads = torch.get_num_threads()
            torch.set_num_threads(SERVE_TORCH_THREADS)
            overhead = measure_overhead(client, bundle.answerer("answer"), questions,
                                        args.requests)
            torch.set_num_threads(default_threads)
            overhead.update(in_process_default_threads(bundle.answerer("answer"), questions,
                                                       min(args.requests, 100)),
                            default_threads=default_threads)
            marks.append(cpu_snapshot(gateway))
            throughput = [measure_throughput(port, questions, clients, args.seconds)
                          for clients in LEVELS]
            marks.append(cpu_snapshot(gateway))
            with Traffic(port, questions) as traffic:
                swaps = measure_swaps(traffic, promoter, versions, env, args.swaps,
                                      float(status["watch_interval_s"]))
            marks.append(cpu_snapshot(gateway))
            # Other work on the machine skews this process and the gateway unequally (torch's
            # OpenMP threads wait differently in each), so the report says how much there was.
            busy = {phase: round(others_share(a, b), 3) for phase, a, b in zip(
                ("overhead", "throughput", "rollback"), marks[:-1], marks[1:], strict=True)}
            swaps.update(requests=len(traffic.replies),
                         failed=sum(r.status != 200 for r in traffic.replies),
                         fallbacks=sum(r.status == 200 and r.fallback is not None
                                       for r in traffic.replies),
                         cold_rollback_to_served_s=round(cold_s, 3))
            memory_end = resident_mb(process)
            # 5. What observing costs: the same gateway with metrics, traces and features
            # off, started beside it on the same store (the bundle is already cached).
            bare_log = Path(tmp) / "serve-bare.log"
            bare_port = free_port()
            bare = start_gateway(bare_port, env, bare_log, "--no-metrics", "--traces", "none",
                                 "--log-level", "warning",
                                 "--observability", str(bare_policy(Path(tmp))))
            bare_client = GatewayClient(bare_port)
            try:
                wait_ready(bare_client, bare, bare_log)
                instrumentation = measure_instrumentation(client, bare_client, questions,
                                                          args.requests)
            finally:
                bare_client.close()
                stop_gateway(bare)
            _, status = client.get("/v1/model")
        finally:
            client.close()
            stop_gateway(process)
    total_s = time.perf_counter() - begun
    return report(args, settings, versions, commit, overhead, throughput, swaps, status,
                  {"ready": memory_one, "both_warm": memory_two, "after_traffic": memory_end},
                  slo_ms,
                  {"setup_s": round(setup_s, 1), "ready_s": round(ready_s, 1),
                   "total_s": round(total_s, 1)}, busy, instrumentation)


def report(args, settings: Settings, versions: list[str], commit: str, overhead: dict,
           throughput: list[dict], swaps: dict, status: dict, memory: dict, slo_ms: float,
           times: dict, busy: dict[str, float], instrumentation: dict) -> int:
    """Print the ratios, write the JSON summary, and say whether every target was met."""
    swap_ratio = swaps["median_s"] / SWAP_TARGET_S
    non_200 = sum(level["non_200"] for level in throughput)
    targets = {
        "overhead_p50_ratio": (overhead["ratio_p50"], f"<= {OVERHEAD_TARGET}",
                               overhead["ratio_p50"] <= OVERHEAD_TARGET),
        "throughput_non_200": (non_200, "0", non_200 == 0),
        "rollback_median_ratio": (round(swap_ratio, 3), "< 1", swap_ratio < 1),
        "swap_failed_requests": (swaps["failed"], "0", swaps["failed"] == 0),
        "instrumentation_p50_ratio": (instrumentation["ratio_p50"],
                                      f"<= {INSTRUMENTATION_TARGET}",
                                      instrumentation["ratio_p50"] <= INSTRUMENTATION_TARGET),
    }
    two_over_one = memory["both_warm"]["rss_mb"] / memory["ready"]["rss_mb"]
    print(f"gateway: {settings.model_name} v{versions[0]} and v{versions[1]} (git {commit[:12]}),"
          f" watch interval {status['watch_interval_s']}s; setup {times['setup_s']}s, ready in "
          f"{times['ready_s']}s, whole run {times['total_s']}s")
    print(f"machine: {os.cpu_count()} CPUs; other processes used "
          + ", ".join(f"{share:.0%} during the {phase}" for phase, share in busy.items())
          + " phase")
    if max(busy.values()) > BUSY_WARNING:
        print("  WARNING: the machine was not quiet; latencies and their ratios are not "
              "trustworthy: run again on a quiet machine")
    print(f"1. overhead ({overhead['requests_each']} requests each, interleaved, after "
          f"{WARMUP} warm-up):")
    print(f"  POST /v1/answer over HTTP (keep-alive): p50 {overhead['http_p50_ms']:.2f} ms, "
          f"p95 {overhead['http_p95_ms']:.2f} ms")
    print(f"  of which gateway.answer (body latency_ms): p50 {overhead['in_server_p50_ms']:.2f} ms,"
          f" p95 {overhead['in_server_p95_ms']:.2f} ms")
    print(f"  answerer.answer in this process:        p50 {overhead['in_process_p50_ms']:.2f} ms,"
          f" p95 {overhead['in_process_p95_ms']:.2f} ms")
    print(f"  (in-process on {SERVE_TORCH_THREADS} torch thread, as plimsoll serve answers; at "
          f"this process's default {overhead['default_threads']} threads: p50 "
          f"{overhead['in_process_default_threads_p50_ms']:.2f} ms, p95 "
          f"{overhead['in_process_default_threads_p95_ms']:.2f} ms, informational)")
    print(f"  RATIO p50 http / in-process = {overhead['ratio_p50']:.2f}   (target <= "
          f"{OVERHEAD_TARGET})")
    print(f"  RATIO p95 http / in-process = {overhead['ratio_p95']:.2f}   (informational)")
    print(f"2. throughput ({args.seconds:g} s per level; p95 is wall clock under concurrency, "
          f"the SLO {slo_ms:g} ms is CPU ms per request: informational):")
    for level in throughput:
        p95 = level["p95_ms"]
        print(f"  {level['clients']:>2} clients: {level['requests_per_s']:7.1f} req/s, "
              f"p50 {level['p50_ms']} ms, p95 {p95} ms, non-200 {level['non_200']}, "
              f"fallbacks {level['fallbacks']} ({level['requests']} requests)")
        if p95 is not None:
            print(f"  RATIO p95 / SLO at {level['clients']} clients = {p95 / slo_ms:.2f}   "
                  "(informational)")
    print(f"  RATIO non-200 responses = {non_200}   (target 0)")
    print(f"3. rollback to served ({len(swaps['rollback_to_served_s'])} swaps, "
          f"{SWAP_CLIENTS} clients asking; from `plimsoll rollback` exiting to the first answer "
          "from the previous version):")
    print(f"  best {swaps['best_s']:.3f}s, median {swaps['median_s']:.3f}s, worst "
          f"{swaps['worst_s']:.3f}s; served before the command returned in "
          f"{swaps['served_before_exit']} (counted as 0 s; each, signed: "
          f"{swaps['rollback_to_served_s']})")
    print(f"  `plimsoll rollback` process itself: median "
          f"{statistics.median(swaps['rollback_cli_s']):.2f}s; from its start to served: median "
          f"{statistics.median(swaps['cli_start_to_served_s']):.2f}s; promote back (in "
          f"process) to served: median {statistics.median(swaps['promote_to_served_s']):.3f}s")
    print(f"  unmeasured first rollback, no traffic (v{versions[0]} loaded cold): "
          f"{swaps['cold_rollback_to_served_s']:.2f}s to served")
    print(f"  RATIO median / {SWAP_TARGET_S:g} s target = {swap_ratio:.2f}   (target < 1)")
    print(f"  RATIO failed requests during swaps = {swaps['failed']}   (target 0; of "
          f"{swaps['requests']} requests, {swaps['fallbacks']} fallback answers)")
    print("4. gateway resident memory (RSS of the process; children: "
          f"{memory['both_warm']['children']}):")
    print(f"  ready, one bundle: {memory['ready']['rss_mb']:.0f} MB; both versions warm (before "
          f"any traffic): {memory['both_warm']['rss_mb']:.0f} MB; after all the traffic above: "
          f"{memory['after_traffic']['rss_mb']:.0f} MB")
    print(f"  RATIO both warm / one bundle = {two_over_one:.2f}   (informational)")
    i = instrumentation
    print(f"5. instrumentation ({i['requests_each']} requests each, interleaved): metrics, "
          "tail-sampled traces to MLflow, JSON request logs and request features on, against "
          "the same gateway with them off")
    print(f"  on:  p50 {i['on_p50_ms']:.2f} ms, p95 {i['on_p95_ms']:.2f} ms;  off: p50 "
          f"{i['off_p50_ms']:.2f} ms, p95 {i['off_p95_ms']:.2f} ms; non-200 {i['non_200']}")
    print(f"  RATIO p50 on / off = {i['ratio_p50']:.2f}   (target <= {INSTRUMENTATION_TARGET})")
    print(f"  RATIO p95 on / off = {i['ratio_p95']:.2f}   (informational)")
    met = all(ok for _, _, ok in targets.values())
    if args.json:
        args.json.write_text(json.dumps({
            "model": settings.model_name, "versions": versions, "git_commit": commit,
            "options": {"requests": args.requests, "seconds": args.seconds,
                        "swaps": args.swaps, "quick": args.quick},
            "times": times, "other_processes_cpu_share": busy,
            "watch_interval_s": status["watch_interval_s"],
            "overhead": overhead, "throughput": throughput, "slo_latency_p95_cpu_ms": slo_ms,
            "rollback": swaps, "instrumentation": instrumentation, "memory": memory,
            "memory_ratio_two_over_one": round(two_over_one, 3),
            "gateway_counters": status.get("counters"),
            "targets": {name: {"value": value, "target": target, "met": ok}
                        for name, (value, target, ok) in targets.items()},
            "all_targets_met": met}, indent=2) + "\n", encoding="utf-8")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
