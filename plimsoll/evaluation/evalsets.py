"""Eval sets: JSONL questions with the doc ids that answer them; the file hash is the identity."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from plimsoll.common.errors import PlimsollError
from plimsoll.common.files import json_type, read_jsonl
from plimsoll.common.hashing import sha256_file

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
        if limit is not None and (isinstance(limit, bool) or limit < 1):
            # A slice like [:-1] would quietly drop questions and still pass the gate.
            raise EvalSetError(f"a limit of {limit} questions", file=self.path, field="limit",
                               fix="give a positive number of questions, or no limit for all")
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
    """Read and validate an eval set file: one JSON object per line, every field its type."""
    path = Path(path)
    if not path.is_file():
        raise EvalSetError("eval set not found", file=path, fix="check the path (evalsets/)")
    questions, seen = [], set()
    for number, record in read_jsonl(path, error=EvalSetError):
        missing, extra = FIELDS - set(record) - {"answer_hint"}, set(record) - FIELDS
        if missing or extra:
            raise EvalSetError(f"line {number}: missing {sorted(missing)}, unknown "
                               f"{sorted(extra)}", file=path, field=f"line {number}",
                               fix=f"use exactly the fields {sorted(FIELDS)}")
        question = EvalQuestion(
            qid=_text(record, "qid", path, number), question=_text(record, "question", path,
                                                                   number),
            answerable=_boolean(record, path, number),
            gold_doc_ids=_doc_ids(record, path, number),
            answer_hint=_text(record, "answer_hint", path, number, blank_ok=True))
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


def _wrong_type(path: Path, number: int, key: str, value: object, wanted: str,
                fix: str) -> EvalSetError:
    shown = json.dumps(value, ensure_ascii=False)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return EvalSetError(f"line {number}: '{key}' is a JSON {json_type(value)} ({shown}), not "
                        f"{wanted}", file=path, field=key, fix=fix)


def _text(record: dict, key: str, path: Path, number: int, *, blank_ok: bool = False) -> str:
    value = record.get(key, "")
    if not isinstance(value, str):
        raise _wrong_type(path, number, key, value, "a string",
                          f'write {key} in quotes, e.g. "{key}": "..."')
    if not blank_ok and not value.strip():
        raise EvalSetError(f"line {number}: '{key}' is blank", file=path, field=key,
                           fix=f"give every question a {key}")
    return value


def _boolean(record: dict, path: Path, number: int) -> bool:
    value = record["answerable"]
    if not isinstance(value, bool):
        # bool("false") is True: a quoted flag would silently mean the opposite.
        raise _wrong_type(path, number, "answerable", value, "true or false",
                          "write answerable as true or false, without quotes")
    return value


def _doc_ids(record: dict, path: Path, number: int) -> tuple[str, ...]:
    value = record["gold_doc_ids"]
    if not isinstance(value, list) or not all(isinstance(d, str) and d.strip() for d in value):
        # tuple("pydoc:assert") would be a tuple of its characters.
        raise _wrong_type(path, number, "gold_doc_ids", value, "an array of doc id strings",
                          'write gold_doc_ids as a list, e.g. ["pydoc:assert"], or [] for an '
                          "unanswerable question")
    return tuple(value)
