"""Grounded answers: screen, retrieve from a snapshot, quote the best sentences, cite, screen.

The query path is input guard → retrieval → passage guard → answer → output guard. A
critical finding on the question refuses it; a passage with planted instructions is not
quoted; an answer with a critical finding is withheld and soft findings are redacted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

from plimsoll.common.settings import ABSTAIN_BELOW
from plimsoll.guard import Finding, Guard, GuardPolicy, Verdict, redact
from plimsoll.retrieval.encoder import Encoder
from plimsoll.retrieval.hybrid import RETRIEVAL_MODES, LexicalIndex, hybrid_search
from plimsoll.retrieval.snapshot import Hit, IndexSnapshot, query_snapshot
from plimsoll.serving.prompts import PromptTemplate

_WORD = re.compile(r"[a-z0-9_]+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
STOPWORDS = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from",
    "how", "i", "in", "is", "it", "me", "my", "of", "on", "or", "the", "to", "what", "when",
    "where", "which", "who", "why", "with", "you", "your"))
MODES = ("answer", "facts")
QUOTABLE = 3  # passages considered for citation (two are cited)


@dataclass(frozen=True)
class GuardReport:
    """What the guard saw at each stage of one answer, and what it did about it."""

    # none | refused-input | dropped-passages | withheld-output | redacted-output
    action: str = "none"
    input: Verdict = field(default_factory=Verdict)
    passages: Verdict = field(default_factory=Verdict)
    output: Verdict = field(default_factory=Verdict)

    @property
    def findings(self) -> tuple[Finding, ...]:
        """Every finding of every stage."""
        return self.input.findings + self.passages.findings + self.output.findings

    def as_dict(self) -> dict[str, object]:
        """JSON shape for answer metadata and threat-check reports."""
        return {"action": self.action, "input": self.input.as_dict(),
                "passages": self.passages.as_dict(), "output": self.output.as_dict()}


@dataclass(frozen=True)
class Answer:
    """What the assistant says, what it cites, and which bundle said it."""

    text: str
    abstained: bool
    citations: tuple[Hit, ...]
    hits: tuple[Hit, ...]
    metadata: dict[str, str] = field(default_factory=dict)
    guard: GuardReport = field(default_factory=GuardReport)
    # What the gateway's metrics and drift features read: the question's embedding (None when
    # it was refused before retrieval) and the passage-verdict cache lookups of this answer.
    query_vector: object = field(default=None, compare=False, repr=False)
    passage_cache: tuple[int, int] = field(default=(0, 0), compare=False)  # (hits, misses)

    @property
    def refused(self) -> bool:
        """The guard stopped the question or withheld the answer."""
        return self.guard.action in ("refused-input", "withheld-output")


class Answerer:
    """Retrieval over one snapshot plus an extractive answer in a versioned template.

    `mode="facts"` is the incident lever: answers become verbatim quotes of the cited
    passages (the strict facts template) or a polite deferral.
    """

    def __init__(self, encoder: Encoder, snapshot: IndexSnapshot, answer_template: PromptTemplate,
                 abstain_template: PromptTemplate, abstain_below: float = ABSTAIN_BELOW,
                 k: int = 10,
                 metadata: dict[str, str] | None = None, *, guard: Guard | None = None,
                 refuse_template: PromptTemplate | None = None,
                 facts_template: PromptTemplate | None = None, mode: str = "answer",
                 retrieval: str = "dense") -> None:
        if retrieval not in RETRIEVAL_MODES:
            raise ValueError(f"retrieval '{retrieval}' is not one of {RETRIEVAL_MODES}")
        if mode not in MODES:
            raise ValueError(f"answer mode '{mode}' is not one of {MODES}")
        if mode == "facts" and facts_template is None:
            raise ValueError("mode 'facts' needs the facts template (prompts/facts.md)")
        self.encoder = encoder
        self.snapshot = snapshot
        self.answer_template = answer_template
        self.abstain_template = abstain_template
        self.refuse_template = refuse_template or abstain_template
        self.facts_template = facts_template
        self.abstain_below = abstain_below
        self.k = k
        self.guard = guard
        self.mode = mode
        self.retrieval = retrieval
        # hybrid: BM25 over the snapshot's chunks, built on first use (a fraction of a second)
        self._lexical = None
        template = facts_template if mode == "facts" else answer_template
        self.metadata = {"index_snapshot_id": snapshot.snapshot_id,
                         "prompt_template": template.ref, "answer_mode": mode,
                         **(metadata or {})}
        self._passage_verdicts: dict[str, Verdict] = {}
        # Without a guard a question is still admitted: retrieval must not read 5 MB or
        # text the encoder cannot encode.
        self._admission = guard or Guard(GuardPolicy(), classifier=None)

    def in_mode(self, mode: str) -> Answerer:
        """The same bundle (encoder, snapshot, guard, templates) answering in another mode."""
        return self if mode == self.mode else self._rebuilt(mode, self.retrieval)

    def with_retrieval(self, retrieval: str) -> Answerer:
        """The same bundle retrieving another way (dense, or hybrid: BM25 fused with dense)."""
        return self if retrieval == self.retrieval else self._rebuilt(self.mode, retrieval)

    def _rebuilt(self, mode: str, retrieval: str) -> Answerer:
        extra = {k: v for k, v in self.metadata.items()
                 if k not in ("index_snapshot_id", "prompt_template", "answer_mode")}
        return Answerer(self.encoder, self.snapshot, self.answer_template,
                        self.abstain_template, self.abstain_below, self.k, metadata=extra,
                        guard=self.guard, refuse_template=self.refuse_template,
                        facts_template=self.facts_template, mode=mode, retrieval=retrieval)

    def retrieve(self, question: str) -> tuple[Hit, ...]:
        """The k nearest passages of the snapshot."""
        return tuple(query_snapshot(self.snapshot, self.encoder, question, k=self.k))

    def search(self, question: str) -> tuple[tuple[Hit, ...], object]:
        """The k nearest passages and the question's embedding (for the drift features)."""
        if not _same_encoder(self):
            return self.retrieve(question), None  # raises SnapshotConflictError, naming the fix
        vector = self.encoder.embed([question])
        if self.retrieval == "hybrid":
            if self._lexical is None:
                self._lexical = LexicalIndex(self.snapshot.chunks["text"])
            return tuple(hybrid_search(self.snapshot, self._lexical, vector, [question],
                                       self.k)[0]), vector[0]
        return tuple(self.snapshot.search(vector, self.k)[0]), vector[0]

    def answer(self, question: object, *, strict: bool = False, tracer=None) -> Answer:
        """Answer one question through the whole guarded query path.

        A question that is not a string or is over the guard policy's max_input_chars is
        refused before anything reads it; invalid Unicode in it is read as U+FFFD.
        `strict` is the strict safety lever: soft findings refuse the question or withhold
        the answer too, instead of being redacted. With an OpenTelemetry `tracer`, each stage
        is a span (guard.input, retrieval, guard.passages, answer.compose, guard.output).
        """
        with _span(tracer, "guard.input") as span:
            admitted, screened = self._admission.admit(question, "input")
            if admitted is not None and self.guard:
                screened += self.guard.screen_input(admitted)
            _guard_attributes(span, screened)
        if admitted is None:
            return self._refusal(GuardReport("refused-input", input=screened))
        if screened.blocked or (strict and screened.flagged):
            return self._refusal(GuardReport("refused-input", input=screened))
        with _span(tracer, "retrieval") as span:
            hits, vector = self.search(admitted)
            if span is not None:
                span.set_attribute("gen_ai.operation.name", "embeddings")
                span.set_attribute("plimsoll.index.snapshot", self.snapshot.snapshot_id)
                span.set_attribute("plimsoll.retrieval.k", self.k)
                span.set_attribute("plimsoll.retrieval.top_score",
                                   float(hits[0].score) if hits else 0.0)
        answer = self.respond(admitted, hits, screened, tracer=tracer, query_vector=vector)
        if strict and answer.guard.action == "redacted-output":
            report = answer.guard
            return self._refusal(GuardReport("withheld-output", report.input, report.passages,
                                             report.output), answer.hits)
        return answer

    def respond(self, question: str, hits: Sequence[Hit], screened: Verdict | None = None, *,
                tracer=None, query_vector=None) -> Answer:
        """Answer from given passages (retrieval's, or planted ones in a threat check)."""
        hits = tuple(hits)
        report = GuardReport(input=screened or Verdict())
        with _span(tracer, "guard.passages") as span:
            usable, dropped, cache = self._screen_passages(hits)
            _guard_attributes(span, dropped)
        seen = {"query_vector": query_vector, "passage_cache": cache}
        report = GuardReport("dropped-passages" if dropped.blocked else report.action,
                             report.input, dropped, report.output)
        if not usable or usable[0].score < self.abstain_below:
            return Answer(text=self.abstain_template.render(), abstained=True, citations=(),
                          hits=hits, metadata=self.metadata, guard=report, **seen)
        cited = [hit for hit in usable[:QUOTABLE] if hit.score >= self.abstain_below][:2]
        with _span(tracer, "answer.compose") as span:
            text = self._compose(question, cited)
            if span is not None:
                span.set_attribute("gen_ai.operation.name", "text_completion")
                span.set_attribute("plimsoll.answer.mode", self.mode)
                span.set_attribute("plimsoll.citations", len(cited))
        if self.guard is None:
            return Answer(text=text, abstained=False, citations=tuple(cited), hits=hits,
                          metadata=self.metadata, guard=report, **seen)
        with _span(tracer, "guard.output") as span:
            output = self.guard.screen_output(text)
            _guard_attributes(span, output)
        if output.blocked:
            refusal = self._refusal(GuardReport("withheld-output", report.input, dropped,
                                                output), hits)
            return Answer(refusal.text, refusal.abstained, refusal.citations, refusal.hits,
                          refusal.metadata, refusal.guard, **seen)
        action = ("redacted-output" if output.flagged
                  else "dropped-passages" if dropped.blocked else "none")
        return Answer(text=redact(text, output) if output.flagged else text, abstained=False,
                      citations=tuple(cited), hits=hits, metadata=self.metadata,
                      guard=GuardReport(action, report.input, dropped, output), **seen)

    def _compose(self, question: str, cited: list[Hit]) -> str:
        if self.mode == "facts":
            return self.facts_template.render(quotes=[
                {"text": best_sentence(question, hit.text), "doc_id": hit.doc_id}
                for hit in cited])
        sentences = [best_sentence(question, hit.text) for hit in cited]
        return self.answer_template.render(
            answer=" ".join(f"{s} [{i}]" for i, s in enumerate(sentences, start=1)),
            citations=[{"doc_id": h.doc_id, "chunk_id": h.chunk_id} for h in cited])

    def _screen_passages(self, hits: tuple[Hit, ...]
                         ) -> tuple[list[Hit], Verdict, tuple[int, int]]:
        """Passages fit to quote (up to QUOTABLE), their findings, the cache's (hits, misses).

        Findings cover every passage screened on the way, the dropped ones included.
        """
        if self.guard is None:
            return list(hits), Verdict(), (0, 0)
        usable, findings, cached, screened = [], [], 0, 0
        for hit in hits:
            if len(usable) == QUOTABLE:
                break  # later passages are never quoted: no need to screen them
            verdict = self._passage_verdicts.get(hit.chunk_id)
            if verdict is None:
                screened += 1
                verdict = self.guard.screen_passage(hit.text)
                if hit.chunk_id:
                    self._passage_verdicts[hit.chunk_id] = verdict
            else:
                cached += 1
            findings += verdict.findings
            if not verdict.blocked:
                usable.append(hit)
        return usable, Verdict(tuple(findings)), (cached, screened)

    def _refusal(self, report: GuardReport, hits: tuple[Hit, ...] = ()) -> Answer:
        return Answer(text=self.refuse_template.render(), abstained=True, citations=(),
                      hits=hits, metadata=self.metadata, guard=report)


