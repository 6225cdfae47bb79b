"""Shadow traffic: what the champion served and what the challenger would have, side by side.

The gateway answers from the champion and, for the flagged share of requests, asks the
challenger the same question after the answer is served; the user never sees the challenger.
Each pair is one row of `shadow_pairs` in Plimsoll's own SQL store (the promotion ledger's
database). Privacy by default: a pair keeps the question's sha256 and length, never its text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from plimsoll.common.sql import StoreError, open_store, store_error

LEDGER_ENV = "PLIMSOLL_LEDGER_URL"
WHAT = "shadow pair store"
TABLE = "shadow_pairs"
HOW_TO_START = ("plimsoll flags set shadow version=N percent=P --reason '...'  "
                "(N: the challenger's version, P: the share of requests to shadow)")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ShadowStoreError(StoreError):
    """The shadow pair store cannot be opened, read or written."""


def agreement(served_citations: Sequence[str], challenger_citations: Sequence[str],
              served_abstained: bool, challenger_abstained: bool) -> float:
    """1.0 if both abstained, 0.0 if one did, else the Jaccard overlap of the cited doc ids."""
    if served_abstained or challenger_abstained:
        return 1.0 if served_abstained and challenger_abstained else 0.0
    served, challenger = set(served_citations), set(challenger_citations)
    if not served and not challenger:  # both answered without citing anything: the same
        return 1.0
    return len(served & challenger) / len(served | challenger)


@dataclass(frozen=True)
class ShadowPair:
    """One shadowed request: the champion's served answer and the challenger's, compared."""

    request_id: str
    at: datetime  # UTC, when the served answer was sent
    model: str  # registered model name
    served_version: str
    challenger_version: str
    question_sha256: str
    question_chars: int
    served_citations: tuple[str, ...]  # doc ids in rank order
    challenger_citations: tuple[str, ...]
    served_abstained: bool
    challenger_abstained: bool
    served_refused: bool
    challenger_refused: bool
    served_latency_ms: float
    challenger_latency_ms: float | None
    agreement: float  # agreement(...) of the two answers; 0.0 when the challenger failed
    challenger_error: str | None = None  # the challenger raised or timed out

    def __post_init__(self) -> None:
        # Tuples whatever the caller passed, so pairs compare equal after a round trip.
        object.__setattr__(self, "served_citations", tuple(self.served_citations))
        object.__setattr__(self, "challenger_citations", tuple(self.challenger_citations))
        problem = _problem(self)
        if problem:
            raise ValueError(f"shadow pair {self.request_id!r}: {problem}")


def _problem(pair: ShadowPair) -> str | None:
    """What makes a pair unrecordable, if anything (these are the gateway's mistakes)."""
    if not pair.request_id or not pair.model:
        return "request_id and model must be non-empty"
    if not pair.served_version or not pair.challenger_version:
        return "served_version and challenger_version must be non-empty"
    if pair.at.tzinfo is None:
        return "at must be timezone-aware (datetime.now(UTC))"
    if not _SHA256.fullmatch(pair.question_sha256):
        return "question_sha256 must be 64 lowercase hex digits (sha256_text(question))"
    if pair.question_chars < 0 or pair.served_latency_ms < 0:
        return "question_chars and served_latency_ms must not be negative"
    if not 0.0 <= pair.agreement <= 1.0:
        return f"agreement must be within 0..1, got {pair.agreement}"
    if pair.challenger_error is not None:
        if (pair.challenger_citations or pair.challenger_abstained or pair.challenger_refused
                or pair.challenger_latency_ms is not None or pair.agreement != 0.0):
            return ("a failed challenger has no citations, abstention, refusal or latency, "
                    "and agreement 0.0")
    elif pair.challenger_latency_ms is None or pair.challenger_latency_ms < 0:
        return "a challenger that answered needs its challenger_latency_ms"
    return None


@dataclass(frozen=True)
class ShadowSummary:
    """How one challenger compared with the version served, over all its shadowed requests.

    Served rates are over every request; challenger rates, agreement and challenger latency
    are over the requests the challenger answered (requests - errors). A number with nothing
    to measure is None, never 0.
    """

    model: str
    served_version: str
    challenger_version: str
    requests: int
    errors: int
    mean_agreement: float | None
    exact_agreement_rate: float | None  # share of answered requests with agreement == 1
    served_abstention_rate: float
    challenger_abstention_rate: float | None
    served_refusal_rate: float
    challenger_refusal_rate: float | None
    served_latency_p50_ms: float
    served_latency_p95_ms: float
    challenger_latency_p50_ms: float | None
    challenger_latency_p95_ms: float | None
    first_at: datetime
    last_at: datetime

    @property
    def answered(self) -> int:
        """Requests the challenger answered (did not raise or time out)."""
        return self.requests - self.errors

    @property
    def verdict(self) -> str:
        """One line a reviewer can read."""
        challenger, served = f"v{self.challenger_version}", f"v{self.served_version}"
        if not self.answered:
            return (f"challenger {challenger} failed on all {self.requests} shadowed "
                    f"requests against {served}")
        line = (f"challenger {challenger} agrees with {served} on "
                f"{self.exact_agreement_rate:.0%} of {self.answered} shadowed requests "
                f"(mean agreement {self.mean_agreement:.2f}); p95 "
                f"{self.challenger_latency_p95_ms:.0f} ms vs {self.served_latency_p95_ms:.0f} ms")
        if self.errors:
            line += f"; {self.errors} of {self.requests} failed"
        return line


def summarise_pairs(pairs: Iterable[ShadowPair]) -> list[ShadowSummary]:
    """One summary per (model, served version, challenger version), oldest first."""
    groups: dict[tuple[str, str, str], list[ShadowPair]] = {}
    for pair in pairs:
        groups.setdefault((pair.model, pair.served_version, pair.challenger_version),
                          []).append(pair)
    summaries = [_summary(key, group) for key, group in groups.items()]
    return sorted(summaries, key=lambda s: (s.first_at, s.served_version,
                                            s.challenger_version))


def _summary(key: tuple[str, str, str], pairs: list[ShadowPair]) -> ShadowSummary:
    answered = [p for p in pairs if p.challenger_error is None]
    served_p50, served_p95 = _p50_p95([p.served_latency_ms for p in pairs])
    challenger_p50, challenger_p95 = _p50_p95([p.challenger_latency_ms for p in answered])
    return ShadowSummary(
        model=key[0], served_version=key[1], challenger_version=key[2],
        requests=len(pairs), errors=len(pairs) - len(answered),
        mean_agreement=_mean([p.agreement for p in answered]),
        exact_agreement_rate=_mean([p.agreement == 1.0 for p in answered]),
        served_abstention_rate=_mean([p.served_abstained for p in pairs]),
        challenger_abstention_rate=_mean([p.challenger_abstained for p in answered]),
        served_refusal_rate=_mean([p.served_refused for p in pairs]),
        challenger_refusal_rate=_mean([p.challenger_refused for p in answered]),
        served_latency_p50_ms=served_p50, served_latency_p95_ms=served_p95,
        challenger_latency_p50_ms=challenger_p50, challenger_latency_p95_ms=challenger_p95,
        first_at=min(p.at for p in pairs), last_at=max(p.at for p in pairs))


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _p50_p95(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Nearest-rank p50 and p95, the same rule as the eval report's latencies."""
    if not values:
        return None, None
    ordered = sorted(values)
    return ordered[int(0.50 * (len(ordered) - 1))], ordered[round(0.95 * (len(ordered) - 1))]


MARKDOWN_COLUMNS = ("served", "challenger", "requests", "errors", "mean agreement",
                    "exact agreement", "abstained (served / challenger)",
                    "refused (served / challenger)", "p50 ms (served / challenger)",
                    "p95 ms (served / challenger)", "first", "last")


def as_markdown_table(summaries: Sequence[ShadowSummary]) -> str:
    """The summaries as a Markdown table, one row per challenger, for the asset's metadata."""
    def rate(value: float | None) -> str:
        return "–" if value is None else f"{value:.0%}"

    def number(value: float | None, spec: str) -> str:
        return "–" if value is None else format(value, spec)

    lines = ["| " + " | ".join(MARKDOWN_COLUMNS) + " |",
             "|" + "|".join("---" for _ in MARKDOWN_COLUMNS) + "|"]
    for s in summaries:
        cells = (f"v{s.served_version}", f"v{s.challenger_version}", str(s.requests),
                 str(s.errors), number(s.mean_agreement, ".2f"), rate(s.exact_agreement_rate),
                 f"{rate(s.served_abstention_rate)} / {rate(s.challenger_abstention_rate)}",
                 f"{rate(s.served_refusal_rate)} / {rate(s.challenger_refusal_rate)}",
                 f"{number(s.served_latency_p50_ms, '.1f')} / "
                 f"{number(s.challenger_latency_p50_ms, '.1f')}",
                 f"{number(s.served_latency_p95_ms, '.1f')} / "
                 f"{number(s.challenger_latency_p95_ms, '.1f')}",
                 f"{s.first_at:%Y-%m-%d %H:%M}Z", f"{s.last_at:%Y-%m-%d %H:%M}Z")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _define(metadata):
    import sqlalchemy as sa

    return sa.Table(
        TABLE, metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("served_version", sa.String(32), nullable=False),
        sa.Column("challenger_version", sa.String(32), nullable=False),
        sa.Column("question_sha256", sa.String(64), nullable=False),
        sa.Column("question_chars", sa.Integer, nullable=False),
        sa.Column("served_citations", sa.JSON, nullable=False),
        sa.Column("challenger_citations", sa.JSON, nullable=False),
        sa.Column("served_abstained", sa.Boolean, nullable=False),
        sa.Column("challenger_abstained", sa.Boolean, nullable=False),
        sa.Column("served_refused", sa.Boolean, nullable=False),
        sa.Column("challenger_refused", sa.Boolean, nullable=False),
        sa.Column("served_latency_ms", sa.Float, nullable=False),
        sa.Column("challenger_latency_ms", sa.Float, nullable=True),
        sa.Column("agreement", sa.Float, nullable=False),
        sa.Column("challenger_error", sa.Text, nullable=True),
        # A retried record of the same request for the same challenger is counted once.
        sa.UniqueConstraint("model", "challenger_version", "request_id",
                            name="shadow_pairs_one_per_request"),
        sa.Index("shadow_pairs_by_model", "model", "challenger_version", "id"),
    )


class ShadowStore:
    """The `shadow_pairs` table: the gateway records pairs, the shadow_comparison asset reads.

    With create=False a missing SQLite file is an error and a missing table is not created
    (reads find no pairs), so a read-only copy is read without writing anything.
    """

    def __init__(self, url: str, *, create: bool = True) -> None:

        self.url = url
        self._engine, self._table = open_store(url, WHAT, _define, create=create,
                                               env=LEDGER_ENV, error=ShadowStoreError)
        self._create = create

    def record(self, pair: ShadowPair) -> bool:
        """Add one pair; False when this request was already recorded for this challenger.

        Raises ShadowStoreError when the store cannot be written; then nothing was added.
        """
        import sqlalchemy as sa

        values = {"request_id": pair.request_id, "at": pair.at.astimezone(UTC),
                  "model": pair.model, "served_version": str(pair.served_version),
                  "challenger_version": str(pair.challenger_version),
                  "question_sha256": pair.question_sha256,
                  "question_chars": pair.question_chars,
                  "served_citations": list(pair.served_citations),
                  "challenger_citations": list(pair.challenger_citations),
                  "served_abstained": pair.served_abstained,
                  "challenger_abstained": pair.challenger_abstained,
                  "served_refused": pair.served_refused,
                  "challenger_refused": pair.challenger_refused,
                  "served_latency_ms": pair.served_latency_ms,
                  "challenger_latency_ms": pair.challenger_latency_ms,
                  "agreement": pair.agreement, "challenger_error": pair.challenger_error}
        try:
            with self._engine.begin() as connection:
                connection.execute(self._table.insert().values(**values))
        except sa.exc.IntegrityError:  # the unique (model, challenger, request) key: a retry
            return False
        except sa.exc.SQLAlchemyError as exc:
            raise store_error(exc, WHAT, self.url, "write to", ShadowStoreError,
                              field=f"${LEDGER_ENV}") from None
        return True

    def pairs(self, model: str, challenger_version: str | None = None,
              limit: int | None = None) -> list[ShadowPair]:
        """The model's pairs, newest first (the newest `limit` when given)."""
        t = self._table.c
        query = self._table.select().where(t.model == model).order_by(t.id.desc())
        if challenger_version is not None:
            query = query.where(t.challenger_version == str(challenger_version))
        if limit is not None:
            query = query.limit(limit)
        return [_pair(row) for row in self._read(query)]

    def summarise(self, model: str) -> list[ShadowSummary]:
        """One summary per (served version, challenger version) of the model, oldest first."""
        query = self._table.select().where(self._table.c.model == model).order_by(
            self._table.c.id)
        return summarise_pairs(_pair(row) for row in self._read(query))

    def _read(self, query) -> list:
        import sqlalchemy as sa

        try:
            if not self._create and not sa.inspect(self._engine).has_table(TABLE):
                return []  # nothing was ever recorded here, and this reader creates nothing
            with self._engine.connect() as connection:
                return list(connection.execute(query))
        except sa.exc.SQLAlchemyError as exc:
            raise store_error(exc, WHAT, self.url, "read", ShadowStoreError,
                              field=f"${LEDGER_ENV}") from None

    def close(self) -> None:
        """Release connections."""
        self._engine.dispose()


def _pair(row) -> ShadowPair:
    # SQLite hands timestamps back without their zone; they were written in UTC.
    at = row.at.replace(tzinfo=UTC) if row.at.tzinfo is None else row.at.astimezone(UTC)
    return ShadowPair(
        request_id=row.request_id, at=at, model=row.model, served_version=row.served_version,
        challenger_version=row.challenger_version, question_sha256=row.question_sha256,
        question_chars=row.question_chars, served_citations=tuple(row.served_citations),
        challenger_citations=tuple(row.challenger_citations),
        served_abstained=bool(row.served_abstained),
        challenger_abstained=bool(row.challenger_abstained),
        served_refused=bool(row.served_refused), challenger_refused=bool(row.challenger_refused),
        served_latency_ms=row.served_latency_ms, challenger_latency_ms=row.challenger_latency_ms,
        agreement=row.agreement, challenger_error=row.challenger_error)
