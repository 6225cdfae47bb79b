"""Serving flags: the audited store, the CLI over it, and the router the gateway asks."""

import itertools
import json
import threading
import time
from datetime import datetime

import pytest
import sqlalchemy as sa

from plimsoll.common.errors import PlimsollError
from plimsoll.serving.flags import (
    FLAGS,
    FlagRouter,
    FlagStore,
    FlagStoreError,
    bucket,
)


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'ledger.sqlite'}"


@pytest.fixture
def store(url):
    flag_store = FlagStore(url)
    yield flag_store
    flag_store.close()


@pytest.fixture
def routers():
    made = []

    def make(store_or_url, **kwargs):
        router = FlagRouter(store_or_url, **kwargs)
        made.append(router)
        return router

    yield make
    for router in made:
        router.close()


def cli(*argv):
    from plimsoll.cli.main import main

    return main(list(argv))


@pytest.fixture
def home_store(home, monkeypatch):
    """PLIMSOLL_HOME at tmp_path; the flag store is the home's ledger database."""
    monkeypatch.delenv("PLIMSOLL_LEDGER_URL", raising=False)
    monkeypatch.setenv("PLIMSOLL_ACTOR", "ada")
    return home / "promotion_ledger.sqlite"


def history_json(capsys, *argv):
    capsys.readouterr()
    assert cli("flags", "history", *argv, "--json") == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


# The split


@pytest.mark.parametrize("percent", [10, 50])
def test_canary_sends_its_percent_of_users_within_three_points(store, routers, percent):
    store.set("canary", {"version": "3", "percent": percent}, actor="ada", reason="canary v3")
    router = routers(store)
    router.refresh()
    decisions = [router.decide(user=f"user-{n}", session=None, request_id=f"req-{n}")
                 for n in range(2000)]
    on_canary = sum(decision.route == "canary" for decision in decisions)
    assert abs(on_canary / 2000 * 100 - percent) <= 3
    assert {d.version for d in decisions if d.route == "canary"} == {"3"}
    assert {d.version for d in decisions if d.route == "alias"} == {None}


def test_a_user_stays_on_one_side_across_requests_and_replicas(store, routers):
    store.set("canary", {"version": "3", "percent": 30}, actor="ada", reason="canary v3")
    first, second = routers(store), routers(FlagStore(store.url))
    first.refresh()
    second.refresh()
    for n in range(200):
        seen = {router.decide(user=f"user-{n}", session=f"s-{attempt}",
                              request_id=f"req-{n}-{attempt}").route
                for router in (first, second) for attempt in range(3)}
        assert len(seen) == 1, f"user-{n} was served by {seen}"


def test_sticky_session_buckets_by_session_and_a_request_alone_is_not_sticky(store, routers):
    store.set("canary", {"version": "3", "percent": 50, "sticky": "session"}, actor="ada",
              reason="canary per session")
    router = routers(store)
    router.refresh()
    decision = router.decide(user="user-1", session="session-9", request_id="req-1")
    assert decision.values["canary"]["by"] == "session"
    assert decision.values["canary"]["bucket"] == round(bucket("canary", "session-9"), 2)
    for n in range(50):  # one session, any user: the same side
        assert router.decide(user=f"user-{n}", session="session-9",
                             request_id=f"req-{n}").route == decision.route
    anonymous = {router.decide(user=None, session=None, request_id=f"req-{n}").route
                 for n in range(50)}
    assert anonymous == {"canary", "alias"}
    assert router.decide(user=None, session=None, request_id="r").values["canary"]["by"] \
        == "request"


def test_pin_wins_over_canary_and_canary_over_the_alias(store, routers):
    router = routers(store)
    store.set("canary", {"version": "3", "percent": 100}, actor="ada", reason="all on v3")
    store.set("pin", {"version": "2"}, actor="ada", reason="incident: back to v2")
    router.refresh()
    pinned = router.decide(user="u", session=None, request_id="r")
    assert (pinned.version, pinned.route) == ("2", "pin")
    assert pinned.values["pin"] == {"version": "2"}
    assert pinned.values["canary"]["hit"] is True  # evaluated, but the pin won
    store.clear("pin", actor="ada", reason="incident over")
    router.refresh()
    canary = router.decide(user="u", session=None, request_id="r")
    assert (canary.version, canary.route, canary.values["pin"]) == ("3", "canary", None)
    store.clear("canary", actor="ada", reason="canary done")
    router.refresh()
    alias = router.decide(user="u", session=None, request_id="r")
    assert (alias.version, alias.route) == (None, "alias")
    assert alias.values == {"pin": None, "canary": None, "answer_mode": "answer",
                            "strict_safety": False, "shadow": None}
    json.dumps(alias.values)


