"""`plimsoll serve`: the HTTP gateway over the model the `champion` alias names."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from plimsoll.cli.options import TRACKING_URI_HELP
from plimsoll.common.errors import PlimsollError
from plimsoll.common.settings import Settings

HELP = "serve answers over HTTP from the champion (hot swap, fallbacks, flags, shadow)"
DESCRIPTION = """\
Serve grounded answers over HTTP from a model reference, by default the version the
`champion` alias names. The gateway follows the alias: when it moves (a promotion, or
`plimsoll rollback`), the new version is loaded and warmed in the background and then
swapped in; requests in flight finish on the version they started with, and the previous
champion stays warm so a rollback is a pointer swap.

Endpoints:
  POST /v1/answer  {"question": "...", "user": "...", "session": "..."}
                   → answer, citations, guard, fallback, request_id, latency_ms, provenance
  GET  /healthz    the process is up        GET /readyz   a bundle answered a probe (503 until)
  GET  /v1/model   what is served, since when, what is warm, flags, errors
  GET  /metrics    the golden signals (Prometheus text format)
  POST /v1/hooks/mlflow   MLflow alias webhooks (HMAC-checked; $PLIMSOLL_WEBHOOK_SECRET)

Each answer is counted in /metrics, logged as one JSON line with its request id, model
version, prompt template, index snapshot and anonymised user segment, traced (tail-sampled:
the slowest, the first of their kind, guard-triggered, failed and fallback requests, and a
share of the rest; MLflow Tracing locally, OTLP in prod) and its features (never its text)
recorded for the drift checks (policies/observability.yaml).

Fallbacks come from policies/fallbacks.yaml; flags (canary, pin, answer_mode,
strict_safety, shadow) from `plimsoll flags`, in the same store as the promotion ledger.
With nothing to serve yet the gateway still starts, answers with the static suggestions,
and /readyz says why.

examples:
  plimsoll serve
  plimsoll serve --model models:/plimsoll-docs-assistant/3 --port 9000
  curl -s localhost:8080/v1/answer -H 'content-type: application/json' \\
       -d '{"question": "How do I split a string?"}'
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `plimsoll serve`."""
    parser.add_argument("--model", default=None,
                        help="models:/NAME@ALIAS (followed as it moves), models:/NAME/N, or a "
                        "downloaded model directory (default: models:/<model>@champion)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: %(default)s; 0.0.0.0 in a pod)")
    parser.add_argument("--port", type=_port, default=8080, help="default: %(default)s")
    parser.add_argument("--watch-interval", type=_interval, default=1.0, metavar="SECONDS",
                        help="how often the alias and flags are read (default: %(default)s)")
    parser.add_argument("--fallbacks", type=Path, default=None,
                        help="fallback policy (default: $PLIMSOLL_FALLBACKS, else the project's "
                        "policies/fallbacks.yaml)")
    parser.add_argument("--ledger-url", default=None,
                        help="Plimsoll's SQL store: flags, shadow pairs, slice checks "
                        "(default: $PLIMSOLL_LEDGER_URL, else the home's ledger)")
    parser.add_argument("--tracking-uri", default=None, help=TRACKING_URI_HELP)
    parser.add_argument("--torch-threads", type=_threads, default=1, metavar="N",
                        help="torch threads per answer (default: %(default)s). Answers run "
                        "in parallel on the gateway's workers; one thread each keeps a busy "
                        "core from stalling the others, as the eval's latency gate measures")
    parser.add_argument("--observability", type=Path, default=None, metavar="PATH",
                        help="metrics, tracing, sampling and drift policy (default: "
                        "$PLIMSOLL_OBSERVABILITY, else policies/observability.yaml)")
    parser.add_argument("--traces", choices=["policy", "auto", "mlflow", "otlp", "none"],
                        default="policy", help="where kept traces go: MLflow Tracing in the "
                        "tracking store, OTLP/HTTP to $OTEL_EXPORTER_OTLP_ENDPOINT, or none "
                        "(default: the policy's tracing.exporter, auto: OTLP when that "
                        "variable is set, else MLflow)")
    parser.add_argument("--no-metrics", action="store_true",
                        help="do not serve GET /metrics (the golden signals)")
    parser.add_argument("--log-format", choices=["json", "text"], default="json",
                        help="JSON lines with the request's tags (default), or plain text")
    parser.add_argument("--log-level", default="info",
                        choices=["critical", "error", "warning", "info", "debug"])


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"'{text}' is not a port (1 to 65535)")
    return int(text)


def _threads(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"'{text}' is not a thread count (1 to 64)")
    return int(text)


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds") from None
    if not 0.1 <= value <= 60:
        raise argparse.ArgumentTypeError("use 0.1 to 60 seconds (replicas must see a move "
                                         "within seconds)")
    return value


def build_gateway(args: argparse.Namespace, settings: Settings):
    """The Gateway and its FastAPI app from the command's arguments and the settings."""
    import logging

    from plimsoll.guard import GuardPolicy, load_guard_policy
    from plimsoll.serving.api import create_app
    from plimsoll.serving.fallbacks import load_fallback_policy
    from plimsoll.serving.gateway import Gateway, ModelReference

    log = logging.getLogger("plimsoll.serving")
    reference = ModelReference.parse(args.model or f"models:/{settings.model_name}@champion")
    fallbacks = load_fallback_policy(args.fallbacks or settings.fallbacks)
    guard_policy = (load_guard_policy(settings.guard_policy) if settings.guard_policy.is_file()
                    else GuardPolicy())
    store_url = args.ledger_url or settings.ledger_url
    flags = shadow = checks = None
    try:
        from plimsoll.serving.flags import FlagRouter

        flags = FlagRouter(store_url, poll_s=min(args.watch_interval, 2.0))
    except PlimsollError as exc:
        log.warning("flags are off: %s", exc)
    try:
        from plimsoll.serving.shadow import ShadowStore

        shadow = ShadowStore(store_url)
    except PlimsollError as exc:
        log.warning("shadow traffic is not recorded: %s", exc)
    try:
        from plimsoll.datasets.check_history import SliceCheckHistory

        checks = SliceCheckHistory(store_url, create=False)
    except (PlimsollError, ImportError) as exc:
        log.info("slice check results are not read (%s)", exc)
    observer = build_observer(args, settings, reference.model_name, store_url)
    gateway = Gateway(reference, tracking_uri=settings.tracking_uri, fallbacks=fallbacks,
                      cache_root=settings.home / "serving" / "bundles",
                      manifests=settings.manifests, flags=flags, shadow_store=shadow,
                      check_history=checks, watch_s=args.watch_interval, observer=observer)
    app = create_app(gateway, max_input_chars=guard_policy.max_input_chars,
                     webhook_secret=os.environ.get("PLIMSOLL_WEBHOOK_SECRET") or None)
    return gateway, app


