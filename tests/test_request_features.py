import dataclasses
import json
import logging
import os
import sqlite3
import threading
import time
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from plimsoll.common.sql import StoreError
from plimsoll.observability.features import (
    FeatureRecorder,
    RequestFeatures,
    RequestFeatureStore,
    RequestFeatureStoreError,
    Vocabulary,
    encoder_vocabulary,
    extract_features,
    signals_by_version,
    snapshot_centroid,
)

MODEL = "plimsoll-docs-assistant"
START = datetime(2026, 11, 3, 9, 30, tzinfo=UTC)


def features(question="how do I split a string?", answer="Use str.split.", **overrides):
    arguments = dict(request_id="req-1", at=START, model=MODEL, model_version="3",
                     route="champion", abstained=False, refused=False, guard_flagged=False,
                     fallback=None, cited_doc_ids=["doc-4", "doc-5"], latency_ms=12.5,
                     cpu_ms=9.0)
    arguments.update(overrides)
    return extract_features(question, answer, **arguments)


def row(n: int, **overrides) -> RequestFeatures:
    base = features(request_id=f"req-{n}", at=START + timedelta(minutes=n))
    return dataclasses.replace(base, **overrides)


@pytest.fixture
def store_url(tmp_path):
    return f"sqlite:///{tmp_path / 'promotion_ledger.sqlite'}"


# Extraction.

@pytest.mark.parametrize(("question", "shares", "words"), [
    ("How do I sort a list?", {"latin": 1.0}, 6),
    ("Как отсортировать список?", {"cyrillic": 1.0}, 3),
    ("如何排序列表", {"cjk": 1.0}, 1),  # no spaces: one word
    ("ソートの方法は？", {"cjk": 1.0}, 1),  # kana are grouped with CJK
    ("정렬 방법", {"cjk": 1.0}, 2),
    ("كيف أرتب قائمة", {"arabic": 1.0}, 3),
    ("Πώς ταξινομώ", {"other": 1.0}, 2),
    ("sort список", {"latin": 0.4, "cyrillic": 0.6}, 2),
    ("café naïve", {"latin": 1.0}, 2),  # accented letters are Latin
    ("😀😀 sort?", {"latin": 1.0}, 1),  # emoji are not letters
    ("🙂🙂🙂", {}, 0),
    ("   ", {}, 0),
    ("12345 !!", {}, 1),
    ("", {}, 0),
])
def test_script_mix_counts_letters_only(question, shares, words):
    got = features(question)
    assert got.question_chars == len(question) and got.question_words == words
    expected = {"latin": 0.0, "cyrillic": 0.0, "cjk": 0.0, "arabic": 0.0, "other": 0.0,
                **shares}
    assert {"latin": got.latin_share, "cyrillic": got.cyrillic_share, "cjk": got.cjk_share,
            "arabic": got.arabic_share, "other": got.other_share} == pytest.approx(expected)


def test_features_keep_no_text():
    question, answer = "where is the secret rollback lever?", "Run plimsoll rollback."
    got = features(question, answer, cited_doc_ids=["doc-9"])
    values = dataclasses.asdict(got)
    assert question not in values.values() and answer not in values.values()
    assert (got.answer_chars, got.citations, got.top_cited_doc) == (len(answer), 1, "doc-9")
    assert features(cited_doc_ids=[]).top_cited_doc is None


def test_oov_rate_against_a_vocabulary():
    vocab = Vocabulary(frozenset({"how", "to", "split", "a", "string"}), lowercase=True)
    assert features("How to split a string", vocab=vocab).oov_rate == 0.0
    assert features("How to frobnicate a string", vocab=vocab).oov_rate == pytest.approx(1 / 5)
    assert features("How to split", vocab={"how", "to"}).oov_rate == pytest.approx(2 / 3)
    assert features("How to split").oov_rate is None  # no vocabulary: not measured
    assert features("!!!", vocab=vocab).oov_rate == 0.0