def test_levers_and_shadow_reach_the_decision(store, routers):
    router = routers(store)
    store.set("answer_mode", "facts", actor="ada", reason="incident")
    store.set("strict_safety", True, actor="ada", reason="incident")
    store.set("shadow", {"version": "4", "percent": 100}, actor="ada", reason="shadow v4")
    router.refresh()
    decision = router.decide(user="u", session=None, request_id="r")
    assert (decision.answer_mode, decision.strict_safety) == ("facts", True)
    assert decision.shadow_version == "4"
    assert decision.values["shadow"]["by"] == "request"
    json.dumps(decision.values)
    store.set("pin", {"version": "4"}, actor="ada", reason="serve v4")
    router.refresh()  # shadowing the version that answered would only double its load
    assert router.decide(user="u", session=None, request_id="r").shadow_version is None
    store.set("shadow", {"version": "4", "percent": 0}, actor="ada", reason="shadow off")
    store.clear("pin", actor="ada", reason="done")
    router.refresh()
    assert router.decide(user="u", session=None, request_id="r").shadow_version is None


def test_two_routers_in_one_process_do_not_share_flags(tmp_path, routers):
    pinned = FlagStore(f"sqlite:///{tmp_path / 'a.sqlite'}")
    pinned.set("pin", {"version": "7"}, actor="ada", reason="pin")
    first = routers(pinned)
    second = routers(f"sqlite:///{tmp_path / 'b.sqlite'}")
    first.refresh()
    second.refresh()
    assert first.domain != second.domain
    assert first.decide(user="u", session=None, request_id="r").version == "7"
    assert second.decide(user="u", session=None, request_id="r").version is None


# Freshness and failure


def test_a_change_reaches_a_running_router_within_five_seconds(store, routers):
    router = routers(FlagStore(store.url), poll_s=0.1)
    router.start()
    try:
        assert router.decide(user="u", session=None, request_id="r").version is None
        store.set("pin", {"version": "5"}, actor="ada", reason="pin v5")
        deadline = time.monotonic() + 5
        while router.decide(user="u", session=None, request_id="r").version != "5":
            assert time.monotonic() < deadline, f"not seen in 5 s: {router.status()}"
            time.sleep(0.05)
    finally:
        router.stop()
    assert router._thread is None
    assert router.status()["head"] == store.head()


def test_a_store_that_goes_away_keeps_the_last_values_and_says_why(tmp_path, routers):
    path = tmp_path / "ledger.sqlite"
    writer = FlagStore(f"sqlite:///{path}")
    writer.set("pin", {"version": "2"}, actor="ada", reason="pin v2")
    writer.set("answer_mode", "facts", actor="ada", reason="incident")
    writer.close()
    router = routers(f"sqlite:///{path}")
    assert router.refresh() is True
    assert router.status()["error"] is None
    path.unlink()
    path.mkdir()  # the store is now something no database can open
    assert router.refresh() is False
    status = router.status()
    assert status["error"] and "flag store" in status["error"]
    assert status["values"]["pin"] == {"version": "2"}
    decision = router.decide(user="u", session=None, request_id="r")
    assert (decision.version, decision.answer_mode) == ("2", "facts")


def test_a_router_started_before_its_store_exists_serves_defaults_then_follows(tmp_path,
                                                                                routers):
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    router = routers(url, poll_s=0.1)
    router.start()
    router.stop()
    status = router.status()
    assert "no flag store" in status["error"]
    assert status["values"] == {name: spec.default for name, spec in FLAGS.items()}
    assert router.decide(user="u", session=None, request_id="r").route == "alias"
    assert not (tmp_path / "ledger.sqlite").exists()  # a reader creates nothing
    FlagStore(url).set("pin", {"version": "3"}, actor="ada", reason="first flag")
    assert router.refresh() is True
    assert router.status()["error"] is None
    assert router.decide(user="u", session=None, request_id="r").version == "3"


