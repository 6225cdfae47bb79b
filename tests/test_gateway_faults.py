"""The gateway when things go wrong: nothing to serve, a dead registry, bad files, slow answers."""

import argparse
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from serving_helpers import MODEL, REPO_ROOT, ThreadServer, ask, build_serving_home, call

from plimsoll.cli import serve
from plimsoll.common.settings import Settings
from plimsoll.serving.fallbacks import (
    FallbackPolicyError,
    load_fallback_policy,
    snapshot_freshness,
)
from plimsoll.serving.gateway import ModelReference, ModelReferenceError, wait_for


@pytest.fixture(scope="module")
def home(tmp_path_factory, bundle):
    home = build_serving_home(tmp_path_factory.mktemp("faults-home"), bundle, count=2)
    home.promote(home.versions[0])
    return home


def gateway_for(root, *argv, tracking_uri=None, env=None):
    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    args = parser.parse_args(["--watch-interval", "0.3", *argv])
    settings = Settings.from_env({"PLIMSOLL_HOME": str(root), **(env or {})},
                                 tracking_uri=tracking_uri)
    return serve.build_gateway(args, settings)


def fallback_policy(tmp_path, **changes):
    policy = load_fallback_policy(REPO_ROOT / "policies" / "fallbacks.yaml").model_dump()
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        policy[section][key] = value
    path = tmp_path / "fallbacks.yaml"
    path.write_text(json.dumps(policy))  # JSON is YAML
    return path


def test_nothing_to_serve_yet_answers_static_suggestions_and_readyz_says_why(tmp_path):
    _gateway, app = gateway_for(tmp_path / "empty-home")
    with ThreadServer(app) as server:
        status, ready, _ = call(server.base, "/readyz")
        assert status == 503 and ready["ready"] is False
        assert wait_for(lambda: "MLflow store" in call(server.base, "/readyz")[1]["reason"]
                        or "make demo" in call(server.base, "/readyz")[1]["reason"], 10)
        body = ask(server.base)
        assert body["fallback"] == "static_suggestions"
        assert "docs.python.org" in body["answer"]
        assert body["provenance"]["model_version"] is None
        assert body["_headers"]["x-plimsoll-fallback"] == "static_suggestions"
        assert call(server.base, "/healthz")[0] == 200


def test_an_alias_not_set_yet_is_named(home):
    _gateway, app = gateway_for(home.root, "--model", f"models:/{MODEL}@staging")
    with ThreadServer(app) as server:
        assert wait_for(lambda: "staging" in call(server.base, "/readyz")[1]["reason"], 10)
        assert ask(server.base)["fallback"] == "static_suggestions"


def test_registry_unreachable_at_start_falls_back_then_recovers(home):
    from serving_helpers import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    gateway, app = gateway_for(home.root, tracking_uri=dead)
    with ThreadServer(app) as server:
        assert wait_for(lambda: dead in call(server.base, "/readyz")[1]["reason"], 15)
        body = ask(server.base)
        assert body["fallback"] == "static_suggestions"
        assert dead in body["fallback_reason"]
        model = call(server.base, "/v1/model")[1]
        assert model["registry_error"] and model["serving"] is None
        # The registry comes back: the next ticks load and serve the champion.
        gateway.tracking_uri = home.tracking_uri
        gateway.cache.tracking_uri = home.tracking_uri
        gateway._backend = None
        assert gateway.wait_until_ready(90)
        assert ask(server.base)["provenance"]["model_version"] == home.versions[0]


def test_corrupt_bundle_files_are_never_served(home, tmp_path):
    version = home.versions[1]
    artifacts = next((home.root / "mlflow" / "artifacts").rglob(f"model-v{version}"))
    victim = next(p for p in (artifacts / "artifacts").rglob("*.md"))
    original = victim.read_bytes()
    victim.write_text("{{ tampered }}")
    try:
        _gateway, app = gateway_for(tmp_path / "cache-home", "--model",
                                   f"models:/{MODEL}/{version}",
                                   env={"MLFLOW_TRACKING_URI": home.tracking_uri})
        with ThreadServer(app) as server:
            assert wait_for(lambda: "digest" in call(server.base, "/readyz")[1]["reason"], 60)
            body = ask(server.base)
            assert body["fallback"] == "static_suggestions"
            assert call(server.base, "/v1/model")[1]["failed"][version]
    finally:
        victim.write_bytes(original)


def test_a_cached_bundle_edited_on_disk_is_fetched_again(home, tmp_path):
    cache_home = tmp_path / "cache-home"
    env = {"MLFLOW_TRACKING_URI": home.tracking_uri}
    first, app = gateway_for(cache_home, env=env)
    first.start()
    try:
        assert first.wait_until_ready(90)
    finally:
        first.stop()
    cached = cache_home / "serving" / "bundles" / MODEL / f"v{home.versions[0]}"
    template = next(cached.rglob("answer.md"))
    template.write_text("{{ answer }} -- edited in the cache")
    second, app = gateway_for(cache_home, env=env)
    with ThreadServer(app) as server:
        assert second.wait_until_ready(90)
        body = ask(server.base, "How do I roll back the model?")
        assert "edited in the cache" not in body["answer"]
        assert body["provenance"]["model_version"] == home.versions[0]


