"""Grounded answers: retrieve from a snapshot, quote the best sentences, cite, or abstain."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from plimsoll.encoder import Encoder
from plimsoll.index_snapshot import Hit, IndexSnapshot, query_snapshot
from plimsoll.prompts import PromptTemplate

_WORD = re.compile(r"[a-z0-9_]+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
STOPWORDS = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from",
    "how", "i", "in", "is", "it", "me", "my", "of", "on", "or", "the", "to", "what", "when",
    "where", "which", "who", "why", "with", "you", "your"))


@dataclass(frozen=True)
class Answer:
    """What the assistant says, what it cites, and which bundle said it."""

    text: str
    abstained: bool
    citations: tuple[Hit, ...]
    hits: tuple[Hit, ...]
    metadata: dict[str, str] = field(default_factory=dict)


class Answerer:
    """Retrieval over one snapshot plus an extractive answer in a versioned template."""

    def __init__(self, encoder: Encoder, snapshot: IndexSnapshot, answer_template: PromptTemplate,
                 abstain_template: PromptTemplate, abstain_below: float = 0.35, k: int = 10,
                 metadata: dict[str, str] | None = None) -> None:
        self.encoder = encoder
        self.snapshot = snapshot
        self.answer_template = answer_template
        self.abstain_template = abstain_template
        self.abstain_below = abstain_below
        self.k = k
        self.metadata = {"index_snapshot_id": snapshot.snapshot_id,
                         "prompt_template": answer_template.ref, **(metadata or {})}

    def answer(self, question: str) -> Answer:
        """Answer one question; below the score threshold, abstain politely."""
        hits = tuple(query_snapshot(self.snapshot, self.encoder, question, k=self.k))
        if not hits or hits[0].score < self.abstain_below:
            return Answer(text=self.abstain_template.render(), abstained=True,
                          citations=(), hits=hits, metadata=self.metadata)
        cited = [hit for hit in hits[:3] if hit.score >= self.abstain_below][:2]
        sentences = [best_sentence(question, hit.text) for hit in cited]
        text = self.answer_template.render(
            answer=" ".join(f"{s} [{i}]" for i, s in enumerate(sentences, start=1)),
            citations=[{"doc_id": h.doc_id, "chunk_id": h.chunk_id} for h in cited])
        return Answer(text=text, abstained=False, citations=tuple(cited), hits=hits,
                      metadata=self.metadata)


def best_sentence(question: str, passage: str) -> str:
    """The passage sentence sharing the most content words with the question."""
    wanted = {w for w in _WORD.findall(question.lower()) if w not in STOPWORDS}
    body = passage.split("\n", 1)[-1] if "\n" in passage else passage
    sentences = [s.strip() for s in _SENTENCE.split(" ".join(body.split())) if s.strip()]
    if not sentences:
        return " ".join(passage.split())
    return max(sentences, key=lambda s: (len(wanted & set(_WORD.findall(s.lower()))),
                                         -sentences.index(s)))