def test_an_unreachable_postgres_at_start_serves_defaults(routers):
    router = routers("postgresql+psycopg2://nobody@127.0.0.1:1/none")
    assert router.refresh() is False
    assert "flag store" in router.status()["error"]
    assert router.decide(user=None, session=None, request_id="r").route == "alias"


def test_a_stored_value_that_no_longer_validates_serves_its_default(store, routers):
    store.set("pin", {"version": "2"}, actor="ada", reason="pin")
    with store._engine.begin() as connection:  # a row written by hand, past the validation
        connection.execute(sa.text(
            "INSERT INTO serving_flags (at, flag, value, previous, actor, reason, follows) "
            "VALUES (CURRENT_TIMESTAMP, 'canary', '{\"version\": \"x\", \"percent\": 5}', "
            "NULL, 'someone', 'by hand', 0)"))
    router = routers(store)
    router.refresh()
    assert "canary" in router.status()["error"]
    router.refresh()  # nothing new in the store: the problem is still reported
    assert "canary" in router.status()["error"]
    decision = router.decide(user="u", session=None, request_id="r")
    assert (decision.version, decision.values["canary"]) == ("2", None)


# The audited store


@pytest.mark.usefixtures("home_store")
def test_set_and_history_through_the_cli_record_who_when_old_new_and_why(capsys):
    assert cli("flags", "set", "canary", "version=3", "percent=10", "--reason",
               "canary v3", "--by", "alice") == 0
    assert "(not set) → version=3 percent=10 sticky=user" in capsys.readouterr().out
    assert cli("flags", "set", "canary", "version=3", "percent=25", "sticky=session",
               "--reason", "widen") == 0  # --by defaults to $PLIMSOLL_ACTOR
    assert "version=3 percent=10 sticky=user → version=3 percent=25 sticky=session" in \
        capsys.readouterr().out
    assert cli("flags", "set", "strict_safety", "on", "--reason", "injection wave") == 0
    assert cli("flags", "clear", "canary", "--reason", "canary done", "--by", "bob") == 0
    rows = history_json(capsys, "canary")
    assert [(r["actor"], r["previous"], r["value"], r["reason"]) for r in rows] == [
        ("alice", None, {"version": "3", "percent": 10.0, "sticky": "user"}, "canary v3"),
        ("ada", {"version": "3", "percent": 10.0, "sticky": "user"},
         {"version": "3", "percent": 25.0, "sticky": "session"}, "widen"),
        ("bob", {"version": "3", "percent": 25.0, "sticky": "session"}, None, "canary done"),
    ]
    assert [r["follows"] for r in rows] == [0, rows[0]["id"], rows[1]["id"]]
    assert all(datetime.fromisoformat(r["at"]).utcoffset().total_seconds() == 0 for r in rows)
    assert len(history_json(capsys)) == 4
    capsys.readouterr()
    assert cli("flags", "list", "--json") == 0
    listed = {row["flag"]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}
    assert set(listed) == set(FLAGS)
    assert (listed["strict_safety"]["value"], listed["strict_safety"]["actor"]) == (True, "ada")
    assert (listed["canary"]["set"], listed["answer_mode"]["value"]) == (False, "answer")
    assert cli("flags", "history", "pin") == 0
    assert "no changes of pin yet" in capsys.readouterr().out


@pytest.mark.usefixtures("home_store")
def test_one_json_object_sets_a_flag_and_its_types_are_strict(capsys):
    assert cli("flags", "set", "shadow", '{"version": "4", "percent": 5}',
               "--reason", "shadow v4") == 0
    assert cli("flags", "set", "shadow", '{"version": 4, "percent": 5}',
               "--reason", "shadow v4") == 2
    err = capsys.readouterr().err
    assert "shadow.version" in err and 'quote it, "3"' in err
    assert len(history_json(capsys)) == 1


def test_the_database_refuses_update_and_delete(store):
    store.set("pin", {"version": "2"}, actor="ada", reason="pin")
    for statement in ("UPDATE serving_flags SET actor = 'mallory'", "DELETE FROM serving_flags"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), \
                store._engine.begin() as connection:
            connection.execute(sa.text(statement))
    assert [(c.actor, c.value) for c in store.history()] == [("ada", {"version": "2"})]


