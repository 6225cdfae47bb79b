"""Faults on the release path: a ledger that cannot be written or is raced, a process killed
between the alias move and the ledger, registry servers that refuse, hang or answer 404."""

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import REPO_ROOT

from plimsoll.release.aliases import AliasStoreError, RestAliases, SqlAliases
from plimsoll.release.ledger import LedgerConflict, PromotionLedger
from plimsoll.release.lineage_record import LineageRecords
from plimsoll.release.promotion import CHAMPION, MoveInProgress, Promoter, PromotionError
from plimsoll.release.registry import DIGEST_TAG, LINEAGE_PREFIX, lineage_digest, lineage_tags

MODEL = "m"
PLIMSOLL = [sys.executable, "-m", "plimsoll.cli"]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A real MLflow store with versions 1-4 of MODEL and their lineage records."""
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("release-template")
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    records = LineageRecords(f"sqlite:///{root / 'ledger.sqlite'}", key=b"")
    client.create_registered_model(MODEL)
    source = root / "model"
    source.mkdir()
    for number in range(1, 5):
        tags = lineage_tags({"trained_by": "tess", "seed": number})
        tags[DIGEST_TAG] = lineage_digest(tags)
        version = client.create_model_version(MODEL, source=str(source), tags=tags)
        records.record(MODEL, version.version, tags, ["tess"])
    records.close()
    return root


@pytest.fixture
def stores(template, tmp_path):
    for name in ("mlflow.db", "ledger.sqlite"):
        shutil.copy(template / name, tmp_path / name)
    return {"mlflow": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "ledger": f"sqlite:///{tmp_path / 'ledger.sqlite'}", "dir": tmp_path}


def promoter_for(stores, ledger_url=None, **kwargs) -> Promoter:
    ledger = PromotionLedger(ledger_url or stores["ledger"])
    return Promoter(None, ledger, None, MODEL, aliases=SqlAliases(stores["mlflow"]),
                    records=LineageRecords(stores["ledger"]), **kwargs)


def promote(promoter, *versions):
    for version in versions:
        promoter._move_champion(str(version), action="promote", actor="rita",
                                reason="approved by rita", digest="d")


def test_a_read_only_ledger_moves_nothing(stores):
    promote(promoter_for(stores), 1, 2)
    path = stores["dir"] / "ledger.sqlite"
    read_only = promoter_for(stores, f"sqlite:///file:{path}?mode=ro&uri=true")
    rows = read_only.ledger.rows(MODEL)
    with pytest.raises(PromotionError, match="cannot be written, so champion was not moved"):
        read_only.rollback(actor="oncall")
    assert read_only.alias(CHAMPION) == "2"
    assert read_only.ledger.rows(MODEL) == rows


KILLED_AFTER_ALIAS_MOVE = """
import os, sys
from plimsoll.release.ledger import PromotionLedger
real = PromotionLedger.append
def append(self, **row):
    if row.get("status") == "done":
        os._exit(9)  # the process dies after the alias moved, before the ledger knows
    return real(self, **row)
PromotionLedger.append = append
from plimsoll.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def run_cli(stores, *args, script=None, cwd=None, env=None):
    command = [sys.executable, "-c", script, *args] if script else [*PLIMSOLL, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120,
                          cwd=cwd or REPO_ROOT, env={
                              **os.environ, "PLIMSOLL_HOME": str(stores["dir"]),
                              "MLFLOW_TRACKING_URI": stores["mlflow"],
                              "PLIMSOLL_LEDGER_URL": stores["ledger"], **(env or {})})


def test_a_rollback_killed_after_the_alias_move_is_completed_by_the_next_one(stores):
    promote(promoter_for(stores), 1, 2, 3)
    killed = run_cli(stores, "rollback", "--model", MODEL, script=KILLED_AFTER_ALIAS_MOVE)
    assert killed.returncode == 9
    promoter = promoter_for(stores)
    assert promoter.alias(CHAMPION) == "2"
    (intent,) = promoter.ledger.open_intents(MODEL)
    assert (intent.from_version, intent.to_version) == ("3", "2")
    history = run_cli(stores, "history", "--model", MODEL)
    assert "[unfinished" in history.stdout

    again = run_cli(stores, "rollback", "--model", MODEL)
    assert again.returncode == 0, again.stderr
    assert "reconciled: ledger entry" in again.stdout and "completed on reconcile" in again.stdout
    assert "v2 → v1" in again.stdout  # along the completed history, not past it
    moves = [(e.from_version, e.to_version, e.action) for e in promoter.ledger.moves(MODEL)]
    assert moves == [(None, "1", "promote"), ("1", "2", "promote"), ("2", "3", "promote"),
                     ("3", "2", "rollback"), ("2", "1", "rollback")]
    assert promoter.ledger.open_intents(MODEL) == []


