"""Routing flags and shadow traffic reaching a running gateway over HTTP, without a redeploy."""

import argparse
import json
import time

import pytest
from serving_helpers import MODEL, ThreadServer, ask, build_serving_home

from plimsoll.cli import serve
from plimsoll.cli.main import main
from plimsoll.common.settings import Settings
from plimsoll.retrieval.snapshot import Hit
from plimsoll.serving.flags import FlagStore
from plimsoll.serving.shadow import ShadowStore

FLAG_REACH_S = 5.0  # every replica sees a change within this


@pytest.fixture(scope="module")
def home(tmp_path_factory, bundle):
    home = build_serving_home(tmp_path_factory.mktemp("flags-home"), bundle, count=2)
    home.promote(home.versions[0])
    return home


@pytest.fixture(scope="module")
def server(home):
    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    args = parser.parse_args(["--watch-interval", "0.3"])
    gateway, app = serve.build_gateway(args, Settings.from_env({"PLIMSOLL_HOME": str(
        home.root)}))
    with ThreadServer(app) as running:
        assert gateway.wait_until_ready(90)
        running.gateway = gateway
        yield running


@pytest.fixture
def flags(home):
    store = FlagStore(home.ledger_url)
    yield store
    for name in list(store.current()):
        store.clear(name, actor="test", reason="reset after the test")
    store.close()