def test_oov_rate_with_the_bundled_encoders_wordpiece_vocabulary(encoder_dir):
    vocab = encoder_vocabulary(encoder_dir.path)
    assert vocab is not None and vocab.lowercase
    assert "[CLS]" not in vocab.words and not any(w.startswith("##") for w in vocab.words)
    assert features("How do I split a string", vocab=vocab).oov_rate == 0.0
    assert features("How do I qzxwvbt a string", vocab=vocab).oov_rate == pytest.approx(1 / 6)


def test_a_bpe_vocabulary_and_a_folder_without_one(tmp_path):
    (tmp_path / "vocab.json").write_text(json.dumps({"Ġsplit": 0, "Ġstring": 1, "ing": 2,
                                                     "ĠPython": 3}))
    vocab = encoder_vocabulary(tmp_path)
    assert vocab.words == {"split", "string", "Python"} and not vocab.lowercase
    assert features("split Python strings", vocab=vocab).oov_rate == pytest.approx(1 / 3)
    assert encoder_vocabulary(tmp_path / "nothing") is None


class _Snapshot:
    """What snapshot_centroid reads of an IndexSnapshot: its folder, and its FAISS index."""

    def __init__(self, path, index=None):
        self.path, self.index = path, index


def test_centroid_distance_to_the_snapshots_centroid(tmp_path):
    vectors = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0]], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    np.save(tmp_path / "vectors.npy", vectors)
    centroid = snapshot_centroid(_Snapshot(tmp_path), window=2)  # read in two windows
    assert centroid == pytest.approx(np.array([1, 1, 0]) / np.sqrt(2), abs=1e-6)
    assert np.linalg.norm(centroid) == pytest.approx(1.0)
    near = features(query_vector=np.array([1, 1, 0]), centroid=centroid)
    far = features(query_vector=np.array([0, 0, 1]), centroid=centroid)
    opposite = features(query_vector=np.array([-1, -1, 0]), centroid=centroid)
    assert near.centroid_distance == pytest.approx(0.0, abs=1e-6)
    assert far.centroid_distance == pytest.approx(1.0)
    assert opposite.centroid_distance == pytest.approx(2.0)
    # Unknown, never made up: no centroid, a zero query, a query of another width.
    assert features(query_vector=np.array([1, 0, 0])).centroid_distance is None
    assert features(query_vector=np.zeros(3), centroid=centroid).centroid_distance is None
    assert features(query_vector=np.ones(4), centroid=centroid).centroid_distance is None


def test_centroid_from_the_faiss_index_and_of_an_empty_snapshot(tmp_path):
    import faiss

    index = faiss.IndexFlatIP(2)
    index.add(np.array([[1, 0], [0, 1]], dtype=np.float32))
    assert snapshot_centroid(_Snapshot(tmp_path, index)) == pytest.approx(
        np.array([1, 1]) / np.sqrt(2), abs=1e-6)
    np.save(tmp_path / "vectors.npy", np.zeros((0, 2), dtype=np.float32))
    assert snapshot_centroid(_Snapshot(tmp_path)) is None