def test_an_alias_move_that_fails_is_recorded_as_reverted(stores, monkeypatch):
    promoter = promoter_for(stores)
    promote(promoter, 1, 2)
    real = promoter.aliases.set

    def refuse(model, alias, version):
        if alias == CHAMPION:
            raise AliasStoreError("MLflow store went away")
        return real(model, alias, version)

    monkeypatch.setattr(promoter.aliases, "set", refuse)
    with pytest.raises(AliasStoreError):
        promoter.rollback(actor="oncall")
    assert promoter.alias(CHAMPION) == "2"
    assert [e.status for e in promoter.ledger.rows(MODEL)][-2:] == ["intent", "reverted"]
    assert [e.to_version for e in promoter.ledger.entries(MODEL)] == ["1", "2"]
    assert promoter.ledger.open_intents(MODEL) == []


def test_an_unfinished_intent_whose_alias_never_moved_waits_out_its_lease(stores):
    promoter = promoter_for(stores)
    promote(promoter, 1, 2)
    promoter.ledger.append(model=MODEL, from_version="2", to_version="1", action="rollback",
                           actor="dead-writer", reason="r", lineage_digest="d",
                           status="intent")
    with pytest.raises(MoveInProgress, match="in progress: ledger entry"):
        promoter.rollback(actor="oncall")
    assert promoter.alias(CHAMPION) == "2"
    expired = promoter_for(stores, intent_lease_s=0)
    (outcome,) = expired.reconcile()
    assert outcome.action == "reverted" and "the alias never moved" in outcome.reason
    assert expired.rollback(actor="oncall").to_version == "1"


def test_two_writers_after_the_same_entry_cannot_fork_the_ledger(stores):
    ledger = PromotionLedger(stores["ledger"])
    head = ledger.head(MODEL)
    row = {"model": MODEL, "from_version": None, "to_version": "1", "action": "promote",
           "actor": "a", "reason": "r", "lineage_digest": "d", "after": head}
    ledger.append(**row)
    with pytest.raises(LedgerConflict, match="another writer"):
        ledger.append(**row)
    assert len(ledger.rows(MODEL)) == 1


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_two_promotions_at_once_write_one_move(stores, kind, request):
    url = stores["ledger"] if kind == "sqlite" else request.getfixturevalue("postgres_url")
    records = LineageRecords(url)
    tags = SqlAliases(stores["mlflow"]).version_tags(MODEL, "1")
    if kind == "postgres":
        records.record(MODEL, "1", tags, ["tess"])
    barrier, results = threading.Barrier(2), []

    def approve():
        promoter = Promoter(None, PromotionLedger(url), None, MODEL,
                            aliases=SqlAliases(stores["mlflow"]), records=records)
        barrier.wait()
        try:
            results.append(promoter._move_champion("1", action="promote", actor="rita",
                                                   reason="approved", digest="d").entry_id)
        except (LedgerConflict, MoveInProgress) as exc:
            results.append(type(exc).__name__)

    threads = [threading.Thread(target=approve) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    ledger = PromotionLedger(url)
    assert [(e.to_version, e.action) for e in ledger.moves(MODEL)] == [("1", "promote")]
    assert len(results) == 2 and ledger.open_intents(MODEL) == []


def test_an_edited_lineage_tag_with_a_recomputed_digest_fails_the_record(stores):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=stores["mlflow"])
    tags = dict(client.get_model_version(MODEL, "1").tags)
    tags[LINEAGE_PREFIX + "trained_by"] = "mallory"
    client.set_model_version_tag(MODEL, "1", LINEAGE_PREFIX + "trained_by", "mallory")
    client.set_model_version_tag(MODEL, "1", DIGEST_TAG, lineage_digest(tags))
    _record, problems = LineageRecords(stores["ledger"]).check(
        MODEL, "1", dict(client.get_model_version(MODEL, "1").tags), "plimsoll.lineage")
    assert any("trained_by was edited" in p for p in problems)
    promoter = promoter_for(stores)
    promote(promoter, 1, 2)
    with pytest.raises(PromotionError, match="does not match its record"):
        promoter.rollback(to_version="1", actor="oncall")
    assert promoter.alias(CHAMPION) == "2"


