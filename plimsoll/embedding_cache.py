"""Embeddings already computed, keyed by (encoder digest, chunk hash), in SQLite."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

_BATCH = 900  # below SQLite's default limit of bound parameters


class EmbeddingCache:
    """One SQLite file per encoder digest; vectors stored as float32 bytes."""

    def __init__(self, directory: Path, encoder_digest: str, dimension: int | None = None):
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{encoder_digest}.sqlite"
        self._db = sqlite3.connect(self.path, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors "
                         "(chunk_hash TEXT PRIMARY KEY, vector BLOB NOT NULL)")
        self.dimension = dimension

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
        for start in range(0, len(unique), _BATCH):
            batch = unique[start:start + _BATCH]
            marks = ",".join("?" * len(batch))
            present.update(row[0] for row in self._db.execute(
                f"SELECT chunk_hash FROM vectors WHERE chunk_hash IN ({marks})", batch))
        return [h for h in unique if h not in present]

    def put(self, chunk_hashes: Sequence[str], vectors: np.ndarray) -> None:
        """Store vectors for hashes (same order); one transaction."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self._db:
            self._db.executemany("INSERT OR IGNORE INTO vectors VALUES (?, ?)",
                                 zip(chunk_hashes, (row.tobytes() for row in vectors),
                                     strict=True))

    def get(self, chunk_hashes: Sequence[str]) -> np.ndarray:
        """Vectors for hashes, in the given order; a missing hash is a KeyError."""
        found: dict[str, bytes] = {}
        unique = list(dict.fromkeys(chunk_hashes))
        for start in range(0, len(unique), _BATCH):
            batch = unique[start:start + _BATCH]
            marks = ",".join("?" * len(batch))
            found.update(self._db.execute(
                f"SELECT chunk_hash, vector FROM vectors WHERE chunk_hash IN ({marks})", batch))
        absent = [h for h in unique if h not in found]
        if absent:
            raise KeyError(f"{len(absent)} chunk hashes have no cached vector, e.g. {absent[0]}")
        return np.stack([np.frombuffer(found[h], dtype=np.float32) for h in chunk_hashes])