def build_observer(args: argparse.Namespace, settings: Settings, model_name: str,
                   store_url: str):
    """Metrics, tracing and drift features as the observability policy and flags say."""
    import logging

    from plimsoll.guard.findings import OWASP
    from plimsoll.observability.metrics import GatewayMetrics
    from plimsoll.observability.observer import GatewayObserver
    from plimsoll.observability.policy import load_observability_policy
    from plimsoll.release.policy import load_policy

    log = logging.getLogger("plimsoll.serving")
    slo = load_policy(settings.policy).serving
    policy = load_observability_policy(getattr(args, "observability", None)
                                       or settings.observability,
                                       latency_threshold_ms=slo.latency.threshold_ms)
    metrics = None if getattr(args, "no_metrics", False) else GatewayMetrics(
        policy.metrics, price_per_cpu_second=settings.cost_per_cpu_second,
        model_name=model_name, categories=tuple(OWASP))
    exporter = getattr(args, "traces", "policy")
    if exporter != "policy":
        policy = policy.model_copy(update={"tracing": policy.tracing.model_copy(
            update={"exporter": exporter})})
    tracing = None
    if policy.tracing.exporter != "none":
        from plimsoll.observability.tracing import Tracing

        # The embedded store keeps artifacts beside its database, as the profiles do.
        artifacts = str(settings.home / "mlflow" / "artifacts") \
            if settings.tracking_uri.startswith("sqlite:") else None
        tracing = Tracing(policy, tracking_uri=settings.tracking_uri, artifact_root=artifacts,
                          on_decision=metrics.count_trace if metrics else None)
        log.info("traces: %s (tail-sampled: the %d slowest of each %gs, first of their kind, "
                 "guard-triggered, failed and fallback requests, %g of the rest)",
                 tracing.exporter_kind, policy.sampling.slowest_n, policy.sampling.window_s,
                 policy.sampling.rate)
    features = None
    if policy.features.enabled:
        try:
            from plimsoll.observability.features import FeatureRecorder, RequestFeatureStore

            features = FeatureRecorder(RequestFeatureStore(store_url),
                                       queue_size=policy.features.queue)
        except PlimsollError as exc:
            log.warning("request features are not recorded (no drift checks): %s", exc)
    from plimsoll.observability.tracing import segment_key

    # One key for the trace's segment and the log line's, even when it is a random one.
    return GatewayObserver(model_name=model_name, metrics=metrics, tracing=tracing,
                           features=features,
                           segment_key=tracing.key if tracing else segment_key())


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Serve until interrupted."""
    _check_port(args.host, args.port)
    import torch

    # Process-wide, before any answer: each answer worker then runs torch on its own thread.
    torch.set_num_threads(args.torch_threads)
    from plimsoll.observability.logs import configure_logging

    listener = configure_logging(args.log_level, args.log_format)
    try:
        return _serve(args, settings)
    finally:
        listener.stop()  # write what is queued


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    """Build the gateway and run uvicorn over it."""
    import uvicorn

    gateway, app = build_gateway(args, settings)
    print(f"plimsoll serve: http://{args.host}:{args.port} answers from "
          f"{gateway.reference.text} (alias and flags read every {args.watch_interval:g}s); "
          "Ctrl-C stops", file=sys.stderr, flush=True)
    # One worker per process (scale is replicas): the metrics are this process's. log_config
    # None leaves uvicorn's loggers to the root handler, so they are JSON lines too.
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level,
                            access_log=args.log_level == "debug", timeout_graceful_shutdown=10,
                            workers=1, log_config=None)
    uvicorn.Server(config).run()
    return 0


def _check_port(host: str, port: int) -> None:
    """A port that is taken is an error that says so, before any model is loaded."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise PlimsollError(f"cannot listen on {host}:{port} ({exc.strerror or exc})",
                                field="--port" if exc.errno == 98 else "--host",
                                fix="pick a free port with --port, or stop what uses it"
                                ) from None
