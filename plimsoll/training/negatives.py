"""Hard negatives for each training query: mined with BM25 and the base encoder, filtered.

A hard negative is a passage that looks like the answer and is not. Each query's
candidates are the top documents of BM25 and of the base encoder, fused by reciprocal
rank, without its own document. Two filters keep out what would teach the wrong thing:

- a likely false negative: the guide model (the base encoder, as GISTEmbed uses a guide)
  scores it at least as close to the query as the query's own passage, less `margin`: it
  probably answers the query too;
- a near-duplicate of the positive (guide similarity of the two passages at or above
  `duplicate_above`, or the same text): pushing it away would push the positive away.

One survivor from the first few is kept per query, chosen by a hash of the query, so
mining is deterministic.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from plimsoll.common.hashing import sha256_text
from plimsoll.training.finetune import Pair

if TYPE_CHECKING:
    from plimsoll.retrieval.encoder import Encoder

RRF_K = 60  # reciprocal rank fusion's usual constant (Cormack et al., 2009)


@dataclass(frozen=True)
class MiningParams:
    """How negatives are mined; part of the training pairs file's identity."""

    candidates: int = 30  # top documents taken from each of BM25 and the base encoder
    choose_from: int = 3  # a negative is one of the first survivors, by a hash of the query
    margin: float = 0.05  # guide(q, neg) >= guide(q, pos) - margin: a likely false negative
    duplicate_above: float = 0.95  # guide(neg, pos) at or above this: a near-duplicate

    def as_dict(self) -> dict[str, object]:
        """Plain dict for metadata and lineage."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class MiningReport:
    """What mining found, for the asset's metadata and the run's notes."""

    queries: int
    with_negative: int
    false_negatives_dropped: int
    duplicates_dropped: int

    def as_dict(self) -> dict[str, int]:
        """Plain dict for metadata."""
        return dataclasses.asdict(self)


def document_passages(pairs: Sequence[Pair]) -> dict[str, str]:
    """One passage per document: the longest one its pairs carry (the whole document)."""
    passages: dict[str, str] = {}
    for pair in pairs:
        if pair.doc_id and len(pair.passage) > len(passages.get(pair.doc_id, "")):
            passages[pair.doc_id] = pair.passage
    return passages


def mine_hard_negatives(pairs: Sequence[Pair], guide: Encoder,
                        params: MiningParams | None = None) -> tuple[list[Pair], MiningReport]:
    """The pairs, each with a hard negative where one survives the filters."""
    import bm25s
    import numpy as np

    params = params or MiningParams()
    passages = document_passages(pairs)
    doc_ids = sorted(passages)
    if len(doc_ids) < 2:
        return list(pairs), MiningReport(len(pairs), 0, 0, 0)
    texts = [passages[d] for d in doc_ids]
    position = {doc_id: i for i, doc_id in enumerate(doc_ids)}
    depth = min(params.candidates, len(doc_ids))

    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False),
                    show_progress=False)
    queries = [p.query for p in pairs]
    lexical, _ = retriever.retrieve(bm25s.tokenize(queries, stopwords="en", show_progress=False),
                                    k=depth, show_progress=False)
    doc_vectors = guide.embed(texts)
    query_vectors = guide.embed(queries)
    similarity = query_vectors @ doc_vectors.T  # guide scores, queries x documents
    dense = np.argsort(-similarity, axis=1)[:, :depth]

    mined, false_negatives, duplicates, found = [], 0, 0, 0
    for row, pair in enumerate(pairs):
        own = position.get(pair.doc_id)
        if own is None:
            mined.append(pair)
            continue
        fused: dict[int, float] = {}
        for ranking in (lexical[row], dense[row]):
            for rank, candidate in enumerate(ranking):
                fused[int(candidate)] = fused.get(int(candidate), 0.0) + 1 / (RRF_K + rank + 1)
        ordered = sorted((c for c in fused if c != own), key=lambda c: (-fused[c], c))
        positive_score = float(similarity[row, own])
        survivors = []
        for candidate in ordered:
            if (texts[candidate] == texts[own]
                    or float(doc_vectors[candidate] @ doc_vectors[own]) >= params.duplicate_above):
                duplicates += 1
            elif float(similarity[row, candidate]) >= positive_score - params.margin:
                false_negatives += 1
            else:
                survivors.append(candidate)
                if len(survivors) == params.choose_from:
                    break
        if not survivors:
            mined.append(pair)
            continue
        chosen = survivors[int(sha256_text(pair.query)[:8], 16) % len(survivors)]
        found += 1
        mined.append(dataclasses.replace(pair, negative=texts[chosen],
                                         negative_doc_id=doc_ids[chosen]))
    return mined, MiningReport(len(pairs), found, false_negatives, duplicates)