BAD_INPUTS = [
    (["set", "colour", "red"], "no flag called 'colour'", "canary, answer_mode"),
    (["set", "canary", "version=3", "percent=120"], "canary.percent", "0 to 100"),
    (["set", "canary", "version=3", "percent=10", "colour=red"], "canary.colour",
     "its fields: version, percent, sticky"),
    (["set", "canary", "version=abc", "percent=10"], "canary.version", "version number"),
    (["set", "canary", "version=3"], "canary needs 'percent'", "percent=10"),
    (["set", "canary", "version=3", "percent=10", "sticky=device"], "canary.sticky",
     "user or session"),
    (["set", "answer_mode", "poetry"], "answer_mode", "answer, facts"),
    (["set", "strict_safety", "maybe"], "strict_safety", "on or off"),
    (["set", "pin", "3"], "'3' is not KEY=VALUE", "pin version=3"),
    (["set", "pin", "{not json"], "not valid JSON", "pin version=3"),
    (["clear", "pin"], "flag 'pin' is not set", "nothing to clear"),
]


@pytest.mark.parametrize(("argv", "field", "words"), BAD_INPUTS,
                         ids=[" ".join(case[0]) for case in BAD_INPUTS])
def test_bad_input_exits_2_naming_the_field_and_writes_nothing(home_store, capsys, argv,
                                                               field, words):
    assert cli("flags", *argv, "--reason", "a reason") == 2
    err = capsys.readouterr().err
    assert field in err and words in err and "fix:" in err
    if argv[0] == "set":
        assert not home_store.exists()  # checked before the store is even opened


def test_an_empty_reason_or_actor_exits_2_and_writes_nothing(home_store, capsys):
    assert cli("flags", "set", "pin", "version=2", "--reason", "first") == 0
    assert cli("flags", "set", "pin", "version=3", "--reason", "  ") == 2
    assert "field '--reason'" in capsys.readouterr().err
    assert cli("flags", "set", "pin", "version=3", "--reason", "why", "--by", "") == 2
    assert "field '--by'" in capsys.readouterr().err
    assert [row["reason"] for row in history_json(capsys)] == ["first"]
    with pytest.raises(PlimsollError, match="no reason"):
        FlagStore(f"sqlite:///{home_store}").set("pin", {"version": "3"}, actor="a",
                                                 reason="")


def test_list_and_history_without_a_store_say_so_and_create_nothing(home_store, capsys):
    for argv in (["list"], ["history"]):
        assert cli("flags", *argv) == 2
        err = capsys.readouterr().err
        assert "field '--ledger-url'" in err and "no flag store at" in err
        assert "first `plimsoll flags set`" in err
    assert not home_store.exists()


def test_a_read_only_store_is_refused_clearly_and_keeps_its_rows(store, capsys):
    store.set("pin", {"version": "2"}, actor="ada", reason="pin")
    path = store.url.removeprefix("sqlite:///")
    read_only = f"sqlite:///file:{path}?mode=ro&uri=true"
    assert cli("flags", "set", "pin", "version=3", "--reason", "r", "--ledger-url",
               read_only) == 2
    err = capsys.readouterr().err
    assert "field '--ledger-url'" in err and "flag store" in err and "writable" in err
    with pytest.raises(FlagStoreError, match="writable"):
        FlagStore(read_only).clear("pin", actor="ada", reason="r")
    assert [c.value for c in store.history()] == [{"version": "2"}]


def file_modes_bind_this_user(folder) -> bool:
    """False for root (or CAP_DAC_OVERRIDE), which writes through file modes."""
    probe = folder / "probe"
    probe.write_text("")
    probe.chmod(0o444)
    try:
        probe.open("a").close()
    except PermissionError:
        return True
    finally:
        probe.chmod(0o644)
        probe.unlink()
    return False


