"""Embeddings already computed, keyed by (encoder digest, chunk hash), in SQLite."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from plimsoll.common.errors import PlimsollError

_BATCH = 900  # below SQLite's default limit of bound parameters


class EmbeddingCacheError(PlimsollError):
    """The embedding cache file cannot be used; being a cache, it can be deleted."""


class EmbeddingCache:
    """One SQLite file per encoder digest; vectors stored as float32 bytes."""

    def __init__(self, directory: Path, encoder_digest: str, dimension: int | None = None):
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{encoder_digest}.sqlite"
        with self._checked():
            self._db = sqlite3.connect(self.path, timeout=60)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS vectors "
                             "(chunk_hash TEXT PRIMARY KEY, vector BLOB NOT NULL)")
        self.dimension = dimension

    @contextlib.contextmanager
    def _checked(self) -> Iterator[None]:
        """SQLite's errors as errors about this file (a damaged file, a read-only folder)."""
        try:
            yield
        except sqlite3.OperationalError as exc:  # locked, read-only, cannot open: not damage
            raise EmbeddingCacheError(f"cannot use the embedding cache ({exc})", file=self.path,
                                      fix="check that its folder is writable and that no "
                                      "other process holds it locked") from None
        except sqlite3.DatabaseError as exc:
            raise EmbeddingCacheError(f"the embedding cache is damaged ({exc})", file=self.path,
                                      fix=self._delete_fix) from None

    @property
    def _delete_fix(self) -> str:
        return (f"delete {self.path}: it is only a cache, and the next build embeds its chunks "
                "again")

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def missing(self, chunk_hashes: Iterable[str]) -> list[str]:
        """The given hashes with no cached vector, deduplicated, in first-seen order."""
        unique = list(dict.fromkeys(chunk_hashes))
        present: set[str] = set()
        with self._checked():
            for start in range(0, len(unique), _BATCH):
                batch = unique[start:start + _BATCH]
                marks = ",".join("?" * len(batch))
                present.update(row[0] for row in self._db.execute(
                    f"SELECT chunk_hash FROM vectors WHERE chunk_hash IN ({marks})", batch))
        return [h for h in unique if h not in present]

    def put(self, chunk_hashes: Sequence[str], vectors: np.ndarray) -> None:
        """Store vectors for hashes (same order); one transaction."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self._checked(), self._db:
            self._db.executemany("INSERT OR IGNORE INTO vectors VALUES (?, ?)",
                                 zip(chunk_hashes, (row.tobytes() for row in vectors),
                                     strict=True))

    def get(self, chunk_hashes: Sequence[str]) -> np.ndarray:
        """Vectors for hashes, in the given order; a missing hash is a KeyError."""
        found: dict[str, bytes] = {}
        unique = list(dict.fromkeys(chunk_hashes))
        with self._checked():
            for start in range(0, len(unique), _BATCH):
                batch = unique[start:start + _BATCH]
                marks = ",".join("?" * len(batch))
                found.update(self._db.execute(
                    f"SELECT chunk_hash, vector FROM vectors WHERE chunk_hash IN ({marks})",
                    batch))
        absent = [h for h in unique if h not in found]
        if absent:
            raise KeyError(f"{len(absent)} chunk hashes have no cached vector, e.g. {absent[0]}")
        # Every vector of one encoder has one size; another size is a damaged row, and
        # stacking it would fail (or, cut to fit, index garbage).
        sizes = {len(blob) if isinstance(blob, bytes) else -1 for blob in found.values()}
        if self.dimension:
            sizes.add(self.dimension * 4)
        if len(sizes) > 1 or any(size <= 0 or size % 4 for size in sizes):
            raise EmbeddingCacheError(f"cached vectors have differing sizes ({sorted(sizes)} "
                                      "bytes)", file=self.path, field="vectors.vector",
                                      fix=self._delete_fix)
        if sizes:
            self.dimension = sizes.pop() // 4
        return np.stack([np.frombuffer(found[h], dtype=np.float32) for h in chunk_hashes])
