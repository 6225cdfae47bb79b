"""The slice check history: every run of a slice's checks, where the gateway can read it."""

import logging
import sqlite3
import threading
from datetime import timedelta

import dagster as dg
import pytest
from conftest import FAQ_ROWS, QUIET, write_jsonl

# The Dagster fixtures and helpers of the asset tests, so both materialise the same way.
from test_dagster_assets import _metadata, _slice, definitions, instance  # noqa: F401

from plimsoll.datasets.check_history import CheckHistoryError, SliceCheckHistory
from plimsoll.datasets.checks import SLICE_CHECKS
from plimsoll.datasets.validation import CheckOutcome

HASH_A, HASH_B = "a" * 64, "b" * 64


def outcomes(rows=6, failing=()):
    """One outcome per slice check; the named checks fail on their first two rows."""
    return [CheckOutcome(spec=spec, passed=spec.name not in failing,
                         failing_count=2 if spec.name in failing else 0, row_count=rows,
                         sample_failing_ids=("doc-0", "doc-0") if spec.name in failing else ())
            for spec in SLICE_CHECKS]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def history(store_url):
    opened = SliceCheckHistory(store_url)
    yield opened
    opened.close()


def test_the_latest_run_of_each_slice_wins_and_other_slices_are_unaffected(history):
    history.record("faq", HASH_A, outcomes())
    notes = history.record("notes", HASH_A, outcomes(rows=2))
    failed = history.record("faq", HASH_B, outcomes(rows=7, failing=("ids_unique",)))

    latest = history.latest(["faq", "notes", "never_checked"])
    assert set(latest) == {"faq", "notes"}
    assert latest["faq"] == failed and latest["notes"] == notes
    faq = latest["faq"]
    assert (faq.passed, faq.content_hash, faq.row_count) == (False, HASH_B, 7)
    assert faq.failures.startswith("ids_unique: 2 of 7 rows fail (sample ids: doc-0, doc-0)")
    assert "fix: make ids unique" in faq.failures
    assert faq.at.tzinfo is not None and faq.at.utcoffset() == timedelta(0)
    assert (latest["notes"].passed, latest["notes"].failures) == (True, "")

    fixed = history.record("faq", HASH_A, outcomes())
    assert history.latest(["faq"]) == {"faq": fixed}
    assert history.latest(["notes"]) == {"notes": notes}
    assert history.latest([]) == {}


def test_every_failed_check_is_in_the_failures(history):
    run = history.record("faq", HASH_A, outcomes(failing=("ids_unique", "text_not_null")))
    assert run.failures.split("; ")[0].startswith("text_not_null: ")  # in SLICE_CHECKS order
    assert "; ids_unique: " in run.failures and "schema_and_types" not in run.failures


def test_a_run_without_checks_is_refused(history):
    with pytest.raises(ValueError, match="no check outcomes for slice 'faq'"):
        history.record("faq", HASH_A, [])
    assert history.latest(["faq"]) == {}


