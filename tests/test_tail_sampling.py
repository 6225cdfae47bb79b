"""Tail sampling: exactly which traces are kept, why, and how much is held meanwhile."""

import gc
import hashlib
import random
import weakref

import pytest

from plimsoll.observability.policy import SamplingPolicy
from plimsoll.observability.sampling import TailSampler, TraceSummary, sample_score


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def trace(trace_id, ms, user=None, kind=(), **flags):
    return TraceSummary(trace_id=trace_id, duration_ms=ms, user_segment=user, kind=kind,
                        **flags)


def sampler(clock, **policy):
    defaults = {"slowest_n": 2, "window_s": 10, "rate": 0.0, "first_seen_capacity": 100}
    return TailSampler(SamplingPolicy(**{**defaults, **policy}), clock=clock)


def offer_at(tail, clock, at, summary):
    clock.now = at
    return [(k.trace_id, k.reasons) for k in tail.offer(summary)]


KIND = ("v1", "answer-v2", "pin=off,canary=off")


def test_stream_keeps_exactly_the_union_of_the_rules():
    clock = Clock()
    tail = sampler(clock)
    got = []
    # Window 0 (t in [0, 10)): slowest_n=2.
    got += offer_at(tail, clock, 1, trace(1, 50, "u1", KIND))  # first user, first kind
    got += offer_at(tail, clock, 2, trace(2, 10, "u1", KIND))  # held, then pushed out
    got += offer_at(tail, clock, 3, trace(3, 30, "u1", KIND))  # held, then pushed out
    got += offer_at(tail, clock, 4, trace(4, 5, guard_triggered=True))
    got += offer_at(tail, clock, 5, trace(5, 40, failed=True, fallback="static_suggestions"))
    got += offer_at(tail, clock, 6, trace(6, 45, "u2", KIND))  # a new user's first request
    got += offer_at(tail, clock, 7, trace(7, 45))  # ties the 2nd slowest: the earlier wins
    assert got == [(1, ("first_user", "first_kind")), (4, ("guard",)),
                   (5, ("failed", "fallback")), (6, ("first_user",))]
    # The window's two slowest (1 and 6) were kept already: nothing is exported twice.
    got = offer_at(tail, clock, 12, trace(8, 20))
    assert got == []
    got += offer_at(tail, clock, 13, trace(9, 80))
    got += offer_at(tail, clock, 14, trace(10, 20))  # ties 8, arrives later: dropped
    assert got == [] and tail.held == 2
    # Window 2 opens: window 1's slowest are released (slowest first), then the new trace.
    assert offer_at(tail, clock, 25, trace(11, 1, kind=("v2", *KIND[1:]))) == [
        (9, ("slowest",)), (8, ("slowest",)), (11, ("first_kind",))]
    assert tail.close() == []  # 11 is held only as a placeholder: already kept
    assert tail.counters() == {
        ("kept", "first_user"): 2, ("kept", "guard"): 1, ("kept", "failed"): 1,
        ("kept", "slowest"): 2, ("kept", "first_kind"): 1, ("dropped", "unsampled"): 4}


def test_rate_one_keeps_everything_once_and_rate_zero_only_the_rules():
    clock = Clock()
    everything = sampler(clock, rate=1.0, slowest_n=3)
    kept = []
    for i in range(1, 21):
        kept += offer_at(everything, clock, i, trace(i, float(i)))
    kept += [(k.trace_id, k.reasons) for k in everything.close()]
    assert kept == [(i, ("sampled",)) for i in range(1, 21)]

    clock = Clock()
    rules_only = sampler(clock, rate=0.0, slowest_n=0)
    kept = []
    for i in range(1, 21):
        kept += offer_at(rules_only, clock, i, trace(i, float(i), guard_triggered=(i == 7)))
    assert kept == [(7, ("guard",))]
    assert rules_only.counters() == {("kept", "guard"): 1, ("dropped", "unsampled"): 19}


