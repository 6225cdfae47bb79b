"""The gateway on the production shape: a real MLflow server on PostgreSQL, its signed
webhooks, and flags in PostgreSQL."""

import time

import pytest
from serving_helpers import MODEL, ask, call, free_port, start_cli_server, stop, wait_ready

SECRET = "webhook-secret-for-tests"


@pytest.fixture
def webhook_env(monkeypatch):
    # MLflow delivers webhooks only over https to public addresses unless told otherwise;
    # the test's gateway is plain http on loopback (in a cluster, TLS terminates in front).
    monkeypatch.setenv("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS", "true")
    monkeypatch.setenv("MLFLOW_WEBHOOK_ALLOWED_SCHEMES", "http,https")


@pytest.fixture
def webhook_server(webhook_env, mlflow_server):  # noqa: ARG001 (the server must see the env)
    return mlflow_server


def register_two(tracking_uri, ledger_url, bundle):
    from plimsoll.release.lineage_record import LineageRecords
    from plimsoll.release.registry import ModelRegistry, lineage_tags
    from plimsoll.serving.pyfunc import pyfunc_model

    registry = ModelRegistry(tracking_uri, records=LineageRecords(ledger_url))
    experiment = registry.ensure_reachable()
    versions = []
    for number in range(2):
        with registry.training_run(experiment, f"prod-{number}", {}) as run:
            versions.append(registry.register(MODEL, bundle, lineage_tags({
                "bundle_key": f"prod-{number}", "eval_scores": {}, "trained_by": "alice",
                "git_commit": f"{number:040x}", "mlflow_run_id": run.run_id}),
                run.run_id, pyfunc_model()))
    return registry, versions


def served(base):
    return ask(base)["provenance"]["model_version"]


def until(check, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(0.1)
    return None


def test_an_mlflow_server_webhook_swaps_the_gateway_and_flags_live_in_postgres(
        webhook_server, postgres_url, bundle, tmp_path):
    mlflow_server = webhook_server
    from serving_helpers import ServingHome

    from plimsoll.serving.flags import FlagStore

    registry, (first, second) = register_two(mlflow_server, postgres_url, bundle)
    port = free_port()
    # Before any alias move: the server caches each event's webhook list for a while
    # (MLFLOW_WEBHOOK_CACHE_TTL), so a webhook is set up once, ahead of the moves.
    registry.client.create_webhook(
        name="plimsoll-gateway", url=f"http://127.0.0.1:{port}/v1/hooks/mlflow",
        events=["model_version_alias.created"], secret=SECRET)
    registry.set_alias(MODEL, "champion", first)
    home = ServingHome(tmp_path / "home", [first, second])
    home.root.mkdir()
    log = tmp_path / "serve.log"
    # A 30 s watch interval: only the webhook can explain a swap within seconds.
    process, base = start_cli_server(
        home, "--watch-interval", "30", port=port, log=log,
        env={"MLFLOW_TRACKING_URI": mlflow_server, "PLIMSOLL_LEDGER_URL": postgres_url,
             "PLIMSOLL_WEBHOOK_SECRET": SECRET})
    try:
        wait_ready(base, process, log=log)
        body = ask(base, "How do I roll back the model?")
        record = registry.version(MODEL, first)
        assert body["provenance"]["model_version"] == first
        assert body["provenance"]["run_id"] == record.run_id
        assert body["provenance"]["git_commit"] == f"{0:040x}"
        time.sleep(1.5)  # the first tick is done; the next poll is 30 s away
        moved = time.monotonic()
        registry.set_alias(MODEL, "champion", second)
        seen = until(lambda: served(base) == second, 25)
        assert seen is not None, "the webhook did not reach the gateway:\n" + \
            log.read_text()[-2000:] + (tmp_path / "mlflow-server.log").read_text()[-3000:]
        assert seen - moved < 20
        counters = call(base, "/v1/model")[1]["counters"]
        assert counters["webhooks_accepted"] >= 1 and counters["webhooks_refused"] == 0
        # Flags in PostgreSQL reach the running gateway (polled every 2 s at most).
        store = FlagStore(postgres_url)
        try:
            store.set("pin", {"version": first}, actor="oncall", reason="prod drill")
            assert until(lambda: served(base) == first, 15) is not None
            assert ask(base)["provenance"]["route"] == "pin"
        finally:
            store.close()
    finally:
        stop(process)
