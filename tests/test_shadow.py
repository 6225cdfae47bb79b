import sqlite3
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from conftest import QUIET

from plimsoll.common.hashing import sha256_text
from plimsoll.common.sql import StoreError
from plimsoll.serving.shadow import (
    ShadowPair,
    ShadowStore,
    ShadowStoreError,
    agreement,
    as_markdown_table,
)

MODEL = "plimsoll-docs-assistant"
START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("served", "challenger", "served_abstained", "challenger_abstained",
                          "expected"), [
    (("a", "b"), ("b", "a"), False, False, 1.0),  # same set, other order
    (("a", "b"), ("b", "c"), False, False, 1 / 3),
    (("a",), ("b",), False, False, 0.0),
    (("a", "a", "b"), ("a", "b"), False, False, 1.0),  # a doc cited twice is one doc
    ((), (), False, False, 1.0),
    ((), ("a",), False, False, 0.0),
    ((), (), True, True, 1.0),
    (("a",), (), False, True, 0.0),
    ((), ("a",), True, False, 0.0),
    (("a",), ("a",), True, True, 1.0),
])
def test_agreement(served, challenger, served_abstained, challenger_abstained, expected):
    assert agreement(served, challenger, served_abstained, challenger_abstained) == \
        pytest.approx(expected)


def make_pair(n: int, *, served="2", challenger="3", served_citations=("d1", "d2"),
              challenger_citations=("d1", "d2"), served_abstained=False,
              challenger_abstained=False, served_refused=False, challenger_refused=False,
              served_ms=10.0, challenger_ms=20.0, error=None, request_id=None) -> ShadowPair:
    question = f"how do I split a string, take {n}?"
    if error is not None:
        challenger_citations, challenger_abstained, challenger_refused = (), False, False
        challenger_ms = None
    return ShadowPair(
        request_id=request_id or f"req-{n}", at=START + timedelta(minutes=n), model=MODEL,
        served_version=served, challenger_version=challenger,
        question_sha256=sha256_text(question), question_chars=len(question),
        served_citations=served_citations, challenger_citations=challenger_citations,
        served_abstained=served_abstained, challenger_abstained=challenger_abstained,
        served_refused=served_refused, challenger_refused=challenger_refused,
        served_latency_ms=served_ms, challenger_latency_ms=challenger_ms,
        agreement=0.0 if error else agreement(served_citations, challenger_citations,
                                             served_abstained, challenger_abstained),
        challenger_error=error)


def known_pairs() -> list[ShadowPair]:
    """Ten requests shadowed to v3 (one failed) and two to v4, all served by v2."""
    pairs = [make_pair(i, served_ms=10.0 * (i + 1), challenger_ms=5.0 * (i + 1))
             for i in range(5)]  # agree exactly; served 10..50 ms, challenger 5..25 ms
    pairs += [
        make_pair(5, challenger_citations=("d2", "d3"), served_ms=60, challenger_ms=30),  # 1/3
        make_pair(6, served_abstained=True, served_citations=(), challenger_citations=(),
                  challenger_abstained=True, served_ms=70, challenger_ms=35),  # 1.0
        make_pair(7, challenger_abstained=True, challenger_citations=(), served_ms=80,
                  challenger_ms=40),  # 0.0
        make_pair(8, served_refused=True, challenger_refused=True, served_ms=90,
                  challenger_ms=45),  # 1.0
        make_pair(9, error="TimeoutError: challenger took over 2000 ms", served_ms=100),
    ]
    pairs += [make_pair(20 + i, challenger="4", challenger_citations=("d9",), served_ms=12,
                        challenger_ms=8) for i in range(2)]
    return pairs


@pytest.fixture
def store_url(tmp_path):
    return f"sqlite:///{tmp_path / 'promotion_ledger.sqlite'}"


def record_all(url, pairs):
    store = ShadowStore(url)
    try:
        return [store.record(pair) for pair in pairs]
    finally:
        store.close()