def test_a_fractional_rate_follows_the_trace_id_hash_and_replays_identically():
    rng = random.Random(7)
    ids = [rng.getrandbits(128) for _ in range(400)] + list(range(1, 401))

    def run():
        clock = Clock()
        tail = sampler(clock, rate=0.25, slowest_n=0)
        kept = []
        for i, tid in enumerate(ids):
            kept += offer_at(tail, clock, i, trace(tid, 1.0))
        return kept

    def score(trace_id):  # the documented rule, written out: blake2b-64 of the 16-byte id
        digest = hashlib.blake2b(trace_id.to_bytes(16, "big"), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64

    kept = run()
    assert kept == [(tid, ("sampled",)) for tid in ids if score(tid) < 0.25]
    assert all(score(tid) == sample_score(tid) for tid in ids[:50])
    assert 0.18 < len(kept) / len(ids) < 0.32  # sequential ids spread evenly too
    assert run() == kept


def test_slowest_heap_never_holds_more_than_n_and_drops_the_spans_of_the_rest():
    clock = Clock()
    tail = sampler(clock, slowest_n=3, window_s=1000)
    rng = random.Random(3)
    durations = [rng.uniform(1, 500) for _ in range(1000)]

    class Spans:  # a stand-in for a trace's buffered spans
        pass

    alive = []
    for i, ms in enumerate(durations, start=1):
        payload = Spans()
        alive.append(weakref.ref(payload))
        clock.now = i / 10
        assert tail.offer(trace(i, ms, payload=payload)) == []
        assert tail.held <= 3
        del payload
    gc.collect()
    assert sum(ref() is not None for ref in alive) == 3  # only the held slowest survive
    released = tail.close()
    slowest = sorted(range(1000), key=lambda j: -durations[j])[:3]
    assert [k.trace_id for k in released] == [j + 1 for j in slowest]
    assert {k.reasons for k in released} == {("slowest",)}
    assert tail.counters()[("dropped", "unsampled")] == 997


def test_window_closes_by_the_clock_on_flush():
    clock = Clock(100.0)
    tail = sampler(clock, slowest_n=1, window_s=10)
    assert tail.offer(trace(1, 12.0)) == []
    clock.now = 109.99
    assert tail.flush() == []
    clock.now = 110.0
    assert [(k.trace_id, k.reasons) for k in tail.flush()] == [(1, ("slowest",))]
    assert tail.held == 0
    assert tail.flush() == [] and tail.flush(force=True) == []


def test_ties_keep_the_earliest_traces():
    clock = Clock()
    tail = sampler(clock, slowest_n=2)
    for i in range(1, 6):
        clock.now = i
        tail.offer(trace(i, 7.0))
    assert [k.trace_id for k in tail.close()] == [1, 2]


def test_slowest_n_zero_holds_nothing():
    clock = Clock()
    tail = sampler(clock, slowest_n=0)
    for i in range(1, 50):
        clock.now = i
        assert tail.offer(trace(i, 1000.0 * i)) == []
        assert tail.held == 0
    assert tail.close() == []


def test_first_seen_forgets_the_least_recently_seen():
    clock = Clock()
    tail = sampler(clock, slowest_n=0, first_seen_capacity=2)

    def first(tid, user):
        return [k.reasons for k in tail.offer(trace(tid, 1.0, user))]

    assert first(1, "a") == [("first_user",)]
    assert first(2, "b") == [("first_user",)]
    assert first(3, "a") == []  # seen: and now the most recently seen
    assert first(4, "c") == [("first_user",)]  # forgets b, the least recently seen
    assert tail.remembered == 2
    assert first(5, "a") == []
    assert first(6, "b") == [("first_user",)]  # b was forgotten: first again


def test_a_non_finite_duration_counts_as_fast():
    clock = Clock()
    tail = sampler(clock, slowest_n=1)
    tail.offer(trace(1, 3.0))
    tail.offer(trace(2, float("nan")))
    assert [k.trace_id for k in tail.close()] == [1]


@pytest.mark.parametrize("field,value", [("rate", 1.5), ("slowest_n", -1), ("window_s", 0)])
def test_the_policy_refuses_numbers_the_sampler_cannot_use(field, value):
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        SamplingPolicy(**{field: value})
