"""Hybrid retrieval: BM25 and the dense index over one snapshot, fused by reciprocal rank.

Dense retrieval misses exact tokens (an error class, a flag name); BM25 misses paraphrase.
Reciprocal rank fusion (Cormack et al., 2009) adds 1 / (k + rank) over the two rankings,
needs no score calibration, and is the usual first hybrid. Each fused hit keeps its dense
(cosine) score, so the abstention threshold means what it means for dense retrieval.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from plimsoll.retrieval.snapshot import Hit, IndexSnapshot

RETRIEVAL_MODES = ("dense", "hybrid")
RRF_K = 60
DEPTH = 50  # candidates taken from each ranking before fusing


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int = RRF_K) -> list[int]:
    """Items of the rankings, best fused first; ties keep the first ranking's order."""
    scores: dict[int, float] = {}
    first_seen: dict[int, int] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank + 1)
            first_seen.setdefault(item, len(first_seen))
    return sorted(scores, key=lambda item: (-scores[item], first_seen[item]))


class LexicalIndex:
    """BM25 (bm25s, English stopwords) over a snapshot's chunk texts, built in memory."""

    def __init__(self, texts: Sequence[str]) -> None:
        import bm25s

        self._bm25s = bm25s
        self.size = len(texts)
        self.retriever = bm25s.BM25()
        self.retriever.index(bm25s.tokenize(list(texts), stopwords="en", show_progress=False),
                             show_progress=False)

    def search(self, questions: Sequence[str], k: int) -> list[list[int]]:
        """Row numbers of the top-k chunks per question (rows with no shared term dropped)."""
        depth = min(k, self.size)
        rows, scores = self.retriever.retrieve(
            self._bm25s.tokenize(list(questions), stopwords="en", show_progress=False),
            k=depth, show_progress=False)
        return [[int(r) for r, s in zip(row, score, strict=True) if s > 0]
                for row, score in zip(rows, scores, strict=True)]


def hybrid_search(snapshot: IndexSnapshot, lexical: LexicalIndex, query_vectors: np.ndarray,
                  questions: Sequence[str], k: int, depth: int = DEPTH) -> list[list[Hit]]:
    """Top-k hits per question by fused rank; each hit's score is its dense cosine score."""
    from plimsoll.retrieval.snapshot import Hit

    vectors = np.ascontiguousarray(query_vectors, np.float32)
    _, dense_rows = snapshot.index.search(vectors, min(depth, snapshot.index.ntotal))
    lexical_rows = lexical.search(questions, depth)
    results = []
    for vector, dense, words in zip(vectors, dense_rows, lexical_rows, strict=True):
        fused = reciprocal_rank_fusion([[int(r) for r in dense if r >= 0], words])[:k]
        stored = snapshot.index.reconstruct_batch(np.asarray(fused, dtype=np.int64))
        cosine = stored @ vector
        chunks = snapshot.chunks
        results.append([Hit(rank=rank + 1, score=float(score), chunk_id=chunks["chunk_id"][row],
                            doc_id=chunks["doc_id"][row], slice=chunks["slice"][row],
                            text=chunks["text"][row])
                        for rank, (row, score) in enumerate(zip(fused, cosine, strict=True))])
    return results