def test_summary_numbers_on_a_known_set_of_pairs(store_url):
    record_all(store_url, known_pairs())
    store = ShadowStore(store_url, create=False)
    v3, v4 = store.summarise(MODEL)
    store.close()

    assert (v3.model, v3.served_version, v3.challenger_version) == (MODEL, "2", "3")
    assert (v3.requests, v3.errors, v3.answered) == (10, 1, 9)
    # Answered: 7 exact (5 + both abstained + both refused), 1/3 and 0.
    assert v3.mean_agreement == pytest.approx((7 + 1 / 3) / 9)
    assert v3.exact_agreement_rate == pytest.approx(7 / 9)
    assert v3.served_abstention_rate == pytest.approx(1 / 10)
    assert v3.challenger_abstention_rate == pytest.approx(2 / 9)
    assert v3.served_refusal_rate == pytest.approx(1 / 10)
    assert v3.challenger_refusal_rate == pytest.approx(1 / 9)
    # Nearest rank over 10..100 ms served and 5..45 ms answered by the challenger.
    assert (v3.served_latency_p50_ms, v3.served_latency_p95_ms) == (50.0, 100.0)
    assert (v3.challenger_latency_p50_ms, v3.challenger_latency_p95_ms) == (25.0, 45.0)
    assert (v3.first_at, v3.last_at) == (START, START + timedelta(minutes=9))
    assert v3.verdict == ("challenger v3 agrees with v2 on 78% of 9 shadowed requests "
                          "(mean agreement 0.81); p95 45 ms vs 100 ms; 1 of 10 failed")

    assert (v4.challenger_version, v4.requests, v4.errors) == ("4", 2, 0)
    assert v4.mean_agreement == 0.0 and v4.exact_agreement_rate == 0.0
    assert v4.challenger_latency_p95_ms == 8.0
    assert v4.first_at == START + timedelta(minutes=20)


def test_pairs_round_trip_newest_first_and_keep_no_question_text(store_url):
    pairs = known_pairs()
    record_all(store_url, pairs)
    store = ShadowStore(store_url)
    assert store.pairs(MODEL, challenger_version="3") == list(reversed(pairs[:10]))
    assert store.pairs(MODEL, limit=2) == list(reversed(pairs[-2:]))
    assert store.pairs("another-model") == []
    store.close()
    rows = sqlite3.connect(store_url.removeprefix("sqlite:///")).execute(
        "SELECT * FROM shadow_pairs").fetchall()
    assert rows and not any("split a string" in str(cell) for row in rows for cell in row)


def test_the_same_request_recorded_twice_counts_once(store_url):
    pair = make_pair(1)
    assert record_all(store_url, [pair, pair]) == [True, False]
    assert record_all(store_url, [pair]) == [False]  # a retry from another process
    (summary,) = ShadowStore(store_url).summarise(MODEL)
    assert summary.requests == 1


def test_two_gateway_replicas_recording_the_same_requests_at_once_count_each_once(store_url):
    from concurrent.futures import ThreadPoolExecutor

    pairs = known_pairs()
    with ThreadPoolExecutor(2) as pool:  # two stores, as two replicas would open them
        first, second = pool.map(lambda _: record_all(store_url, pairs), range(2))
    assert [a != b for a, b in zip(first, second, strict=True)] == [True] * len(pairs)
    assert sum(s.requests for s in ShadowStore(store_url).summarise(MODEL)) == len(pairs)


def test_one_request_shadowed_to_two_challengers_is_two_pairs(store_url):
    assert record_all(store_url, [make_pair(1, challenger="3"),
                                  make_pair(1, challenger="4")]) == [True, True]
    summaries = ShadowStore(store_url).summarise(MODEL)
    assert [(s.challenger_version, s.requests) for s in summaries] == [("3", 1), ("4", 1)]