def test_a_record_forged_without_the_signing_key_is_refused(tmp_path):
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'records.sqlite'}"
    signed = LineageRecords(url, key=b"the-real-key")
    tags = {LINEAGE_PREFIX + "trained_by": "tess"}
    signed.record(MODEL, "1", tags, ["tess"])
    assert signed.check(MODEL, "1", tags, LINEAGE_PREFIX)[1] == []
    engine = sa.create_engine(url)
    with engine.begin() as connection:  # someone with the database's owner rights
        connection.execute(sa.text("DROP TRIGGER lineage_records_no_update"))
        connection.execute(sa.text("UPDATE lineage_records SET trainers = '[\"mallory\"]'"))
    problems = signed.check(MODEL, "1", tags, LINEAGE_PREFIX)[1]
    assert any("signature does not match" in p for p in problems)
    forged = LineageRecords(url, key=b"a-guess")
    forged.record(MODEL, "2", tags, ["tess"])
    assert any("signature does not match" in p for p in signed.check(MODEL, "2", tags,
                                                                     LINEAGE_PREFIX)[1])
    unsigned = LineageRecords(url, key=b"")
    unsigned.record(MODEL, "3", tags, ["tess"])
    assert any("unsigned" in p for p in signed.check(MODEL, "3", tags, LINEAGE_PREFIX)[1])


@pytest.fixture
def fake_server():
    """A loopback socket server answering each request with a canned behaviour."""
    servers = []

    def start(behaviour):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        servers.append(listener)

        def serve():
            while True:
                try:
                    connection, _ = listener.accept()
                except OSError:
                    return
                connection.recv(65536)
                if behaviour == "hang":
                    servers.append(connection)  # keep it open, never answer
                    continue
                status, body = {"404": ("404 Not Found", b'{"error_code": '
                                        b'"RESOURCE_DOES_NOT_EXIST", "message": "gone"}'),
                                "html": ("200 OK", b"<html>hello</html>")}[behaviour]
                connection.sendall(b"HTTP/1.1 " + status.encode() + b"\r\nContent-Length: " +
                                   str(len(body)).encode() + b"\r\n\r\n" + body)
                connection.close()

        threading.Thread(target=serve, daemon=True).start()
        return f"http://127.0.0.1:{listener.getsockname()[1]}"

    yield start
    for server in servers:
        server.close()


@pytest.mark.parametrize(("behaviour", "message"), [
    ("refuse", "cannot reach the MLflow server http://127.0.0.1:9"),
    ("hang", "did not answer within 1s"),
    ("404", "no registered model 'm'"),
    ("html", "is not an MLflow server"),
])
def test_the_fast_path_names_the_server_that_failed(fake_server, behaviour, message):
    url = "http://127.0.0.1:9" if behaviour == "refuse" else fake_server(behaviour)
    start = time.monotonic()
    with pytest.raises(AliasStoreError, match=message) as caught:
        RestAliases(url, timeout=1).get(MODEL, CHAMPION)
    assert time.monotonic() - start < 10
    assert "--tracking-uri" in caught.value.describe()


def test_a_rollback_to_a_missing_version_on_a_server_says_so(fake_server):
    with pytest.raises(AliasStoreError, match="version 7 is not registered"):
        RestAliases(fake_server("404"), timeout=1).version_tags(MODEL, "7")


def test_the_sql_fast_path_refuses_a_deleted_version(stores):
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=stores["mlflow"]).delete_model_version(MODEL, "3")
    aliases = SqlAliases(stores["mlflow"])
    with pytest.raises(AliasStoreError, match="deleted"):
        aliases.set(MODEL, CHAMPION, "3")
    assert aliases.get(MODEL, CHAMPION) is None


