"""Tail sampling: which finished traces are kept, decided when each trace has ended.

Pure Python and deterministic (no OpenTelemetry here, an injected clock): the same stream
of finished traces gives the same kept set and the same reasons. Kept are every trace among
the `slowest_n` slowest of its `window_s` window, the first of its kind (a user segment's
first request; the first of each model version, prompt template and flag variant), every
guard-triggered, failed or fallback trace, and the rest at `rate`, decided from the trace
id. policies/observability.yaml (`sampling:`) sets the numbers.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from plimsoll.observability.policy import SamplingPolicy

# Reasons a trace is kept, in the order a kept trace lists them (the first is its primary
# reason, the one counters and metrics count it under).
GUARD, FAILED, FALLBACK = "guard", "failed", "fallback"
FIRST_USER, FIRST_KIND = "first_user", "first_kind"
SLOWEST, SAMPLED = "slowest", "sampled"
KEPT_REASONS = (GUARD, FAILED, FALLBACK, FIRST_USER, FIRST_KIND, SLOWEST, SAMPLED)
# Why a trace is dropped: no rule kept it (including a slowest candidate that a slower trace
# pushed out of its window's top N).
UNSAMPLED = "unsampled"


@dataclass(frozen=True)
class TraceSummary:
    """What the sampler knows of one finished trace; `payload` (its spans) rides along."""

    trace_id: int
    duration_ms: float
    user_segment: str | None
    kind: tuple[str, ...]  # (model version, prompt template, flag variant)
    guard_triggered: bool = False
    failed: bool = False
    fallback: str | None = None
    payload: object = None  # opaque to the sampler: whatever the exporter needs


@dataclass(frozen=True)
class Kept:
    """A kept trace and every rule that kept it, the primary reason first."""

    summary: TraceSummary
    reasons: tuple[str, ...]

    @property
    def trace_id(self) -> int:
        """The kept trace's id."""
        return self.summary.trace_id

    @property
    def reason(self) -> str:
        """The primary reason (counted once per trace)."""
        return self.reasons[0]


