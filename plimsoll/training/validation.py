"""The dev set as training sees it: score the model being trained, at each epoch's end.

Early stopping reads this score, so it must be cheap: each document of the training slices
is its title and first words (`document_passage`, as the index's first chunk begins),
encoded at the training max_length, and retrieval is over documents. These are the same
passages training encodes at each epoch's end, so the score costs only the questions.
The eval report measures the real index afterwards; this is the selection signal only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from plimsoll.common.errors import PlimsollError
from plimsoll.common.hashing import sha256_json
from plimsoll.evaluation.metrics import retrieval_scores

PASSAGE_WORDS = 120  # pairs.PASSAGE_WORDS: a document as training encodes it (no import: a cycle)


def document_passage(title: str, text: str) -> str:
    """A document as one training passage (pairs.document_passage): title and first words."""
    body = " ".join(text.split()[:PASSAGE_WORDS])
    return f"{title}\n{body}" if title else body

if TYPE_CHECKING:
    from plimsoll.datasets.store import PublishedSlice
    from plimsoll.evaluation.evalsets import EvalSet

SELECTION_METRICS = ("mrr", "recall@5")


@dataclass(frozen=True)
class DevSet:
    """Dev questions whose gold documents are in the training corpus, and that corpus."""

    name: str
    eval_set_hash: str
    questions: tuple[str, ...]
    gold: tuple[tuple[str, ...], ...]
    doc_ids: tuple[str, ...]
    doc_texts: tuple[str, ...]
    skipped: int  # answerable questions whose gold documents are all outside the corpus

    @property
    def digest(self) -> str:
        """What the selection depends on: part of the training fingerprint."""
        return sha256_json({"questions": list(self.questions), "gold": [list(g) for g in
                                                                       self.gold],
                            "docs": sha256_json([list(self.doc_ids), list(self.doc_texts)])})


def dev_set_for_training(evalset: EvalSet, slices: Sequence[PublishedSlice]) -> DevSet:
    """The answerable questions of `evalset` over the documents of `slices`."""
    import pyarrow.parquet as pq

    ids, texts = [], []
    for published in sorted(slices, key=lambda s: s.name):
        table = pq.read_table(published.path, columns=["id", "title", "text"]).to_pydict()
        for doc_id, title, text in zip(table["id"], table["title"], table["text"], strict=True):
            if doc_id is None or not text:
                continue
            ids.append(doc_id)
            texts.append(document_passage(title or "", text))
    known = set(ids)
    questions, gold, skipped = [], [], 0
    for question in evalset.questions:
        if not question.answerable:
            continue
        inside = tuple(d for d in question.gold_doc_ids if d in known)
        if not inside:
            skipped += 1
            continue
        questions.append(question.question)
        gold.append(inside)
    if not questions:
        raise PlimsollError("no dev question has a gold document in the training slices",
                            file=evalset.path, field="gold_doc_ids",
                            fix="choose a dev set about the training slices' documents")
    return DevSet(name=evalset.path.name, eval_set_hash=evalset.content_hash,
                  questions=tuple(questions), gold=tuple(gold), doc_ids=tuple(ids),
                  doc_texts=tuple(texts), skipped=skipped)


def score_vectors(dev: DevSet, doc_vectors, question_vectors) -> dict[str, float]:
    """Retrieval metrics over documents, from unit vectors (torch tensors) of both sides."""
    import torch

    top = torch.topk(question_vectors @ doc_vectors.T, k=min(10, len(dev.doc_ids)), dim=1)
    ranked = [[dev.doc_ids[int(i)] for i in row] for row in top.indices.cpu()]
    return retrieval_scores(ranked, dev.gold)