def test_summaries_are_per_served_and_challenger_version(store_url):
    record_all(store_url, [make_pair(1, served="2", challenger="3"),
                           make_pair(2, served="2", challenger="3"),
                           make_pair(3, served="3", challenger="4",
                                     challenger_citations=("x",)),
                           make_pair(4, served="2", challenger="4")])
    summaries = ShadowStore(store_url).summarise(MODEL)
    assert [(s.served_version, s.challenger_version, s.requests, s.mean_agreement)
            for s in summaries] == [("2", "3", 2, 1.0), ("3", "4", 1, 0.0), ("2", "4", 1, 1.0)]


def test_a_challenger_that_always_failed_has_no_made_up_numbers(store_url):
    record_all(store_url, [make_pair(i, error="RuntimeError: boom") for i in range(3)])
    (summary,) = ShadowStore(store_url).summarise(MODEL)
    assert (summary.requests, summary.errors) == (3, 3)
    assert summary.mean_agreement is None and summary.challenger_latency_p95_ms is None
    assert summary.served_latency_p95_ms == 10.0
    assert summary.verdict == "challenger v3 failed on all 3 shadowed requests against v2"
    assert "| v2 | v3 | 3 | 3 | – | – |" in as_markdown_table([summary])


@pytest.mark.parametrize(("change", "message"), [
    ({"at": datetime(2025, 3, 1)}, "timezone-aware"),
    ({"question_sha256": "how do I split a string?"}, "64 lowercase hex"),
    ({"agreement": 1.5}, "within 0..1"),
    ({"challenger_error": "TimeoutError"}, "a failed challenger has no citations"),
    ({"challenger_latency_ms": None}, "needs its challenger_latency_ms"),
    ({"request_id": ""}, "non-empty"),
])
def test_a_malformed_pair_is_refused_before_it_reaches_the_store(change, message):
    import dataclasses

    with pytest.raises(ValueError, match=message):
        dataclasses.replace(make_pair(1), **change)


def test_a_read_only_store_gives_a_clear_error_and_writes_nothing(store_url, tmp_path):
    record_all(store_url, [make_pair(1)])
    path = tmp_path / "promotion_ledger.sqlite"
    before = path.read_bytes()
    read_only = ShadowStore(f"sqlite:///file:{path}?mode=ro&uri=true")
    assert [p.request_id for p in read_only.pairs(MODEL)] == ["req-1"]
    with pytest.raises(ShadowStoreError) as caught:
        read_only.record(make_pair(2))
    read_only.close()
    error = caught.value
    assert isinstance(error, StoreError)
    assert "could not write to the shadow pair store" in error.problem
    assert "make the shadow pair store writable" in error.fix
    assert error.field == "$PLIMSOLL_LEDGER_URL"
    assert path.read_bytes() == before
    assert [p.request_id for p in ShadowStore(store_url).pairs(MODEL)] == ["req-1"]


def test_a_reader_creates_nothing(tmp_path):
    missing = tmp_path / "nowhere.sqlite"
    with pytest.raises(ShadowStoreError, match="no shadow pair store at") as caught:
        ShadowStore(f"sqlite:///{missing}", create=False)
    assert "nothing was created" in caught.value.fix and not missing.exists()

    other = tmp_path / "other.sqlite"  # a database that never had shadow traffic
    sqlite3.connect(other).execute("CREATE TABLE unrelated (x INTEGER)").connection.close()
    reader = ShadowStore(f"sqlite:///{other}", create=False)
    assert reader.summarise(MODEL) == [] and reader.pairs(MODEL) == []
    reader.close()
    tables = sqlite3.connect(other).execute("SELECT name FROM sqlite_master").fetchall()
    assert tables == [("unrelated",)]


def test_a_store_that_is_not_a_database_url_says_what_to_use():
    with pytest.raises(ShadowStoreError, match="is not a database URL") as caught:
        ShadowStore("promotion_ledger.sqlite")
    assert caught.value.field == "$PLIMSOLL_LEDGER_URL" and "sqlite:///" in caught.value.fix