@pytest.mark.parametrize(("args", "env", "message", "created"), [
    (["rollback", "--model", MODEL], {"PLIMSOLL_LEDGER_URL": "sqlite:///{dir}/ledgr.sqlite"},
     "no promotion ledger at", "ledgr.sqlite"),
    (["history", "--model", MODEL], {"PLIMSOLL_LEDGER_URL": "sqlite:///{dir}/nope/l.sqlite"},
     "folder {dir}/nope does not exist", "nope"),
    (["history"], {"PLIMSOLL_LEDGER_URL": "mysql://ledger"}, "must be SQLite or PostgreSQL",
     None),
    (["history"], {"PLIMSOLL_LEDGER_URL": "not a url"}, "is not a database URL", None),
    (["status", "--tracking-uri", "sqlite:///{dir}/mlfow.db"], {}, "no MLflow store at",
     "mlfow.db"),
    (["rollback", "--model", MODEL, "--tracking-uri", "sqlite:///{dir}/ledger.sqlite"], {},
     "is not an MLflow store", None),
    (["review", "1", "approved", "--by", "  "], {}, "reviewer's name is empty", None),
    (["index", "query", "hello", "-k", "0"], {}, "out of range", None),
    (["index", "query", "  "], {}, "the question is empty", None),
])
def test_bad_release_commands_exit_2_and_create_nothing(stores, args, env, message, created):
    directory = stores["dir"]
    fill = {"dir": directory}
    result = run_cli(stores, *[a.format(**fill) for a in args],
                     env={k: v.format(**fill) for k, v in env.items()})
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message.format(**fill) in result.stderr
    assert "Traceback" not in result.stderr
    if created:
        assert not (directory / created).exists()


def test_rollback_works_from_another_directory_with_a_broken_policy(stores, tmp_path):
    promote(promoter_for(stores), 1, 2)
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: [\n")
    result = run_cli(stores, "rollback", "--model", MODEL, cwd="/",
                     env={"PLIMSOLL_POLICY": str(broken)})
    assert result.returncode == 0, result.stderr
    assert "v2 → v1" in result.stdout
    wrong = run_cli(stores, "rollback", "--model", MODEL, "--to", "banana")
    assert wrong.returncode == 2 and "version banana has never been champion" in wrong.stderr


def test_review_by_the_trainer_warns_that_the_sensor_will_refuse_it(stores):
    result = run_cli(stores, "review", "1", "approved", "--by", " TESS ", "--model", MODEL)
    assert result.returncode == 0, result.stderr
    assert "warning: TESS trained m version 1" in result.stderr
    assert "refuse this as self-approval" in result.stderr


def test_an_unexpected_error_says_what_was_being_done(capsys):
    from plimsoll.common.boundary import doing, run_guarded

    def body():
        with doing("moving the champion alias"):
            raise KeyError("workspace")

    assert run_guarded("plimsoll", body) == 3
    message = capsys.readouterr().err
    assert "unexpected error while moving the champion alias: KeyError" in message
    assert "rerun with --debug" in message and "Traceback" not in message
    assert run_guarded("plimsoll", body, debug=True) == 3
    assert "Traceback" in capsys.readouterr().err


def test_history_json_shows_the_chain(stores):
    promote(promoter_for(stores), 1, 2)
    result = run_cli(stores, "history", "--model", MODEL, "--json")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["to"], r["status"]) for r in rows] == [("1", "done"), ("2", "done")]
    assert rows[1]["follows"] > rows[0]["follows"]


def test_project_files_resolve_from_any_directory(tmp_path, monkeypatch):
    from plimsoll.common.project import project_dir, project_path

    monkeypatch.delenv("PLIMSOLL_PROJECT_DIR", raising=False)
    monkeypatch.chdir(REPO_ROOT / "plimsoll")
    assert project_dir() == REPO_ROOT
    monkeypatch.chdir(tmp_path)
    assert project_path("policies/slos.yaml") == REPO_ROOT / "policies" / "slos.yaml"
    monkeypatch.setenv("PLIMSOLL_PROJECT_DIR", str(tmp_path))
    assert project_path("policies/slos.yaml") == tmp_path / "policies" / "slos.yaml"
    assert project_path(Path("/abs/x.yaml")) == Path("/abs/x.yaml")