@pytest.mark.parametrize(("change", "message"), [
    ({"at": datetime(2026, 11, 3, 9, 30)}, "timezone-aware"),
    ({"fallback": "retry"}, "fallback must be one of"),
    ({"latency_ms": -1.0}, "must not be negative"),
    ({"request_id": ""}, "must be non-empty"),
    ({"oov_rate": 1.5}, "within 0..1"),
])
def test_a_malformed_row_is_refused_before_it_reaches_the_store(change, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(features(), **change)


# The store.

def test_round_trip_by_day_and_model_keeps_no_text(store_url, tmp_path):
    question = "how do I rotate the unobtainium credentials?"
    rows = [row(0), row(1, model_version=None, fallback="static_suggestions"),
            dataclasses.replace(features(question, request_id="req-q", at=START), at=START),
            row(2, at=START + timedelta(days=1), oov_rate=0.25, centroid_distance=0.4),
            row(3, model="other-model")]
    store = RequestFeatureStore(store_url)
    assert store.record_many(rows) == 5
    store.close()

    reader = RequestFeatureStore(store_url, create=False)
    day = START.date()
    got = reader.read(MODEL, day, day + timedelta(days=1))
    assert [r.request_id for r in got] == ["req-0", "req-q", "req-1"]  # oldest first
    assert got == [rows[0], rows[2], rows[1]]
    assert got[0].at.tzinfo is not None and got[0].at == START
    assert reader.read(MODEL, day, day + timedelta(days=2))[-1] == rows[3]
    assert reader.read(None, day, day + timedelta(days=1))[-1].model == "other-model"
    assert reader.days(MODEL) == {day: 3, day + timedelta(days=1): 1}
    assert reader.days() == {day: 4, day + timedelta(days=1): 1}
    reader.close()
    assert b"unobtainium" not in (tmp_path / "promotion_ledger.sqlite").read_bytes()


def test_a_sampled_read_spreads_over_the_range(store_url):
    store = RequestFeatureStore(store_url)
    store.record_many([row(n, at=START + timedelta(hours=n)) for n in range(100)])  # 5 days
    end = START.date() + timedelta(days=5)
    sampled = store.read(MODEL, START.date(), end, sample=30)
    assert 25 <= len(sampled) <= 30
    assert sampled == store.read(MODEL, START.date(), end, sample=30)  # the same rows each time
    assert {r.day for r in sampled} == {START.date() + timedelta(days=k) for k in range(5)}
    assert len(store.read(MODEL, START.date(), end, sample=100)) == 100
    store.close()


def test_a_request_recorded_twice_counts_once(store_url):
    store = RequestFeatureStore(store_url)
    assert store.record_many([row(1), row(2), row(1)]) == 2  # a duplicate within a batch
    assert store.record_many([row(2), row(3)]) == 1  # a retry of one already recorded
    assert store.record_many([]) == 0
    assert store.days() == {START.date(): 3}
    store.close()


def test_a_reader_creates_nothing(tmp_path):
    missing = tmp_path / "nowhere.sqlite"
    with pytest.raises(RequestFeatureStoreError, match="no request feature store at") as caught:
        RequestFeatureStore(f"sqlite:///{missing}", create=False)
    assert "nothing was created" in caught.value.fix and not missing.exists()
    other = tmp_path / "other.sqlite"  # a ledger database the gateway never wrote features to
    sqlite3.connect(other).execute("CREATE TABLE unrelated (x INTEGER)").connection.close()
    reader = RequestFeatureStore(f"sqlite:///{other}", create=False)
    assert reader.read(MODEL, date(2026, 11, 1), date(2026, 12, 1)) == [] and reader.days() == {}
    reader.close()
    tables = sqlite3.connect(other).execute("SELECT name FROM sqlite_master").fetchall()
    assert tables == [("unrelated",)]


def _read_only_url(path, how):
    if how == "chmod":
        if os.geteuid() == 0:
            pytest.skip("root writes through file modes; the mode=ro case covers this")
        path.chmod(0o444)
        path.parent.chmod(0o555)
        return f"sqlite:///{path}"
    return f"sqlite:///file:{path}?mode=ro&uri=true"


@pytest.mark.parametrize("how", ["chmod", "mode=ro"])
def test_a_read_only_store_gives_a_clear_error_and_writes_nothing(store_url, tmp_path, how):
    store = RequestFeatureStore(store_url)
    store.record_many([row(1)])
    store.close()
    path = tmp_path / "promotion_ledger.sqlite"
    before = path.read_bytes()
    read_only = RequestFeatureStore(_read_only_url(path, how))
    try:
        assert [r.request_id for r in read_only.read(MODEL, START.date(), date(2027, 1, 1))] \
            == ["req-1"]
        with pytest.raises(RequestFeatureStoreError) as caught:
            read_only.record_many([row(2), row(3)])
    finally:
        read_only.close()
        path.parent.chmod(0o755)
        path.chmod(0o644)
    error = caught.value
    assert isinstance(error, StoreError)
    assert "could not write to the request feature store" in error.problem
    assert "make the request feature store writable" in error.fix
    assert error.field == "$PLIMSOLL_LEDGER_URL"
    assert path.read_bytes() == before


def test_a_batch_that_fails_part_way_leaves_none_of_its_rows(store_url, tmp_path):
    RequestFeatureStore(store_url).close()
    database = sqlite3.connect(tmp_path / "promotion_ledger.sqlite")
    database.execute("CREATE TRIGGER refuse_r5 BEFORE INSERT ON request_features "
                     "WHEN NEW.request_id = 'req-5' BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    database.commit()
    database.close()
    store = RequestFeatureStore(store_url)
    with pytest.raises(RequestFeatureStoreError, match="disk full"):
        store.record_many([row(n) for n in range(10)])
    assert store.days() == {}  # rows 0..4 went in before row 5 failed; none of them stayed
    store.close()


def test_a_store_that_is_not_a_database_url_says_what_to_use():
    with pytest.raises(RequestFeatureStoreError, match="is not a database URL") as caught:
        RequestFeatureStore("promotion_ledger.sqlite")
    assert caught.value.field == "$PLIMSOLL_LEDGER_URL" and "sqlite:///" in caught.value.fix


@pytest.mark.postgres
def test_postgres_round_trip_and_duplicates(postgres_url):
    store = RequestFeatureStore(postgres_url)
    rows = [row(n) for n in range(5)]
    assert store.record_many(rows) == 5
    assert store.record_many([*rows[:2], row(9)]) == 1
    got = store.read(MODEL, START.date(), START.date() + timedelta(days=1))
    assert got[:5] == rows and got[0].at.tzinfo is not None
    assert store.days(MODEL) == {START.date(): 6}
    store.close()


# The recorder.

class _GatedStore:
    """A store whose writes wait until the test opens the gate (a database that hangs)."""

    def __init__(self, store):
        self.store, self.gate = store, threading.Event()

    def record_many(self, rows):
        self.gate.wait(10)
        return self.store.record_many(rows)


def test_the_recorder_never_blocks_and_counts_what_it_drops(store_url):
    store = _GatedStore(RequestFeatureStore(store_url))
    recorder = FeatureRecorder(store, queue_size=5, batch_rows=3, interval_s=0.01)
    started = time.perf_counter()
    accepted = [recorder.put(row(n)) for n in range(200)]
    assert time.perf_counter() - started < 0.5  # the store hangs; put() does not wait for it
    stats = recorder.stats
    assert stats.dropped == accepted.count(False) >= 200 - 5 - 3
    store.gate.set()
    assert recorder.flush()
    final = recorder.close()
    assert final.recorded == accepted.count(True) and final.pending == 0 and final.lost == 0
    assert final.recorded + final.dropped == 200
    assert sum(store.store.days().values()) == final.recorded
    assert not recorder.put(row(999)) and recorder.stats.dropped == final.dropped + 1


class _FlakyStore:
    """Fails the first `failures` writes (the database restarting), then works."""

    def __init__(self, store, failures):
        self.store, self.failures, self.calls = store, failures, 0

    def record_many(self, rows):
        self.calls += 1
        if self.calls <= self.failures:
            raise RequestFeatureStoreError("could not write to the request feature store "
                                           "(database is restarting)", field="$X", fix="wait")
        return self.store.record_many(rows)


def test_the_recorder_survives_a_store_that_fails_then_recovers(store_url, caplog):
    store = _FlakyStore(RequestFeatureStore(store_url), failures=2)
    recorder = FeatureRecorder(store, queue_size=100, interval_s=0.01, retry_s=0.01)
    with caplog.at_level(logging.WARNING, logger="plimsoll.observability"):
        assert all(recorder.put(row(n)) for n in range(20))
        assert recorder.flush()
        stats = recorder.close()
    assert (stats.recorded, stats.lost, stats.store_errors, stats.pending) == (20, 0, 2, 0)
    assert sum(store.store.days().values()) == 20  # retried, nothing lost
    warnings = [r for r in caplog.records if r.name == "plimsoll.observability"]
    assert len(warnings) == 1  # two failures within a minute: logged once
    assert "could not record" in warnings[0].getMessage()
    assert "database is restarting" in warnings[0].getMessage()


def test_rows_the_store_keeps_refusing_are_counted_lost_and_later_rows_still_go_in(store_url):
    store = _FlakyStore(RequestFeatureStore(store_url), failures=FeatureRecorder.MAX_ATTEMPTS)
    recorder = FeatureRecorder(store, interval_s=0.01, retry_s=0.01)
    recorder.put(row(1))
    assert recorder.flush()
    assert recorder.stats.lost == 1
    recorder.put(row(2))
    stats = recorder.close()
    assert (stats.recorded, stats.lost, stats.store_errors) == (1, 1, 3)
    assert [r.request_id for r in store.store.read(MODEL, START.date(), date(2027, 1, 1))] == [
        "req-2"]


def test_a_recorder_whose_store_raises_anything_keeps_running():
    class Broken:
        def record_many(self, _rows):
            raise TypeError("a bug in the store")

    recorder = FeatureRecorder(Broken(), interval_s=0.01, retry_s=0.01)
    recorder.put(row(1))
    assert recorder.flush()
    assert recorder._thread.is_alive()
    assert recorder.close().lost == 1


def test_close_writes_what_is_still_queued(store_url):
    store = RequestFeatureStore(store_url)
    recorder = FeatureRecorder(store, interval_s=30.0, batch_rows=1000)  # would wait 30 s
    for n in range(50):
        recorder.put(row(n))
    started = time.perf_counter()
    stats = recorder.close()
    assert time.perf_counter() - started < 5
    assert (stats.recorded, stats.pending) == (50, 0)
    assert store.days() == {START.date(): 50}


def test_two_recorders_on_one_sqlite_file_at_once(store_url):
    stores = [RequestFeatureStore(store_url), RequestFeatureStore(store_url)]
    recorders = [FeatureRecorder(s, queue_size=1000, interval_s=0.01, batch_rows=20)
                 for s in stores]

    def replica(recorder, first):
        for n in range(first, first + 300):  # 100 requests overlap: both replicas saw them
            recorder.put(row(n))

    threads = [threading.Thread(target=replica, args=(r, first))
               for r, first in zip(recorders, (0, 200), strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results = [r.close() for r in recorders]
    assert all(s.store_errors == 0 and s.lost == 0 and s.dropped == 0 for s in results)
    assert stores[0].days() == {START.date(): 500}
    got = stores[1].read(MODEL, START.date(), date(2027, 1, 1))
    assert len({r.request_id for r in got}) == len(got) == 500


def test_golden_signals_per_version():
    rows = [row(n, latency_ms=float(10 * (n + 1)), cpu_ms=100.0, abstained=n == 0)
            for n in range(10)]
    rows += [row(20, model_version="4", latency_ms=5.0, cpu_ms=50.0, refused=True),
             row(21, model_version=None, fallback="static_suggestions", latency_ms=1.0,
                 cpu_ms=0.0, citations=0, top_cited_doc=None)]
    v3, v4, static = signals_by_version(rows, cost_per_cpu_second=0.5)
    assert (v3.model_version, v3.requests) == ("3", 10)
    assert (v3.latency_p50_ms, v3.latency_p95_ms) == (50.0, 100.0)  # nearest rank
    assert v3.abstention_rate == pytest.approx(0.1) and v3.refusal_rate == 0.0
    assert v3.cpu_seconds == pytest.approx(1.0) and v3.cost == pytest.approx(0.5)
    assert v3.cost_per_request == pytest.approx(0.05)
    assert (v4.model_version, v4.refusal_rate) == ("4", 1.0)
    assert (static.model_version, static.fallback_rate, static.citation_rate) == (
        "none", 1.0, 0.0)
