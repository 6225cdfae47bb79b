"""`plimsoll serve` over real HTTP: provenance, hot swap, rollback, bad requests."""

import json
import threading
import time

import pytest
from serving_helpers import (
    MODEL,
    ask,
    build_serving_home,
    call,
    start_cli_server,
    stop,
    wait_ready,
)

from plimsoll.cli.main import main
from plimsoll.serving.gateway import wait_for

WATCH_S = "0.5"


@pytest.fixture(scope="module")
def home(tmp_path_factory, bundle):
    home = build_serving_home(tmp_path_factory.mktemp("serving-home"), bundle, count=2)
    home.promote(home.versions[0])
    return home


@pytest.fixture(scope="module")
def serve_log(tmp_path_factory):
    return tmp_path_factory.mktemp("serve-log") / "serve.log"


@pytest.fixture(scope="module")
def gateway(home, serve_log):
    """One `plimsoll serve` process for the module, as on-call starts it."""
    log = serve_log
    process, base = start_cli_server(home, "--watch-interval", WATCH_S, log=log)
    try:
        wait_ready(base, process, log=log)
        yield base
    finally:
        stop(process)


def registry_record(home, version):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=home.tracking_uri).get_model_version(MODEL, version)


def served_version(base):
    return ask(base)["provenance"]["model_version"]