def test_the_default_home_is_the_projects_from_any_directory(tmp_path, monkeypatch):
    from plimsoll.common.home import resolve_home

    monkeypatch.delenv("PLIMSOLL_HOME", raising=False)
    monkeypatch.delenv("PLIMSOLL_PROJECT_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert resolve_home() == REPO_ROOT / ".plimsoll"


@pytest.mark.parametrize(("error", "message"), [
    (PermissionError(13, "Permission denied", "/srv/plimsoll/ledger.sqlite"), "writable"),
    (OSError(30, "Read-only file system", "/srv/plimsoll"), "read-only"),
    (NotADirectoryError(20, "Not a directory", "/tmp/afile/home"), "is a file"),
])
def test_a_machine_fault_with_a_path_is_a_clear_error(capsys, error, message):
    from plimsoll.common.boundary import run_guarded

    def body():
        raise error

    assert run_guarded("plimsoll", body) == 2
    said = capsys.readouterr().err
    assert error.filename in said and message in said and "Traceback" not in said


def test_a_rollback_to_a_deleted_version_on_the_fast_path_says_so_and_changes_nothing(stores):
    from mlflow.tracking import MlflowClient

    promoter = promoter_for(stores)
    promote(promoter, 1, 2, 3)
    MlflowClient(tracking_uri=stores["mlflow"]).delete_model_version(MODEL, "2")
    rows = promoter.ledger.rows(MODEL)
    for target in (None, "2"):  # back along the ledger, and named
        with pytest.raises(AliasStoreError, match=r"version 2 is not registered \(it was "
                           "deleted\\)") as caught:
            promoter.rollback(to_version=target, actor="oncall")
        assert "nothing was changed" in caught.value.fix
        assert promoter.alias(CHAMPION) == "3"
        assert promoter.ledger.rows(MODEL) == rows


def test_the_sql_fast_path_reads_and_moves_only_its_own_workspace(stores):
    import sqlalchemy as sa

    engine = sa.create_engine(stores["mlflow"])
    with engine.begin() as connection:  # the same model name in another workspace
        connection.execute(sa.text(
            "INSERT INTO registered_models (workspace, name, creation_time, last_updated_time)"
            " VALUES ('other', :name, 0, 0)"), {"name": MODEL})
        connection.execute(sa.text(
            "INSERT INTO registered_model_aliases (workspace, name, alias, version) "
            "VALUES ('other', :name, 'champion', 4)"), {"name": MODEL})
    aliases = SqlAliases(stores["mlflow"])
    assert aliases.get(MODEL, CHAMPION) is None
    aliases.set(MODEL, CHAMPION, "1")
    assert aliases.get(MODEL, CHAMPION) == "1"
    with engine.connect() as connection:
        rows = connection.execute(sa.text(
            "SELECT workspace, version FROM registered_model_aliases ORDER BY workspace")).all()
    assert [tuple(row) for row in rows] == [("default", 1), ("other", 4)]


def test_an_unknown_schema_revision_uses_the_mlflow_client_and_says_so(stores, monkeypatch):
    from plimsoll.release import aliases
    from plimsoll.release.aliases import MlflowAliases, SlowerPathWarning, fast_aliases

    # A store of a revision this MLflow knows and the fast path was not checked against.
    revision = SqlAliases(stores["mlflow"]).revision
    monkeypatch.setattr(aliases, "KNOWN_REVISIONS", frozenset({"0123456789ab"}))
    with pytest.raises(aliases.UnknownSchema, match=f"schema revision {revision}"):
        SqlAliases(stores["mlflow"])
    with pytest.warns(SlowerPathWarning, match=f"{revision}.*using the MLflow client"):
        backend = fast_aliases(stores["mlflow"])
    assert isinstance(backend, MlflowAliases)
    backend.set(MODEL, CHAMPION, "2")  # the slower path does the move
    assert backend.get(MODEL, CHAMPION) == "2"


def test_a_store_of_a_revision_mlflow_does_not_know_is_refused_naming_the_store(stores):
    import sqlalchemy as sa

    from plimsoll.release.aliases import SlowerPathWarning, fast_aliases
    from plimsoll.release.registry import RegistryError

    engine = sa.create_engine(stores["mlflow"])
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = 'f00dfeed0001'"))
    with pytest.warns(SlowerPathWarning, match="f00dfeed0001"), \
            pytest.raises(RegistryError, match="f00dfeed0001") as caught:
        fast_aliases(stores["mlflow"])
    assert stores["mlflow"] in caught.value.describe()