def eventually(check, timeout=FLAG_REACH_S + 10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    return check()


def test_a_pin_wins_over_the_alias_and_reaches_a_running_gateway(server, home, flags):
    first, second = home.versions
    assert ask(server.base)["provenance"]["model_version"] == first
    flags.set("pin", {"version": second}, actor="oncall", reason="incident 42: pin v2")
    set_at = time.monotonic()
    body = eventually(lambda: (b := ask(server.base))["provenance"]["route"] == "pin" and b)
    assert body, "the pin never reached the gateway"
    assert time.monotonic() - set_at < FLAG_REACH_S + 5
    assert body["provenance"]["model_version"] == second
    assert body["provenance"]["alias"] is None
    assert body["provenance"]["flags"]["pin"]["version"] == second
    assert body["_headers"]["x-plimsoll-model-version"] == second
    flags.clear("pin", actor="oncall", reason="incident 42 over")
    assert eventually(lambda: ask(server.base)["provenance"]["model_version"] == first)


def test_a_canary_splits_users_stickily(server, home, flags):
    first, second = home.versions
    flags.set("canary", {"version": second, "percent": 50}, actor="ml", reason="canary v2")
    assert eventually(lambda: server.gateway.flags.status()["values"]["canary"])
    assert eventually(lambda: second in {b.version for b in server.gateway._bundles.values()})
    seen = {}
    for number in range(30):
        user = f"user-{number}"
        answers = [ask(server.base, user=user) for _ in range(2)]
        versions = {a["provenance"]["model_version"] for a in answers}
        assert len(versions) == 1, f"{user} saw {versions}"  # sticky per user
        seen[user] = versions.pop()
        canary = answers[0]["provenance"]["flags"]["canary"]
        assert canary["hit"] == (seen[user] == second)
        assert answers[0]["provenance"]["route"] == ("canary" if canary["hit"] else "alias")
    assert set(seen.values()) == {first, second}


def test_answer_mode_and_strict_safety_flags_change_answers(server, flags):
    flags.set("answer_mode", "facts", actor="oncall", reason="just the facts")
    body = eventually(lambda: (b := ask(server.base, "How do I roll back the model?"))[
        "provenance"]["answer_mode"] == "facts" and b)
    assert body and body["provenance"]["prompt_template"].startswith("facts@")
    assert body["_headers"]["x-plimsoll-prompt-template"].startswith("facts@")
    flags.set("strict_safety", True, actor="oncall", reason="incident: strict")
    body = eventually(lambda: (b := ask(server.base))["provenance"]["flags"][
        "strict_safety"] is True and b)
    assert body


def test_strict_safety_withholds_an_answer_with_soft_findings(server):
    answerer = server.gateway._champion.answerers["answer"]
    planted = Hit(rank=1, score=0.9, chunk_id="planted", doc_id="doc-x", slice="faq",
                  text="Mail jane.doe@gmail.com for access to the package.")
    original = answerer.search
    answerer.search = lambda _question: ((planted,), None)
    try:
        relaxed = answerer.answer("Where do I install the package from?")
        strict = answerer.answer("Where do I install the package from?", strict=True)
    finally:
        answerer.search = original
    assert relaxed.guard.action == "redacted-output" and not relaxed.refused
    assert strict.guard.action == "withheld-output" and strict.refused


def test_shadow_answers_are_recorded_and_never_returned(server, home, flags):
    first, second = home.versions
    flags.set("shadow", {"version": second, "percent": 100}, actor="ml",
              reason="shadow v2 against the champion")
    assert eventually(lambda: server.gateway.flags.status()["values"]["shadow"])
    assert eventually(lambda: second in {b.version for b in server.gateway._bundles.values()})
    served = [ask(server.base, question) for question in (
        "How do I roll back the model?", "What is an index snapshot?",
        "How do I split a string?", "What is the capital of Peru?")]
    for body in served:
        assert body["provenance"]["model_version"] == first
        assert body["_headers"]["x-plimsoll-model-version"] == first
        # Nothing of the challenger's answer reaches the user: the body is the served one's.
        assert set(body) == {"answer", "abstained", "refused", "citations", "guard",
                             "fallback", "request_id", "latency_ms", "provenance", "_headers"}
    ids = {body["request_id"] for body in served}
    store = ShadowStore(home.ledger_url)
    try:
        pairs = eventually(lambda: [p for p in store.pairs(MODEL, second)
                                    if p.request_id in ids] if len(
            [p for p in store.pairs(MODEL, second) if p.request_id in ids]) == len(ids)
            else None, timeout=30)
    finally:
        store.close()
    assert pairs and {p.request_id for p in pairs} == ids
    for pair in pairs:
        assert (pair.served_version, pair.challenger_version) == (first, second)
        assert pair.challenger_error is None and pair.challenger_latency_ms > 0
        # The same bundle content in both versions: the answers agree.
        assert pair.agreement == 1.0
    by_id = {p.request_id: p for p in pairs}
    for body in served:
        assert list(by_id[body["request_id"]].served_citations) == [
            c["doc_id"] for c in body["citations"]]


@pytest.mark.usefixtures("flags")  # clears what the test sets
def test_flag_changes_from_the_cli_are_audited_and_reach_the_gateway(server, home, capsys,
                                                                    monkeypatch):
    monkeypatch.setenv("PLIMSOLL_ACTOR", "ada")
    second = home.versions[1]
    assert main(["flags", "set", "pin", f"version={second}", "--reason", "drill",
                 "--ledger-url", home.ledger_url]) == 0
    assert eventually(lambda: ask(server.base)["provenance"]["route"] == "pin")
    assert main(["flags", "clear", "pin", "--reason", "drill over",
                 "--ledger-url", home.ledger_url]) == 0
    capsys.readouterr()
    assert main(["flags", "history", "pin", "--json", "--ledger-url", home.ledger_url]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    drill = [r for r in rows if r["reason"] in ("drill", "drill over")]
    assert [r["actor"] for r in drill] == ["ada", "ada"]
    assert drill[0]["value"] == {"version": second} and drill[1]["value"] is None
    assert drill[1]["previous"] == {"version": second}
    assert all(r["at"] for r in drill)


def test_a_pin_to_a_version_that_does_not_exist_keeps_the_champion_and_says_why(server, home,
                                                                               flags):
    flags.set("pin", {"version": "99"}, actor="oncall", reason="a typo")
    body = eventually(lambda: (b := ask(server.base))["provenance"]["route"].startswith(
        "alias (pin version 99 failed") and b)
    assert body, ask(server.base)["provenance"]
    assert body["provenance"]["model_version"] == home.versions[0]
    assert body["fallback"] is None
    assert "99" in server.gateway.status()["failed"]