def wait_served(base, version, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if served_version(base) == version:
            return True
        time.sleep(0.1)
    return False


def test_provenance_in_body_and_headers_is_the_registry_record(gateway, home):
    body = ask(gateway, "How do I roll back the model?", user="u-1")
    record = registry_record(home, home.versions[0])
    tags = record.tags
    provenance = body["provenance"]
    assert provenance["model_name"] == MODEL
    assert provenance["model_version"] == str(record.version)
    assert provenance["alias"] == "champion" and provenance["route"] == "alias"
    assert provenance["run_id"] == record.run_id
    assert provenance["git_commit"] == tags["plimsoll.lineage.git_commit"]
    assert provenance["guard_policy_digest"] == tags["plimsoll.lineage.guard_policy_digest"]
    assert provenance["guard_classifier_digest"] == \
        tags["plimsoll.lineage.guard_classifier_digest"]
    assert provenance["prompt_template"].startswith("answer@")
    assert "#" in provenance["prompt_template"]
    assert isinstance(provenance["flags"], dict)
    headers = {k.lower(): v for k, v in body["_headers"].items()}
    assert headers["x-request-id"] == body["request_id"]
    assert headers["x-plimsoll-model-version"] == provenance["model_version"]
    assert headers["x-plimsoll-prompt-template"] == provenance["prompt_template"]
    assert headers["x-plimsoll-index-snapshot"] == provenance["index_snapshot_id"]
    # The answer is grounded: it cites the rollback passage with a quote from it.
    assert not body["abstained"] and body["fallback"] is None
    assert body["citations"][0]["doc_id"] == "doc-0"
    assert "rollback" in body["citations"][0]["quote"].lower()
    assert body["guard"]["action"] == "none"
    assert body["latency_ms"] > 0


def test_health_readiness_and_what_is_served(gateway):
    assert call(gateway, "/healthz")[:2] == (200, {"status": "ok"})
    status, ready, _ = call(gateway, "/readyz")
    assert status == 200 and ready["ready"] is True
    status, model, _ = call(gateway, "/v1/model")
    assert status == 200
    assert model["serving"]["version"] == served_version(gateway)
    assert model["alias"] == "champion" and model["serving"]["since"]
    assert {w["version"] for w in model["warm"]} >= {model["serving"]["version"]}

def test_metrics_and_json_request_logs_of_the_cli_gateway(gateway, serve_log):
    import urllib.request

    body = ask(gateway, "How do I roll back the model?", user="u-42")
    with urllib.request.urlopen(gateway + "/metrics", timeout=10) as response:
        text = response.read().decode()
    version = body["provenance"]["model_version"]
    assert f'plimsoll_answers_total{{model_version="{version}",outcome="answered_cited"}}' \
        in text
    assert 'plimsoll_served_version_info{alias="champion"' in text
    assert wait_for(lambda: body["request_id"] in serve_log.read_text(), 5)
    lines = [json.loads(line) for line in serve_log.read_text().splitlines()
             if line.startswith("{")]
    mine = [line for line in lines if line.get("request_id") == body["request_id"]]
    assert mine and mine[0]["model_version"] == version
    assert mine[0]["prompt_template"] == body["provenance"]["prompt_template"]


def test_promote_then_roll_back_under_load_every_response_200_and_one_version(gateway, home):
    first, second = home.versions
    assert wait_served(gateway, first)
    responses, failures, stop_loop = [], [], threading.Event()

    def client_loop():
        while not stop_loop.is_set():
            status, body, headers = call(gateway, "/v1/answer",
                                         {"question": "How do I split a string?"})
            if status != 200:
                failures.append((status, body))
                continue
            responses.append((time.monotonic(), body, headers))
            time.sleep(0.02)  # a steady stream, not a CPU hog beside the other test worker

    clients = [threading.Thread(target=client_loop) for _ in range(2)]
    for client in clients:
        client.start()
    try:
        home.promote(second)
        moved_at = time.monotonic()
        assert wait_served(gateway, second, timeout=30), "the promotion was never served"
        promoted_seen = time.monotonic() - moved_at
        assert main(["--home", str(home.root), "rollback", "--reason", "test"]) == 0
        rolled_at = time.monotonic()
        assert wait_served(gateway, first, timeout=10), "the rollback was never served"
        rollback_seen = time.monotonic() - rolled_at
        time.sleep(0.5)
    finally:
        stop_loop.set()
        for client in clients:
            client.join(timeout=30)
    assert not failures
    assert len(responses) > 10
    # Within the watch interval (plus the load of a version never served before).
    assert rollback_seen < float(WATCH_S) * 4 + 1.0, rollback_seen
    assert promoted_seen < 30
    versions = {body["provenance"]["model_version"] for _, body, _ in responses}
    assert versions == {first, second}
    for _, body, headers in responses:  # no response mixes two versions' provenance
        lowered = {k.lower(): v for k, v in headers.items()}
        assert lowered["x-plimsoll-model-version"] == body["provenance"]["model_version"]
        expected_commit = f"{home.versions.index(body['provenance']['model_version']):040x}"
        assert body["provenance"]["git_commit"] == expected_commit


@pytest.mark.parametrize(("raw", "status", "field", "words"), [
    (b"not json", 400, None, "not JSON"),
    (b"[1, 2]", 422, None, "not an object"),
    (b"{}", 422, "question", "missing"),
    (b'{"question": ""}', 422, "question", "empty"),
    (b'{"question": "   "}', 422, "question", "empty"),
    (b'{"question": 42}', 422, "question", "string"),
    (b'{"question": "hi", "temperature": 2}', 422, "temperature", "unknown field"),
    (b'{"question": "hi", "user": ["a"]}', 422, "user", "string"),
    (json.dumps({"question": "x" * 4001}).encode(), 422, "question", "over the limit"),
    (b'{"question": "' + b"x" * 20000 + b'"}', 413, None, "over the limit"),
    (b"[" * 8000 + b"]" * 8000, 400, None, "too deeply"),
    (b'{"question": "\xff\xfe"}', 400, None, "not JSON"),
])
def test_bad_requests_name_the_field_and_the_fix(gateway, raw, status, field, words):
    got, body, _ = call(gateway, "/v1/answer", raw=raw)
    assert got == status, body
    error = body["error"]
    assert error["field"] == field
    assert words.lower() in error["problem"].lower()
    assert error["fix"]
    assert ask(gateway)["fallback"] is None  # nothing crashed: the next question is answered


def test_an_oversized_body_without_content_length_is_refused(gateway):
    import http.client

    host, port = gateway.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.putrequest("POST", "/v1/answer")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()
    chunk = b'{"question": "' + b"y" * 30000 + b'"}'
    connection.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n0\r\n\r\n")
    response = connection.getresponse()
    assert response.status == 413
    assert "limit" in json.loads(response.read())["error"]["problem"]
    connection.close()


def test_unknown_paths_and_methods_are_json_refusals(gateway):
    status, body, _ = call(gateway, "/v2/answer")
    assert status == 404 and "/v1/answer" in body["error"]["fix"]
    status, body, _ = call(gateway, "/v1/answer", method="GET")
    assert status == 405


def test_a_taken_port_is_a_clear_error(gateway, capsys):
    port = gateway.rsplit(":", 1)[1]
    assert main(["serve", "--port", port]) == 2
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port}" in err and "--port" in err


def test_serve_help_names_the_endpoints(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    for words in ("/v1/answer", "/readyz", "--model", "--watch-interval", "champion"):
        assert words in out