@pytest.mark.postgres
def test_postgres_store_records_once_and_summarises(postgres_url):
    pairs = known_pairs()
    assert all(record_all(postgres_url, pairs))
    assert not any(record_all(postgres_url, pairs[:3]))  # retries, counted once
    store = ShadowStore(postgres_url)
    v3, v4 = store.summarise(MODEL)
    assert (v3.requests, v3.errors, v4.requests) == (10, 1, 2)
    assert v3.exact_agreement_rate == pytest.approx(7 / 9)
    assert v3.first_at == START and v3.first_at.tzinfo is not None
    assert store.pairs(MODEL, challenger_version="4") == list(reversed(pairs[-2:]))
    store.close()


# The asset, materialised with the resources the definitions give it.

def _shadow_materialization(ledger_url):
    from assets.serving import shadow_comparison
    from platform_defs.resources import MlflowStore, PromotionSettings

    resources = {"mlflow": MlflowStore(tracking_uri="sqlite:///unused.db", model_name=MODEL),
                 "promotion": PromotionSettings(policy_path="unused.yaml",
                                                ledger_url=ledger_url)}
    with dg.instance_for_test() as instance:
        result = dg.materialize([shadow_comparison], instance=instance, resources=resources,
                                run_config=QUIET)
    assert result.success
    (materialization,) = result.asset_materializations_for_node("shadow_comparison")
    return {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}


def test_the_asset_with_no_shadow_traffic_says_how_to_start_it(store_url):
    metadata = _shadow_materialization(store_url)
    assert metadata["pairs"] == 0 and metadata["model"] == MODEL
    assert metadata["status"] == "no shadow traffic recorded yet"
    assert "plimsoll flags set shadow version=N percent=P --reason" in metadata["how_to_start"]
    assert "No shadow traffic recorded yet" in metadata["summary"]


def test_the_asset_shows_each_challenger_against_the_champion(store_url):
    record_all(store_url, known_pairs())
    metadata = _shadow_materialization(store_url)
    assert metadata["pairs"] == 12
    assert metadata["v3_vs_v2/requests"] == 10 and metadata["v3_vs_v2/errors"] == 1
    assert metadata["v3_vs_v2/exact_agreement_rate"] == pytest.approx(7 / 9)
    assert metadata["v3_vs_v2/challenger_latency_p95_ms"] == 45.0
    assert metadata["v4_vs_v2/mean_agreement"] == 0.0
    assert metadata["v3_vs_v2/verdict"].startswith("challenger v3 agrees with v2 on 78%")
    assert metadata["v3_vs_v2/first_at"] == START.timestamp()
    table = metadata["summary"].splitlines()
    assert table[0].startswith("| served | challenger | requests | errors |")
    assert table[2].startswith("| v2 | v3 | 10 | 1 | 0.81 | 78% | 10% / 22% | 10% / 11% |")
    assert table[3].startswith("| v2 | v4 | 2 | 0 | 0.00 | 0% |")
    assert "challenger v4 agrees with v2 on 0% of 2" in metadata["verdicts"]


@pytest.mark.usefixtures("home", "manifests")
def test_the_definitions_give_the_asset_the_ledger_database(monkeypatch, store_url):
    monkeypatch.setenv("PLIMSOLL_LEDGER_URL", store_url)
    record_all(store_url, [make_pair(1)])
    from platform_defs.definitions import defs

    definitions = defs()
    with dg.instance_for_test() as instance:
        result = dg.materialize([definitions.get_assets_def("shadow_comparison")],
                                instance=instance, resources=definitions.resources,
                                run_config=QUIET)
    (materialization,) = result.asset_materializations_for_node("shadow_comparison")
    assert materialization.metadata["pairs"].value == 1