def test_an_answer_over_the_budget_gets_the_static_list(home, tmp_path):
    policy = fallback_policy(tmp_path, model_unavailable__answer_budget_ms=1)
    gateway, app = gateway_for(home.root, "--fallbacks", str(policy))
    with ThreadServer(app) as server:
        assert gateway.wait_until_ready(90)
        body = ask(server.base)
        assert body["fallback"] == "static_suggestions"
        assert "budget" in body["fallback_reason"]
        assert body["provenance"]["attempted_version"] == home.versions[0]


def test_an_answer_that_raises_gets_the_static_list_and_the_worker_lives(home, monkeypatch):
    gateway, app = gateway_for(home.root)
    with ThreadServer(app) as server:
        assert gateway.wait_until_ready(90)
        answerer = gateway._champion.answerers["answer"]
        monkeypatch.setattr(answerer, "answer", lambda *_a, **_k: 1 / 0)
        body = ask(server.base)
        assert body["fallback"] == "static_suggestions"
        assert "ZeroDivisionError" in body["fallback_reason"]
        monkeypatch.undo()
        assert ask(server.base)["fallback"] is None


def test_failed_slice_checks_make_retrieval_stale_short_form_with_a_nudge(home):
    from plimsoll.datasets.check_history import SliceCheckHistory

    gateway, app = gateway_for(home.root)
    with ThreadServer(app) as server:
        assert gateway.wait_until_ready(90)
        assert ask(server.base, "How do I roll back the model?")["fallback"] is None
        history = SliceCheckHistory(home.ledger_url)
        failing = _failing_outcome()
        try:
            history.record("faq", "0" * 64, [failing])
        finally:
            history.close()
        gateway._judge_freshness(force_version=home.versions[0])
        gateway._fresh_checked = 0
        gateway._judge_freshness()
        body = ask(server.base, "How do I roll back the model?")
        assert body["fallback"] == "short_form"
        assert "faq" in body["fallback_reason"]
        assert body["provenance"]["answer_mode"] == "facts"
        assert body["provenance"]["prompt_template"].startswith("facts@")
        assert "search" in body["answer"].lower()
        assert body["citations"]


def _failing_outcome():
    from plimsoll.datasets.checks import SLICE_CHECKS
    from plimsoll.datasets.validation import CheckOutcome

    return CheckOutcome(SLICE_CHECKS[0], passed=False, failing_count=3, row_count=10,
                        sample_failing_ids=("doc-1",))


@pytest.mark.parametrize(("age_days", "ttl", "stale_words"), [
    (1, 365, None),
    (45, 365, "days old (the policy's maximum is 30)"),
    (20, 10, "past its TTL"),
])
def test_snapshot_age_and_slice_ttls_decide_staleness(age_days, ttl, stale_words):
    policy = load_fallback_policy(REPO_ROOT / "policies" / "fallbacks.yaml").retrieval_stale
    now = datetime(2026, 12, 1, tzinfo=UTC)
    judged = snapshot_freshness(policy, built_at=now - timedelta(days=age_days),
                                slices={"faq": "h"}, slice_ttl_days={"faq": ttl},
                                latest_checks={}, now=now)
    assert judged.stale is (stale_words is not None)
    if stale_words:
        assert any(stale_words in reason for reason in judged.reasons)


def test_a_bad_fallback_policy_names_the_line_and_field(tmp_path):
    path = tmp_path / "fallbacks.yaml"
    text = (REPO_ROOT / "policies" / "fallbacks.yaml").read_text()
    path.write_text(text.replace("answer_budget_ms: 2000", "answer_budget_ms: soon"))
    with pytest.raises(FallbackPolicyError) as error:
        load_fallback_policy(path)
    assert error.value.field == "model_unavailable.answer_budget_ms"
    assert error.value.line == text.splitlines().index("  answer_budget_ms: 2000") + 1
    path.write_text(text.replace("max_body_bytes", "max_bodybytes"))
    with pytest.raises(FallbackPolicyError, match="max_bodybytes"):
        load_fallback_policy(path)


@pytest.mark.parametrize("text", ["models:/m/latest", "models:/", "nowhere/at/all", ""])
def test_model_references_that_cannot_be_served(text):
    with pytest.raises(ModelReferenceError) as error:
        ModelReference.parse(text)
    assert error.value.field == "--model"