def _span(tracer, name: str):
    """A span of the answer path when tracing, else nothing (the eval and the CLI).

    An exception's message and stack are not recorded: they may quote the question, and
    traces leave the process (the gateway marks the request failed by type).
    """
    if tracer is None:
        return nullcontext()
    return tracer.start_as_current_span(name, record_exception=False)


def _guard_attributes(span, verdict: Verdict) -> None:
    if span is not None:
        span.set_attribute("plimsoll.guard.findings", len(verdict.findings))
        span.set_attribute("plimsoll.guard.blocked", bool(verdict.blocked))
        if verdict.findings:
            span.set_attribute("plimsoll.guard.categories",
                               sorted({f.category for f in verdict.findings}))


def _same_encoder(answerer: Answerer) -> bool:
    """The snapshot was built by this encoder (query_snapshot's check, done once)."""
    return answerer.encoder.directory.digest == \
        answerer.snapshot.manifest["inputs"]["encoder_digest"]


def best_sentence(question: str, passage: str) -> str:
    """The passage sentence sharing the most content words with the question."""
    wanted = {w for w in _WORD.findall(question.lower()) if w not in STOPWORDS}
    body = passage.split("\n", 1)[-1] if "\n" in passage else passage
    sentences = [s.strip() for s in _SENTENCE.split(" ".join(body.split())) if s.strip()]
    if not sentences:
        return " ".join(passage.split())
    return max(sentences, key=lambda s: (len(wanted & set(_WORD.findall(s.lower()))),
                                         -sentences.index(s)))