def sample_score(trace_id: int) -> float:
    """A trace id's place in [0, 1): kept by the rate rule when below `rate`.

    A hash rather than the id's own low bits, so sequential or hand-made ids (tests,
    replays) spread evenly too; any process gives the same score to the same id.
    """
    digest = hashlib.blake2b(trace_id.to_bytes(16, "big", signed=False), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class _FirstSeen:
    """A bounded set of what has been seen, the least recently seen forgotten first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[tuple, None] = OrderedDict()

    def first(self, key: tuple) -> bool:
        """True the first time `key` is seen (or the first time since it was forgotten)."""
        if key in self._seen:
            self._seen.move_to_end(key)
            return False
        self._seen[key] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True

    def __contains__(self, key: tuple) -> bool:
        return key in self._seen

    def __len__(self) -> int:
        return len(self._seen)


class TailSampler:
    """Decides, per finished trace, whether it is kept; never exports a trace twice.

    `offer` answers at once for the immediate rules (first of its kind, guard, failed,
    fallback, rate) and holds "slowest N" candidates in a min-heap of at most N per window;
    they are released when the window closes: on the first offer after it, or on `flush`.
    A trace kept at once still takes its place among its window's slowest (so the kept set
    is exactly the union of the rules), but is not exported again when the window closes.

    Not thread-safe: one caller at a time (TailSamplingProcessor holds a lock around it).
    """

    def __init__(self, policy: SamplingPolicy, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.policy = policy
        self.clock = clock
        self._first_seen = _FirstSeen(policy.first_seen_capacity)
        self._window: int | None = None  # index of the open window: floor(clock / window_s)
        # (duration_ms, -arrival, trace_id, summary or None when already kept): the heap's
        # top is the fastest, and among equal durations the latest arrival, so ties keep the
        # earliest trace.
        self._heap: list[tuple[float, int, int, TraceSummary | None]] = []
        self._arrivals = 0
        self.kept: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()

    # -- the two calls -----------------------------------------------------------------------
    def offer(self, summary: TraceSummary) -> list[Kept]:
        """Decide one finished trace; returns what is kept now (released windows first)."""
        released = self._roll(self._window_of(self.clock()))
        reasons = self._immediate_reasons(summary)
        kept_now = bool(reasons)
        if kept_now:
            released.append(self._keep(summary, reasons))
        if not self._hold(summary, already_kept=kept_now) and not kept_now:
            self.dropped[UNSAMPLED] += 1
        return released

    def flush(self, force: bool = False) -> list[Kept]:
        """Release the held slowest of a window that has closed by the clock (any, if forced)."""
        if force:
            return self._release()
        return self._roll(self._window_of(self.clock()))

    def close(self) -> list[Kept]:
        """Release everything held (at shutdown)."""
        return self.flush(force=True)

    # -- what tests and metrics read ---------------------------------------------------------
    @property
    def held(self) -> int:
        """Slowest candidates (and kept placeholders) held for the open window."""
        return len(self._heap)

    @property
    def remembered(self) -> int:
        """User segments and kinds remembered for "first of its kind"."""
        return len(self._first_seen)

    def counters(self) -> dict[tuple[str, str], int]:
        """Traces decided so far: {("kept", reason): n, ("dropped", reason): n}."""
        out = {("kept", reason): n for reason, n in self.kept.items()}
        out.update({("dropped", reason): n for reason, n in self.dropped.items()})
        return out

    # -- the rules ---------------------------------------------------------------------------
    def _immediate_reasons(self, summary: TraceSummary) -> tuple[str, ...]:
        reasons = []
        if summary.guard_triggered:
            reasons.append(GUARD)
        if summary.failed:
            reasons.append(FAILED)
        if summary.fallback:
            reasons.append(FALLBACK)
        # Both are remembered for every trace, kept or not: "first" means first seen.
        if summary.user_segment is not None and self._first_seen.first(
                ("user", summary.user_segment)):
            reasons.append(FIRST_USER)
        if summary.kind and self._first_seen.first(("kind", tuple(summary.kind))):
            reasons.append(FIRST_KIND)
        # The rate applies to the rest: "sampled" means kept by chance alone.
        if not reasons and sample_score(summary.trace_id) < self.policy.rate:
            reasons.append(SAMPLED)
        return tuple(reasons)

    def _hold(self, summary: TraceSummary, *, already_kept: bool) -> bool:
        """Place a trace among its window's slowest; False when it is not (or no longer) there.

        A candidate pushed out by a slower one is dropped on the spot, so at most N traces
        (and their spans) are held whatever the traffic.
        """
        n = self.policy.slowest_n
        if n == 0:
            return False
        duration = summary.duration_ms if math.isfinite(summary.duration_ms) else 0.0
        self._arrivals += 1
        entry = (duration, -self._arrivals, summary.trace_id,
                 None if already_kept else summary)
        if len(self._heap) < n:
            heapq.heappush(self._heap, entry)
            return True
        out = heapq.heappushpop(self._heap, entry)
        if out is entry:
            return False
        if out[3] is not None:  # a held candidate lost its place
            self.dropped[UNSAMPLED] += 1
        return True

    def _keep(self, summary: TraceSummary, reasons: tuple[str, ...]) -> Kept:
        self.kept[reasons[0]] += 1
        return Kept(summary, reasons)

    # -- windows -----------------------------------------------------------------------------
    def _window_of(self, now: float) -> int:
        return math.floor(now / self.policy.window_s)

    def _roll(self, window: int) -> list[Kept]:
        """Move to `window`; the held slowest of a window that closed are released."""
        if self._window is None:
            self._window = window
        if window <= self._window:
            return []
        released = self._release()
        self._window = window
        return released

    def _release(self) -> list[Kept]:
        """The held slowest, slowest first; those kept by another rule are not repeated."""
        held, self._heap = self._heap, []
        held.sort(reverse=True)  # slowest first, earliest first among equals
        return [self._keep(summary, (SLOWEST,)) for _, _, _, summary in held
                if summary is not None]
