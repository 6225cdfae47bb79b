"""Request features: what the gateway records of each answer for drift, never the text.

Each answered request becomes one `RequestFeatures` row: sizes, the script mix of the
question's letters, how much of it the encoder's vocabulary knows, how far its embedding lies
from the served snapshot's centroid, what was cited and how the answer was decided, and what
it cost. Privacy by default: no question or answer text and no user id is kept, so the
table can be kept as long as drift needs. Rows go to the `request_features` table of
Plimsoll's own SQL store (the promotion ledger's database) through `FeatureRecorder`, a
writer thread off the request path; the Dagster assets read them back by day.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import re
import threading
import time
import unicodedata
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path

import numpy as np

from plimsoll.common.sql import StoreError, open_store, store_error
from plimsoll.serving.fallbacks import SHORT_FORM, STATIC

LEDGER_ENV = "PLIMSOLL_LEDGER_URL"
WHAT = "request feature store"
TABLE = "request_features"
FALLBACKS = (None, STATIC, SHORT_FORM)
SCRIPTS = ("latin", "cyrillic", "cjk", "arabic", "other")
# The first word of a letter's Unicode name names its script; these are grouped as CJK.
_CJK_NAMES = frozenset({"CJK", "HIRAGANA", "KATAKANA", "HANGUL", "BOPOMOFO", "KANGXI",
                        "IDEOGRAPHIC", "HALFWIDTH"})
_WORD = re.compile(r"\w+")
log = logging.getLogger("plimsoll.observability")


class RequestFeatureStoreError(StoreError):
    """The request feature store cannot be opened, read or written."""


@dataclass(frozen=True)
class RequestFeatures:
    """One answered request as features: sizes, scripts, novelty, outcome and cost; no text."""

    request_id: str
    at: datetime  # UTC, when the answer was sent
    model: str  # registered model name
    model_version: str | None  # None: no version answered (the static fallback)
    route: str  # how the version was chosen (champion, pin, canary, ...); "" when not known
    question_chars: int
    question_words: int
    # Shares of the question's letters in each script; all 0.0 when it has no letters.
    latin_share: float
    cyrillic_share: float
    cjk_share: float
    arabic_share: float
    other_share: float
    oov_rate: float | None  # share of words the encoder's vocabulary lacks; None: no vocab
    centroid_distance: float | None  # cosine distance to the snapshot's centroid; None: unknown
    top_cited_doc: str | None  # doc id of the first citation
    citations: int
    answer_chars: int
    abstained: bool
    refused: bool
    guard_flagged: bool  # any guard finding, at any stage
    fallback: str | None  # None, "static_suggestions" or "short_form"
    latency_ms: float
    cpu_ms: float

    def __post_init__(self) -> None:
        problem = _problem(self)
        if problem:
            raise ValueError(f"request features {self.request_id!r}: {problem}")

    @property
    def day(self) -> date:
        """The UTC day the request belongs to (the Dagster partition)."""
        return self.at.astimezone(UTC).date()


def _problem(row: RequestFeatures) -> str | None:
    """What makes a row unrecordable, if anything (these are the gateway's mistakes)."""
    if not row.request_id or not row.model:
        return "request_id and model must be non-empty"
    if row.at.tzinfo is None:
        return "at must be timezone-aware (datetime.now(UTC))"
    if row.fallback not in FALLBACKS:
        return f"fallback must be one of {FALLBACKS}, got {row.fallback!r}"
    if min(row.question_chars, row.question_words, row.citations, row.answer_chars) < 0 or \
            row.latency_ms < 0 or row.cpu_ms < 0:
        return "counts, latency_ms and cpu_ms must not be negative"
    shares = [row.latin_share, row.cyrillic_share, row.cjk_share, row.arabic_share,
              row.other_share]
    if row.oov_rate is not None:
        shares.append(row.oov_rate)
    if not all(0.0 <= share <= 1.0 for share in shares):
        return "script shares and oov_rate must be within 0..1"
    return None


@dataclass(frozen=True)
class Vocabulary:
    """The whole words an encoder's tokenizer knows (no sub-word pieces, no special tokens)."""

    words: frozenset[str]
    lowercase: bool  # an uncased tokenizer: questions are looked up lowercased

    def knows(self, word: str) -> bool:
        """Whether the tokenizer has this word as one token."""
        return (word.lower() if self.lowercase else word) in self.words


def encoder_vocabulary(encoder_path: str | Path) -> Vocabulary | None:
    """The vocabulary of a local encoder directory (WordPiece vocab.txt or BPE vocab.json).

    None when the directory has neither file: the OOV rate is then not measured, not 0.
    """
    import json

    directory = Path(encoder_path)
    if (directory / "vocab.txt").is_file():  # WordPiece: "##" marks a piece inside a word
        tokens = (directory / "vocab.txt").read_text(encoding="utf-8").splitlines()
        words = {t for t in tokens if t and not t.startswith("##")
                 and not (t.startswith("[") and t.endswith("]"))}
    elif (directory / "vocab.json").is_file():  # byte-level BPE: "Ġ" marks a word start
        tokens = json.loads((directory / "vocab.json").read_text(encoding="utf-8"))
        words = {t[1:] for t in tokens if t.startswith("Ġ") and len(t) > 1}
    else:
        return None
    return Vocabulary(frozenset(words), lowercase=not any(w != w.lower() for w in words))


@lru_cache(maxsize=8192)
def _script(letter: str) -> str:
    # "KATAKANA-HIRAGANA PROLONGED SOUND MARK" is Japanese: the word before a hyphen counts.
    head = unicodedata.name(letter, "").split(" ", 1)[0].split("-", 1)[0]
    if head == "LATIN":
        return "latin"
    if head == "CYRILLIC":
        return "cyrillic"
    if head == "ARABIC":
        return "arabic"
    return "cjk" if head in _CJK_NAMES else "other"


def script_shares(text: str) -> dict[str, float]:
    """Share of the text's letters in each of SCRIPTS; all 0.0 when it has no letters.

    Letters are what str.isalpha() accepts (digits, punctuation and emoji are not letters);
    a letter's script is the first word of its Unicode name, so "é" is Latin and "ё" Cyrillic.
    """
    counts = dict.fromkeys(SCRIPTS, 0)
    if text.isascii():  # the common case, without a lookup per letter
        counts["latin"] = sum(1 for ch in text if ch.isalpha())
    else:
        for ch in text:
            if ch.isalpha():
                counts[_script(ch)] += 1
    letters = sum(counts.values())
    return {name: (count / letters if letters else 0.0) for name, count in counts.items()}


def centroid_distance(query_vector: np.ndarray, centroid: np.ndarray) -> float | None:
    """Cosine distance (1 - cosine similarity) of a query embedding to a centroid.

    None when either vector is zero or the widths differ: the distance is then unknown.
    """
    query = np.asarray(query_vector, dtype=np.float64).ravel()
    center = np.asarray(centroid, dtype=np.float64).ravel()
    if query.shape != center.shape:
        return None
    norms = float(np.linalg.norm(query)) * float(np.linalg.norm(center))
    if norms == 0.0:
        return None
    return float(min(2.0, max(0.0, 1.0 - float(query @ center) / norms)))


def extract_features(question: str, answer_text: str, *, request_id: str, at: datetime,
                     model: str, model_version: str | None, route: str, abstained: bool,
                     refused: bool, guard_flagged: bool, fallback: str | None,
                     cited_doc_ids: Sequence[str], latency_ms: float, cpu_ms: float,
                     query_vector: np.ndarray | None = None,
                     centroid: np.ndarray | None = None,
                     vocab: Vocabulary | Container[str] | None = None) -> RequestFeatures:
    """The features of one answered request; the texts are measured here and not kept.

    Cheap enough for the request path (tens of microseconds for a 200-character question):
    one regex pass for words, one pass over the letters for scripts, one dot product.
    Words are runs of letters, digits and underscores, so a CJK sentence without spaces is
    one word.
    """
    words = _WORD.findall(question)
    shares = script_shares(question)
    oov = None
    if vocab is not None and words:
        knows = vocab.knows if isinstance(vocab, Vocabulary) else vocab.__contains__
        oov = sum(1 for word in words if not knows(word)) / len(words)
    elif vocab is not None:
        oov = 0.0  # nothing to look up: no word is out of the vocabulary
    distance = None
    if query_vector is not None and centroid is not None:
        distance = centroid_distance(query_vector, centroid)
    return RequestFeatures(
        request_id=request_id, at=at.astimezone(UTC), model=model,
        model_version=None if model_version is None else str(model_version), route=route,
        question_chars=len(question), question_words=len(words),
        latin_share=shares["latin"], cyrillic_share=shares["cyrillic"],
        cjk_share=shares["cjk"], arabic_share=shares["arabic"], other_share=shares["other"],
        oov_rate=oov, centroid_distance=distance,
        top_cited_doc=str(cited_doc_ids[0]) if cited_doc_ids else None,
        citations=len(cited_doc_ids), answer_chars=len(answer_text), abstained=bool(abstained),
        refused=bool(refused), guard_flagged=bool(guard_flagged), fallback=fallback,
        latency_ms=float(latency_ms), cpu_ms=float(cpu_ms))


def snapshot_centroid(snapshot, window: int = 4096) -> np.ndarray | None:
    """The L2-normalised mean of an index snapshot's vectors; None for an empty snapshot.

    `snapshot` is an opened plimsoll.retrieval.snapshot.IndexSnapshot. Read from its verified
    vectors.npy in windows (memory-mapped, so a large snapshot is not loaded whole); a
    snapshot without that file is read back from its FAISS index.
    """
    from plimsoll.retrieval.snapshot import VECTOR_FILE

    path = Path(snapshot.path) / VECTOR_FILE
    if path.is_file():
        vectors = np.load(path, mmap_mode="r")
    else:
        vectors = snapshot.index.reconstruct_n(0, snapshot.index.ntotal)
    if vectors.ndim != 2 or not len(vectors):
        return None
    total = np.zeros(vectors.shape[1], dtype=np.float64)
    for start in range(0, len(vectors), window):
        total += np.asarray(vectors[start:start + window], dtype=np.float64).sum(axis=0)
    del vectors
    norm = float(np.linalg.norm(total))
    return None if norm == 0.0 else (total / norm).astype(np.float32)


# The store.

def _define(metadata):
    import sqlalchemy as sa

    return sa.Table(
        TABLE, metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        # A request is recorded once, whichever replica or retry writes it again.
        sa.Column("request_id", sa.String(128), nullable=False, unique=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day", sa.Date, nullable=False),  # the UTC day of `at`: the partition key
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=True),
        sa.Column("route", sa.String(64), nullable=False),
        sa.Column("question_chars", sa.Integer, nullable=False),
        sa.Column("question_words", sa.Integer, nullable=False),
        sa.Column("latin_share", sa.Float, nullable=False),
        sa.Column("cyrillic_share", sa.Float, nullable=False),
        sa.Column("cjk_share", sa.Float, nullable=False),
        sa.Column("arabic_share", sa.Float, nullable=False),
        sa.Column("other_share", sa.Float, nullable=False),
        sa.Column("oov_rate", sa.Float, nullable=True),
        sa.Column("centroid_distance", sa.Float, nullable=True),
        sa.Column("top_cited_doc", sa.String(512), nullable=True),
        sa.Column("citations", sa.Integer, nullable=False),
        sa.Column("answer_chars", sa.Integer, nullable=False),
        sa.Column("abstained", sa.Boolean, nullable=False),
        sa.Column("refused", sa.Boolean, nullable=False),
        sa.Column("guard_flagged", sa.Boolean, nullable=False),
        sa.Column("fallback", sa.String(32), nullable=True),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("cpu_ms", sa.Float, nullable=False),
        sa.Index("request_features_by_day", "model", "day"),
    )


COLUMNS = tuple(field.name for field in dataclasses.fields(RequestFeatures))


class RequestFeatureStore:
    """The `request_features` table: the gateway's recorder writes, the drift assets read.

    With create=False a missing SQLite file is an error and a missing table is not created
    (reads find no rows), so a read-only copy is read without writing anything.
    """

    def __init__(self, url: str, *, create: bool = True) -> None:
        self.url = url
        self._engine, self._table = open_store(url, WHAT, _define, create=create,
                                               env=LEDGER_ENV, error=RequestFeatureStoreError)
        self._create = create

    def record_many(self, rows: Iterable[RequestFeatures]) -> int:
        """Add rows in one transaction; a request already recorded is skipped, not an error.

        Returns how many rows were new. Raises RequestFeatureStoreError when the store cannot
        be written; then none of these rows was added.
        """
        import sqlalchemy as sa

        unique: dict[str, dict[str, object]] = {}
        for row in rows:
            unique.setdefault(row.request_id, _values(row))
        if not unique:
            return 0
        dialect = self._engine.dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        # ON CONFLICT DO NOTHING: two replicas writing the same request at once both succeed.
        statement = insert(self._table).on_conflict_do_nothing(index_elements=["request_id"])
        try:
            with self._engine.begin() as connection:
                result = connection.execute(statement, list(unique.values()))
        except sa.exc.SQLAlchemyError as exc:
            raise store_error(exc, WHAT, self.url, "write to", RequestFeatureStoreError,
                              field=f"${LEDGER_ENV}") from None
        return max(result.rowcount, 0)

    def read(self, model: str | None, start: date, end: date, *,
             sample: int | None = None) -> list[RequestFeatures]:
        """The rows of days start..end-1 (UTC, half-open), oldest first; model None: all.

        With `sample`, a range holding more rows than that yields every k-th row by insertion
        order (k the smallest that fits): the same rows each time, spread over the range.
        """
        import sqlalchemy as sa

        t = self._table.c
        where = [t.day >= start, t.day < end]
        if model is not None:
            where.append(t.model == model)
        if sample is not None:
            counted = self._read(sa.select(sa.func.count()).where(*where))
            total = counted[0][0] if counted else 0
            if total > sample:
                where.append(t.id % -(-total // sample) == 0)
        query = self._table.select().where(*where).order_by(t.at, t.id)
        return [_row(row) for row in self._read(query)]

    def days(self, model: str | None = None) -> dict[date, int]:
        """Requests recorded per UTC day, oldest day first."""
        import sqlalchemy as sa

        t = self._table.c
        query = sa.select(t.day, sa.func.count()).group_by(t.day).order_by(t.day)
        if model is not None:
            query = query.where(t.model == model)
        return {_as_date(day): int(count) for day, count in self._read(query)}

    def _read(self, query) -> list:
        import sqlalchemy as sa

        try:
            if not self._create and not sa.inspect(self._engine).has_table(TABLE):
                return []  # nothing was ever recorded here, and this reader creates nothing
            with self._engine.connect() as connection:
                return list(connection.execute(query))
        except sa.exc.SQLAlchemyError as exc:
            raise store_error(exc, WHAT, self.url, "read", RequestFeatureStoreError,
                              field=f"${LEDGER_ENV}") from None

    def close(self) -> None:
        """Release connections."""
        self._engine.dispose()


def _values(row: RequestFeatures) -> dict[str, object]:
    values = {name: getattr(row, name) for name in COLUMNS}
    values["at"] = row.at.astimezone(UTC)
    values["day"] = row.day
    return values


def _as_date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _row(row) -> RequestFeatures:
    mapping = row._mapping
    values = {name: mapping[name] for name in COLUMNS}
    # SQLite hands timestamps back without their zone; they were written in UTC.
    at = values["at"]
    values["at"] = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    for flag in ("abstained", "refused", "guard_flagged"):
        values[flag] = bool(values[flag])
    return RequestFeatures(**values)


# The writer off the request path.

@dataclass(frozen=True)
class RecorderStats:
    """What a FeatureRecorder did: every accepted row is recorded, pending or lost."""

    recorded: int  # rows the store accepted (a duplicate request counts as recorded)
    dropped: int  # rows refused by put(): the queue was full, or the recorder closed
    lost: int  # accepted rows given up after the store failed MAX_ATTEMPTS times
    store_errors: int  # failed writes
    pending: int  # accepted rows not yet written


class FeatureRecorder:
    """Writes request features from a background thread; the request path never waits.

    put() only enqueues: a full queue drops the row and counts it. The thread writes a batch
    every `interval_s` or `batch_rows` rows, whichever comes first. A write that fails is
    retried (after `retry_s`) up to MAX_ATTEMPTS times, then its rows are counted as lost;
    failures are logged at most once per `log_every_s` and never raised to the caller.
    """

    MAX_ATTEMPTS = 3

    def __init__(self, store: RequestFeatureStore, queue_size: int = 2048, *,
                 batch_rows: int = 100, interval_s: float = 0.5, retry_s: float = 1.0,
                 log_every_s: float = 60.0) -> None:
        if queue_size < 1 or batch_rows < 1:
            raise ValueError("queue_size and batch_rows must be at least 1")
        self._store = store
        self._queue: queue.Queue[RequestFeatures] = queue.Queue(maxsize=queue_size)
        self._batch_rows, self._interval_s, self._retry_s = batch_rows, interval_s, retry_s
        self._log_every_s = log_every_s
        self._lock = threading.Condition()
        self._closing = threading.Event()
        self._accepted = self._recorded = self._dropped = self._lost = self._errors = 0
        self._last_logged = float("-inf")
        self._unlogged_errors = 0
        self._thread = threading.Thread(target=self._run, name="plimsoll-feature-recorder",
                                        daemon=True)
        self._thread.start()

    def put(self, row: RequestFeatures) -> bool:
        """Queue one row for writing; False (and counted as dropped) when it cannot be."""
        if self._closing.is_set():
            with self._lock:
                self._dropped += 1
            return False
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            with self._lock:
                self._dropped += 1
            return False
        with self._lock:
            self._accepted += 1
        return True

    @property
    def stats(self) -> RecorderStats:
        """The counters, read together."""
        with self._lock:
            done = self._recorded + self._lost
            return RecorderStats(recorded=self._recorded, dropped=self._dropped,
                                 lost=self._lost, store_errors=self._errors,
                                 pending=self._accepted - done)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every row put so far is written or lost; False if time ran out."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._accepted > self._recorded + self._lost:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._lock.wait(min(left, 0.05))
        return True

    def close(self, timeout: float = 10.0) -> RecorderStats:
        """Stop accepting rows, write what is queued (one attempt each), stop the thread."""
        self._closing.set()
        self._thread.join(timeout)
        if not self._thread.is_alive():  # a put() that raced close() left a row behind
            with self._lock:
                while not self._queue.empty():
                    self._queue.get_nowait()
                    self._lost += 1
        return self.stats

    def _run(self) -> None:
        pending: list[RequestFeatures] = []
        attempts = 0
        while True:
            closing = self._closing.is_set()
            deadline = time.monotonic() + self._interval_s
            while len(pending) < self._batch_rows:
                try:
                    if closing:
                        pending.append(self._queue.get_nowait())
                        continue
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    pending.append(self._queue.get(timeout=min(left, 0.05)))
                except queue.Empty:
                    if closing:
                        break
                    if self._closing.is_set():
                        break  # close() was called: stop waiting for a full batch
            if pending:
                if self._write(pending):
                    pending, attempts = [], 0
                else:
                    attempts += 1
                    if attempts >= self.MAX_ATTEMPTS or closing:
                        with self._lock:
                            self._lost += len(pending)
                            self._lock.notify_all()
                        pending, attempts = [], 0
                    else:
                        self._closing.wait(self._retry_s)
            if closing and not pending and self._queue.empty():
                return

    def _write(self, rows: list[RequestFeatures]) -> bool:
        try:
            self._store.record_many(rows)
        except Exception as exc:  # whatever the store raised, the gateway keeps answering
            self._failed(exc, len(rows))
            return False
        with self._lock:
            self._recorded += len(rows)
            self._lock.notify_all()
        return True

    def _failed(self, exc: Exception, rows: int) -> None:
        with self._lock:
            self._errors += 1
            self._unlogged_errors += 1
            now = time.monotonic()
            if now - self._last_logged < self._log_every_s:
                return
            self._last_logged, count = now, self._unlogged_errors
            self._unlogged_errors = 0
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log.warning("could not record %d request feature rows (%d failed writes since the "
                    "last report; rows are retried, then counted as lost): %s",
                    rows, count, first_line)


# Summaries of a set of rows: the golden signals per model version.

NO_VERSION = "none"  # the label of requests no version answered (the static fallback)


@dataclass(frozen=True)
class GoldenSignals:
    """Traffic, latency, outcomes and cost of a set of requests (one version, or a day)."""

    model_version: str  # "all" for every version together; NO_VERSION for the static fallback
    requests: int
    latency_p50_ms: float
    latency_p95_ms: float
    abstention_rate: float
    refusal_rate: float
    fallback_rate: float
    guard_rate: float
    citation_rate: float  # share of requests with at least one citation
    cpu_seconds: float
    cost: float  # cpu_seconds × the price per CPU-second

    @property
    def cost_per_request(self) -> float:
        """Mean cost of one request."""
        return self.cost / self.requests


def signals_of(rows: Sequence[RequestFeatures], label: str,
               cost_per_cpu_second: float) -> GoldenSignals | None:
    """The golden signals of these rows; None when there are none (no numbers made up)."""
    if not rows:
        return None
    ordered = sorted(r.latency_ms for r in rows)
    n = len(rows)
    cpu_seconds = sum(r.cpu_ms for r in rows) / 1000.0
    # Nearest-rank percentiles, the same rule as the eval report and the shadow summaries.
    return GoldenSignals(
        model_version=label, requests=n, latency_p50_ms=ordered[int(0.50 * (n - 1))],
        latency_p95_ms=ordered[round(0.95 * (n - 1))],
        abstention_rate=sum(r.abstained for r in rows) / n,
        refusal_rate=sum(r.refused for r in rows) / n,
        fallback_rate=sum(r.fallback is not None for r in rows) / n,
        guard_rate=sum(r.guard_flagged for r in rows) / n,
        citation_rate=sum(r.citations > 0 for r in rows) / n,
        cpu_seconds=cpu_seconds, cost=cpu_seconds * cost_per_cpu_second)


def signals_by_version(rows: Sequence[RequestFeatures],
                       cost_per_cpu_second: float) -> list[GoldenSignals]:
    """One GoldenSignals per model version, by version number (the static fallback last)."""
    groups: dict[str, list[RequestFeatures]] = {}
    for row in rows:
        groups.setdefault(row.model_version or NO_VERSION, []).append(row)

    def order(label: str) -> tuple[int, int, str]:
        return (label == NO_VERSION, int(label) if label.isdigit() else 0, label)

    return [signals_of(groups[label], label, cost_per_cpu_second)
            for label in sorted(groups, key=order)]


def _label(model_version: str) -> str:
    """v3 for a version, "all" and "none" as they are."""
    return model_version if model_version in ("all", NO_VERSION) else f"v{model_version}"


SIGNAL_COLUMNS = ("version", "requests", "p50 ms", "p95 ms", "abstained", "refused",
                  "fallback", "guard", "cited", "CPU s", "cost", "cost / request")


def signals_markdown(signals: Sequence[GoldenSignals]) -> str:
    """The signals as a Markdown table, one row per version."""
    lines = ["| " + " | ".join(SIGNAL_COLUMNS) + " |",
             "|" + "|".join("---" for _ in SIGNAL_COLUMNS) + "|"]
    for s in signals:
        cells = (_label(s.model_version), str(s.requests), f"{s.latency_p50_ms:.1f}",
                 f"{s.latency_p95_ms:.1f}", f"{s.abstention_rate:.1%}",
                 f"{s.refusal_rate:.1%}", f"{s.fallback_rate:.1%}", f"{s.guard_rate:.1%}",
                 f"{s.citation_rate:.1%}", f"{s.cpu_seconds:.3f}", f"{s.cost:.6f}",
                 f"{s.cost_per_request:.8f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_golden_signals(rows: Sequence[RequestFeatures], signals: Sequence[GoldenSignals],
                        destination: Path) -> Path:
    """A PNG of one day's signals per version: requests and p95 latency per hour, rates, cost.

    For people without Grafana; the same numbers the gateway's metrics give, from the
    recorded features.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(11, 7), dpi=80)
    (traffic, latency), (rates, cost) = axes
    hours = np.arange(24)
    for s in signals:
        mine = [r for r in rows if (r.model_version or NO_VERSION) == s.model_version]
        per_hour: list[list[float]] = [[] for _ in hours]
        for r in mine:
            per_hour[r.at.astimezone(UTC).hour].append(r.latency_ms)
        label = _label(s.model_version)
        traffic.plot(hours, [len(h) for h in per_hour], marker=".", label=label)
        p95 = [sorted(h)[round(0.95 * (len(h) - 1))] if h else np.nan for h in per_hour]
        latency.plot(hours, p95, marker=".", label=label)
    traffic.set(title="requests per hour (UTC)", xlabel="hour", ylabel="requests",
                xlim=(-0.5, 23.5))
    latency.set(title="p95 latency per hour", xlabel="hour", ylabel="ms", xlim=(-0.5, 23.5))
    names = ("abstention_rate", "refusal_rate", "fallback_rate", "guard_rate")
    width = 0.8 / max(len(signals), 1)
    for i, s in enumerate(signals):
        rates.bar(np.arange(len(names)) + i * width, [getattr(s, n) for n in names], width,
                  label=_label(s.model_version))
    rates.set_xticks(np.arange(len(names)) + width * (len(signals) - 1) / 2,
                     [n.removesuffix("_rate") for n in names])
    rates.set(title="outcome rates", ylabel="share of requests")
    cost.bar([_label(s.model_version) for s in signals], [s.cost_per_request for s in signals])
    cost.set(title="cost per request (CPU s × price)", ylabel="currency units")
    for axis in (traffic, latency, rates):
        axis.legend(fontsize="small")
    figure.tight_layout()
    destination.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(destination)
    plt.close(figure)
    return destination