def test_the_database_refuses_to_rewrite_a_run(history):
    import sqlalchemy as sa

    history.record("faq", HASH_B, outcomes(failing=("ids_unique",)))
    engine = sa.create_engine(history.url)
    for statement in ("UPDATE slice_check_runs SET passed = TRUE, failures = ''",
                      "DELETE FROM slice_check_runs"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as c:
            c.execute(sa.text(statement))
    engine.dispose()
    assert history.latest(["faq"])["faq"].passed is False


def test_two_writers_at_once_both_append(store_url):
    SliceCheckHistory(store_url).close()  # the table exists before the race, as in a deployment
    barrier, runs, errors = threading.Barrier(2), [], []

    def record(content_hash):
        writer = SliceCheckHistory(store_url)
        barrier.wait()
        try:
            runs.append(writer.record("faq", content_hash, outcomes()))
        except Exception as exc:  # reported below, not lost in the thread
            errors.append(exc)
        finally:
            writer.close()

    threads = [threading.Thread(target=record, args=(h,)) for h in (HASH_A, HASH_B)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == [] and len(runs) == 2
    reader = SliceCheckHistory(store_url, create=False)
    assert reader.latest(["faq"])["faq"] == max(runs, key=lambda run: run.entry_id)
    reader.close()


def test_a_read_only_store_refuses_to_record_and_writes_nothing(tmp_path):
    path = tmp_path / "ledger.sqlite"
    writable = SliceCheckHistory(f"sqlite:///{path}")
    before = writable.record("faq", HASH_A, outcomes())
    writable.close()

    read_only = SliceCheckHistory(f"sqlite:///file:{path}?mode=ro&uri=true")
    with pytest.raises(CheckHistoryError) as caught:
        read_only.record("faq", HASH_B, outcomes(failing=("ids_unique",)))
    error = caught.value
    assert "could not write to the slice check history" in error.problem
    assert error.field == "$PLIMSOLL_LEDGER_URL"
    assert "make the slice check history writable" in error.fix
    assert "nothing was changed" in error.fix
    assert read_only.latest(["faq"]) == {"faq": before}
    read_only.close()


def test_a_reader_creates_nothing(tmp_path):
    missing = tmp_path / "typo.sqlite"
    with pytest.raises(CheckHistoryError) as caught:
        SliceCheckHistory(f"sqlite:///{missing}", create=False)
    assert "no slice check history at" in caught.value.problem and not missing.exists()
    assert "nothing was created" in caught.value.fix

    empty = tmp_path / "ledger.sqlite"
    sqlite3.connect(empty).close()  # the ledger's database, before any slice was checked
    reader = SliceCheckHistory(f"sqlite:///{empty}", create=False)
    assert reader.latest(["faq"]) == {}
    reader.close()
    with sqlite3.connect(empty) as connection:
        assert connection.execute("SELECT name FROM sqlite_master").fetchall() == []


def test_a_url_that_is_not_a_database_names_the_variable_and_the_fix():
    with pytest.raises(CheckHistoryError) as caught:
        SliceCheckHistory("mysql://somewhere/ledger")
    assert caught.value.field == "$PLIMSOLL_LEDGER_URL"
    assert "SQLite or PostgreSQL" in caught.value.problem


def _history(code_location):
    """What the gateway reads: the history in the promotion resource's store, opened to read."""
    return SliceCheckHistory(code_location.resources["promotion"].ledger_url, create=False)


def test_materialising_a_passing_slice_records_its_run(definitions, instance):  # noqa: F811
    result = _slice(definitions, instance, "faq")
    assert result.success
    metadata = _metadata(result, "dataset_slice")
    assert metadata["checks_recorded"] is True

    history = _history(definitions)
    latest = history.latest(["faq", "notes"])
    assert set(latest) == {"faq"}  # notes was never materialised
    run = latest["faq"]
    assert (run.passed, run.failures) == (True, "")
    assert (run.content_hash, run.row_count) == (metadata["content_hash"], len(FAQ_ROWS))
    history.close()


def test_materialising_a_failing_slice_records_what_failed(
        home, manifests, definitions, instance):  # noqa: F811
    assert _slice(definitions, instance, "faq").success
    write_jsonl(manifests / "sources" / "faq.jsonl", [*FAQ_ROWS, FAQ_ROWS[0]])
    result = _slice(definitions, instance, "faq")
    assert not result.success  # a blocking check failed
    metadata = _metadata(result, "dataset_slice")
    assert metadata["published"] is False and metadata["checks_recorded"] is True

    history = _history(definitions)
    run = history.latest(["faq"])["faq"]
    assert run.passed is False and run.content_hash == metadata["content_hash"]
    assert run.row_count == len(FAQ_ROWS) + 1
    assert run.failures.startswith("ids_unique: 2 of 7 rows fail (sample ids: doc-0, doc-0)")
    history.close()

    from plimsoll.common.home import HomeLayout
    from plimsoll.datasets.store import SliceStore

    published = SliceStore(HomeLayout(home).dvc_workspace, "unused").published("faq")
    assert published.row_count == len(FAQ_ROWS)  # the last good version stays current


def test_a_store_that_cannot_record_warns_and_the_slice_is_still_published(
        home, tmp_path, definitions, instance):  # noqa: F811
    from platform_defs.resources import PromotionSettings

    unwritable = tmp_path / "read-only.sqlite"
    sqlite3.connect(unwritable).close()
    promotion = definitions.resources["promotion"]
    resources = {**definitions.resources, "promotion": PromotionSettings(
        policy_path=promotion.policy_path,
        ledger_url=f"sqlite:///file:{unwritable}?mode=ro&uri=true")}
    result = dg.materialize([definitions.get_assets_def("dataset_slice")], partition_key="faq",
                            instance=instance, resources=resources, run_config=QUIET)
    assert result.success
    metadata = _metadata(result, "dataset_slice")
    assert metadata["published"] is True and metadata["checks_recorded"] is False
    assert all(check.passed for check in result.get_asset_check_evaluations())
    warnings = [entry.user_message for entry in instance.all_logs(result.run_id)
                if entry.level == logging.WARNING]
    assert any("were not recorded in the slice check history" in message
               and "$PLIMSOLL_LEDGER_URL" in message for message in warnings), warnings

    from plimsoll.common.home import HomeLayout
    from plimsoll.datasets.store import SliceStore

    assert SliceStore(HomeLayout(home).dvc_workspace, "unused").published("faq").row_count == 6