def test_mlflow_alias_webhooks_are_checked_and_wake_the_watcher(home):
    from plimsoll.serving.webhooks import sign

    secret = "s3cret"
    from plimsoll.serving.api import create_app

    gateway, _ = gateway_for(home.root)

    app = create_app(gateway, max_input_chars=4000, webhook_secret=secret)
    payload = json.dumps({"entity": "model_version_alias", "action": "created",
                          "data": {"name": MODEL, "alias": "champion", "version": "2"}})
    now = str(int(time.time()))
    good = {"X-MLflow-Signature": sign(secret, "d-1", now, payload),
            "X-MLflow-Timestamp": now, "X-MLflow-Delivery-Id": "d-1"}
    with ThreadServer(app) as server:
        status, body, _ = call(server.base, "/v1/hooks/mlflow", raw=payload.encode(),
                               headers=good)
        assert status == 200 and body == {"accepted": True, "checked_now": True}
        forged = {**good, "X-MLflow-Signature": sign("wrong", "d-1", now, payload)}
        status, body, _ = call(server.base, "/v1/hooks/mlflow", raw=payload.encode(),
                               headers=forged)
        assert status == 401 and "secret" in body["error"]["problem"]
        old = str(int(time.time()) - 3600)
        replay = {"X-MLflow-Signature": sign(secret, "d-1", old, payload),
                  "X-MLflow-Timestamp": old, "X-MLflow-Delivery-Id": "d-1"}
        status, body, _ = call(server.base, "/v1/hooks/mlflow", raw=payload.encode(),
                               headers=replay)
        assert status == 401 and "old" in body["error"]["problem"]
    _unsigned_gateway, unsigned_app = gateway_for(home.root)
    with ThreadServer(unsigned_app) as server:
        status, body, _ = call(server.base, "/v1/hooks/mlflow", raw=payload.encode(),
                               headers=good)
        assert status == 403 and "PLIMSOLL_WEBHOOK_SECRET" in body["error"]["fix"]


def test_an_unwritable_bundle_cache_is_a_load_failure_not_a_crash(home, tmp_path):
    # A file where the cache folder should be: no user (root included) can write there.
    cache_home = tmp_path / "unwritable-home"
    cache_home.mkdir()
    (cache_home / "serving").write_text("not a folder")
    _gateway, app = gateway_for(cache_home, env={"MLFLOW_TRACKING_URI": home.tracking_uri})
    with ThreadServer(app) as server:
        assert wait_for(lambda: call(server.base, "/v1/model")[1]["failed"], 30)
        assert ask(server.base)["fallback"] == "static_suggestions"
        status, ready, _ = call(server.base, "/readyz")
        assert status == 503 and "did not load" in ready["reason"]


def test_a_downloaded_model_directory_is_served_as_it_is(home, tmp_path):
    fetched, _ = gateway_for(tmp_path / "fetch-home",
                             env={"MLFLOW_TRACKING_URI": home.tracking_uri})
    fetched.start()
    try:
        assert fetched.wait_until_ready(90)
    finally:
        fetched.stop()
    folder = fetched.cache.folder(home.versions[0])
    gateway, app = gateway_for(tmp_path / "other-home", "--model", str(folder))
    with ThreadServer(app) as server:
        assert gateway.wait_until_ready(90)
        body = ask(server.base, "How do I roll back the model?")
        assert body["provenance"]["model_version"] == home.versions[0]
        assert body["provenance"]["model_name"] == MODEL
        assert body["provenance"]["alias"] is None and body["fallback"] is None


def test_a_killed_download_leaves_nothing_that_is_served_or_kept(home, tmp_path):
    import os

    cache_home = tmp_path / "killed-home"
    parent = cache_home / "serving" / "bundles" / MODEL
    half = parent / f".v{home.versions[0]}.partial-deadbeef" / "model-v1" / "artifacts"
    half.mkdir(parents=True)
    (half / "answer.md").write_text("half a file")
    old = time.time() - 2 * 3600
    os.utime(half.parent.parent, (old, old))
    gateway, app = gateway_for(cache_home, env={"MLFLOW_TRACKING_URI": home.tracking_uri})
    with ThreadServer(app) as server:
        assert gateway.wait_until_ready(90)
        assert ask(server.base)["fallback"] is None
    assert not list(parent.glob(".v*.partial-*"))
    assert (parent / f"v{home.versions[0]}" / "artifacts").is_dir()


def test_a_registry_that_accepts_but_never_answers_does_not_hang_the_gateway(home):
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never answers them
    dead = f"http://127.0.0.1:{silent.getsockname()[1]}"
    try:
        _gateway, app = gateway_for(home.root, tracking_uri=dead)
        with ThreadServer(app) as server:
            started = time.monotonic()
            body = ask(server.base)  # answered at once, while the watcher waits on the registry
            assert body["fallback"] == "static_suggestions"
            assert time.monotonic() - started < 2
            assert wait_for(lambda: dead in call(server.base, "/readyz")[1]["reason"], 15)
            assert call(server.base, "/healthz")[0] == 200
    finally:
        silent.close()