def test_a_read_only_sqlite_file_is_refused_clearly(tmp_path, capsys):
    if not file_modes_bind_this_user(tmp_path):
        pytest.skip("this user writes through file modes (root)")
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "ledger.sqlite"
    FlagStore(f"sqlite:///{path}").set("pin", {"version": "2"}, actor="ada", reason="pin")
    path.chmod(0o444)
    folder.chmod(0o555)
    try:
        assert cli("flags", "set", "pin", "version=3", "--reason", "r", "--ledger-url",
                   f"sqlite:///{path}") == 2
        assert "writable" in capsys.readouterr().err
        assert [c.value for c in FlagStore(f"sqlite:///{path}", create=False).history()] == \
            [{"version": "2"}]
    finally:
        folder.chmod(0o755)
        path.chmod(0o644)


def test_two_writers_of_one_flag_at_once_leave_one_unforked_chain(url):
    FlagStore(url).close()  # the table exists before the race starts
    rounds, writers = 15, 2
    start = threading.Barrier(writers)
    failures = []

    def write(writer):
        flag_store = FlagStore(url)
        try:
            for n in range(rounds):
                start.wait()
                flag_store.set("canary", {"version": "3", "percent": writer * 50 + n},
                               actor=f"writer-{writer}", reason=f"round {n}")
        except Exception as exc:  # reported below, with the chain
            failures.append(exc)
            start.abort()
        finally:
            flag_store.close()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    chain = FlagStore(url).history("canary")
    assert len(chain) == rounds * writers
    assert chain[0].follows == 0 and chain[0].previous is None
    for before, after in itertools.pairwise(chain):
        assert after.follows == before.change_id
        assert after.previous == before.value



def rival_writes_after_each_read(monkeypatch, loser, rival, times):
    """Make `rival` append between `loser`'s read of the head and its insert."""
    real = FlagStore._latest
    remaining = [times]

    def read_then_lose(self, name):
        found = real(self, name)
        if self is loser and remaining[0] > 0:
            remaining[0] -= 1
            rival.set(name, {"version": str(100 + remaining[0])}, actor="bob",
                      reason="rival")
        return found

    monkeypatch.setattr(FlagStore, "_latest", read_then_lose)


def test_a_writer_that_loses_the_race_records_the_winners_value_as_old(store, url,
                                                                       monkeypatch):
    store.set("pin", {"version": "1"}, actor="ada", reason="first")
    rival = FlagStore(url)
    rival_writes_after_each_read(monkeypatch, store, rival, times=1)
    change = store.set("pin", {"version": "3"}, actor="ada", reason="mine")
    assert change.previous == {"version": "100"}  # the rival's, not the "1" it first read
    assert [c.value["version"] for c in store.history("pin")] == ["1", "100", "3"]


def test_a_writer_that_keeps_losing_gives_up_and_adds_nothing(store, url, monkeypatch):
    from plimsoll.serving.flags import CHAIN_ATTEMPTS, FlagConflict

    rival = FlagStore(url)
    rival_writes_after_each_read(monkeypatch, store, rival, times=CHAIN_ATTEMPTS)
    with pytest.raises(FlagConflict, match="other writers"):
        store.set("pin", {"version": "3"}, actor="ada", reason="mine")
    assert {c.actor for c in store.history()} == {"bob"}

def test_the_help_describes_every_declared_flag(capsys):
    from plimsoll.cli import flags as flags_cli

    for name in FLAGS:
        assert f"\n  {name} " in flags_cli.DESCRIPTION
    with pytest.raises(SystemExit) as exit_:
        cli("flags", "set", "--help")
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "plimsoll flags set canary version=3 percent=10" in out and "--reason" in out


def test_the_postgresql_store_chains_refuses_rewrites_and_feeds_a_router(postgres_url,
                                                                         routers):
    store = FlagStore(postgres_url)
    store.set("canary", {"version": "3", "percent": 100}, actor="ada", reason="canary v3")
    store.set("pin", {"version": "2"}, actor="ada", reason="pin v2")
    store.clear("pin", actor="bob", reason="unpin")
    assert set(store.current()) == {"canary"}
    assert [c.follows for c in store.history("pin")] == [0, store.history("pin")[0].change_id]
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), \
            store._engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM serving_flags"))
    again = FlagStore(postgres_url)  # a second opener finds the table and trigger in place
    router = routers(again)
    router.refresh()
    decision = router.decide(user="u", session=None, request_id="r")
    assert (decision.version, decision.route) == ("3", "canary")
    assert router.status()["head"] == store.head() == 3
    store.close()

