"""Eval sets: JSONL questions with the doc ids that answer them; the file hash is the identity."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from plimsoll.errors import PlimsollError
from plimsoll.hashing import sha256_file

FIELDS = {"qid", "question", "answerable", "gold_doc_ids", "answer_hint"}


class EvalSetError(PlimsollError):
    """An eval set is malformed or refers to documents the corpus does not have."""


@dataclass(frozen=True)
class EvalQuestion:
    """One question; unanswerable ones have no gold ids and expect an abstention."""

    qid: str
    question: str
    answerable: bool
    gold_doc_ids: tuple[str, ...]
    answer_hint: str = ""


@dataclass(frozen=True)
class EvalSet:
    """A loaded eval set and its content hash."""

    path: Path
    content_hash: str
    questions: tuple[EvalQuestion, ...]

    def limited(self, limit: int | None) -> EvalSet:
        """The first `limit` questions (all when None), same hash: it names the file."""
        if limit is None or limit >= len(self.questions):
            return self
        return EvalSet(self.path, self.content_hash, self.questions[:limit])

    def check_doc_ids(self, known_doc_ids: Iterable[str]) -> None:
        """Every gold id must exist in the corpus being evaluated."""
        known = set(known_doc_ids)
        for question in self.questions:
            unknown = [d for d in question.gold_doc_ids if d not in known]
            if unknown:
                raise EvalSetError(
                    f"question {question.qid} cites doc ids not in the corpus: {unknown}",
                    file=self.path, field=f"{question.qid}.gold_doc_ids",
                    fix="fix the ids, or add the slice that holds them to the index")


def load_evalset(path: Path) -> EvalSet:
    """Read and validate an eval set file."""
    path = Path(path)
    if not path.is_file():
        raise EvalSetError("eval set not found", file=path, fix="check the path (evalsets/)")
    questions, seen = [], set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalSetError(f"line {number} is not valid JSON ({exc.msg})", file=path,
                               fix="one JSON object per line") from None
        missing, extra = FIELDS - set(record) - {"answer_hint"}, set(record) - FIELDS
        if missing or extra:
            raise EvalSetError(f"line {number}: missing {sorted(missing)}, unknown "
                               f"{sorted(extra)}", file=path, field=f"line {number}",
                               fix=f"use exactly the fields {sorted(FIELDS)}")
        question = EvalQuestion(qid=str(record["qid"]), question=str(record["question"]),
                                answerable=bool(record["answerable"]),
                                gold_doc_ids=tuple(record["gold_doc_ids"]),
                                answer_hint=str(record.get("answer_hint", "")))
        if question.qid in seen:
            raise EvalSetError(f"duplicate qid {question.qid}", file=path,
                               field=f"line {number}.qid", fix="make qids unique")
        if question.answerable != bool(question.gold_doc_ids):
            raise EvalSetError(f"question {question.qid}: answerable questions need gold ids "
                               "and unanswerable ones must have none", file=path,
                               field=f"{question.qid}.gold_doc_ids",
                               fix="set answerable to match gold_doc_ids")
        seen.add(question.qid)
        questions.append(question)
    if not questions:
        raise EvalSetError("eval set is empty", file=path, fix="add questions")
    return EvalSet(path=path, content_hash=sha256_file(path), questions=tuple(questions))
