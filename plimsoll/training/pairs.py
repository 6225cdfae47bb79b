"""Derive (query, passage) training pairs from slices, by rules a person can read.

Each document gives up to three queries, none of them a copy of the passage it is paired
with (issue #16: a model trained to find a passage's own first sentence learns to match
copied text, which users never type):

- `sentence`: the document's first real sentence, paired with the rest of the document
  (the sentence itself is removed from the passage);
- `question`: that sentence turned into the question a user would ask ("Return the
  directory name of pathname path." → "how do I get the directory name of pathname
  path?"; a class or exception: "what is X for?", "when is X raised?"), paired with the
  rest when there is enough of it, else with the whole document;
- `name`: a question from the title, signature or help-topic heading ("what arguments does
  os.execl take?", "how do comparisons work in python?"), paired with the whole document.

Which template a document gets is fixed by a hash of its id, so pairs are deterministic.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from plimsoll.common.errors import PlimsollError
from plimsoll.common.files import read_jsonl
from plimsoll.common.hashing import sha256_file, sha256_text
from plimsoll.datasets.store import PublishedSlice
from plimsoll.training.checkpoint import TrainingPairsFile
from plimsoll.training.finetune import Pair

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_RULE_LINE = re.compile(r"^[*=\-~^#]{3,}$")  # reStructuredText heading underline
# A docstring that opens with its signature: "execl(file, *args)" or "new(name, data=b'') - "
_SIGNATURE = re.compile(r"^\s*([A-Za-z_][\w.]*)\(([^\n]*?)\)\s*(?:->\s*\w+\s*\n|->\s*|-+\s+|\n|$)")
MIN_QUERY_WORDS, MAX_QUERY_WORDS, MIN_PASSAGE_WORDS, PASSAGE_WORDS = 4, 40, 8, 120
QUESTION_WORDS = 16  # a question keeps the sentence's first clause, at most this many words

# Verbs a docstring opens with, as the user would say them in "how do I ...?".
_VERB_AS_ASKED = {"return": "get", "returns": "get", "yield": "get", "yields": "get",
                  "lookup": "look up", "generate": "generate", "recursively": "recursively"}
_THING_OPENERS = ("a ", "an ", "the ", "class ", "base class", "common base class", "abstract ",
                  "metaclass", "simple ", "object ", "represent", "information", "typed ")
_NOT_VERBS = frozenset({"if", "when", "for", "in", "on", "with", "exception", "exceptions", "it",
                        "new", "deprecated", "like", "same", "used", "support", "one", "all",
                        "some", "each", "any", "there", "note", "see", "by", "as", "at", "to",
                        "its", "their", "python", "unlike", "alias", "called"})
_NAME_TEMPLATES = ("what does {title} do?", "how do I use {name} in python?",
                   "{module} {words} example", "when should I use {title}?")
_TOPIC_TEMPLATES = ("how do {topic} work in python?", "what are {topic} in python?",
                    "python {topic} explained", "{topic} syntax python")


def _sentences(text: str) -> list[str]:
    lines = text.split("\n")
    keep = [line for i, line in enumerate(lines)
            if not _RULE_LINE.match(line)
            and not (i + 1 < len(lines) and _RULE_LINE.match(lines[i + 1]))]
    sentences = []
    for paragraph in re.split(r"\n\s*\n", "\n".join(keep)):
        flat = " ".join(paragraph.split())
        sentences += [s for s in _SENTENCE_END.split(flat) if s]
    return sentences


def _heading(text: str) -> str:
    """A help topic's heading: its first line, when the next one underlines it (*****)."""
    lines = text.strip().split("\n")
    return lines[0].strip() if len(lines) > 1 and _RULE_LINE.match(lines[1].strip()) else ""


def _variant(doc_id: str, kind: str, count: int) -> int:
    return int(sha256_text(f"{kind}:{doc_id}")[:8], 16) % count


def pair_from_document(title: str, text: str) -> Pair | None:
    """The first real sentence is the query; the title and what follows are the passage.

    Headings and one-line documents give no pair: they hold no question to ask.
    """
    lead = _lead(text)
    if lead is None or len(lead[1].split()) < MIN_PASSAGE_WORDS:
        return None
    return Pair(query=lead[0], passage=_passage(title, lead[1]))


def _lead(text: str) -> tuple[str, str] | None:
    """(first real sentence, the text after it), or None when there is no such sentence."""
    sentences = _sentences(_SIGNATURE.sub("", text, count=1))
    for index, sentence in enumerate(sentences):
        words = sentence.split()
        if sentence[:1].isalpha() and MIN_QUERY_WORDS <= len(words) <= MAX_QUERY_WORDS:
            return sentence, " ".join(sentences[index + 1:])
    return None


def document_passage(title: str, text: str) -> str:
    """A document as one training passage: its title and first words, as its first chunk."""
    return _passage(title, text)


def _passage(title: str, text: str) -> str:
    body = " ".join(text.split()[:PASSAGE_WORDS])
    return f"{title}\n{body}" if title else body


def question_from_sentence(title: str, sentence: str) -> str | None:
    """The lead sentence as a user's question, or None when no rule fits it."""
    name = title.rsplit(".", 1)[-1] if title else "it"
    clause = re.split(r"[,;:(]| - ", sentence.rstrip(".!?"), maxsplit=1)[0].strip()
    words = clause.split()[:QUESTION_WORDS]
    if len(words) < 2:
        return None
    first, lowered = words[0].lower(), clause.lower()
    if first == "raised" or " raised " in f" {lowered} ":
        return f"when is {name} raised?"
    if lowered.startswith(_THING_OPENERS) or first in ("this", "these", "instances"):
        return f"what is {title or name} for?"
    if not words[0][:1].isupper() or not words[0].isalpha() or first in _NOT_VERBS:
        return None
    verb = _VERB_AS_ASKED.get(first)
    if verb is None:
        # Third person ("Converts", "Returns") to the imperative a user types ("convert").
        verb = first[:-1] if first.endswith("s") and not first.endswith("ss") else first
    rest = " ".join(words[1:])
    return f"how do I {verb} {rest}?"


def queries_for_document(doc_id: str, title: str, text: str) -> list[Pair]:
    """Up to three pairs for one document (module docstring for the rules)."""
    lead = _lead(text)
    whole = document_passage(title, text)
    if len(whole.split()) < MIN_QUERY_WORDS:  # a bare name ("ast.Not"): nothing to learn
        return []
    pairs: list[Pair] = []
    rest_ok = lead is not None and len(lead[1].split()) >= MIN_PASSAGE_WORDS
    if lead is not None and rest_ok:
        pairs.append(Pair(lead[0], _passage(title, lead[1]), doc_id, kind="sentence"))
    # A help topic's prose is no docstring: its heading asks the question (`name` below).
    question = (question_from_sentence(title, lead[0])
                if lead is not None and not _heading(text) else None)
    if question is not None:
        passage = _passage(title, lead[1]) if rest_ok else whole
        pairs.append(Pair(question, passage, doc_id, kind="question"))
    named = _named_question(doc_id, title, text)
    if named is not None:
        pairs.append(Pair(named, whole, doc_id, kind="name"))
    seen, unique = set(), []
    for pair in pairs:
        if pair.query.lower() not in seen:
            seen.add(pair.query.lower())
            unique.append(pair)
    return unique


def _named_question(doc_id: str, title: str, text: str) -> str | None:
    heading = _heading(text)
    if heading:
        topic = heading.lower()
        return _TOPIC_TEMPLATES[_variant(doc_id, "topic", len(_TOPIC_TEMPLATES))].format(
            topic=topic)
    if not title:
        return None
    signature = _SIGNATURE.match(text)
    if signature and signature.group(2).strip():
        return f"what arguments does {title} take?"
    module, _, name = title.rpartition(".")
    words = " ".join(re.sub(r"([a-z])([A-Z])", r"\1 \2", name).replace("_", " ").lower().split())
    template = _NAME_TEMPLATES[_variant(doc_id, "name", len(_NAME_TEMPLATES))]
    if "{module}" in template and not module:
        template = _NAME_TEMPLATES[0]
    return template.format(title=title, name=name or title, module=module, words=words)


def derive_pairs(slices: Sequence[PublishedSlice], exclude_doc_ids: Iterable[str] = ()
                 ) -> list[Pair]:
    """Pairs from every document of the slices, in slice then id order (deterministic)."""
    import pyarrow.parquet as pq

    excluded = set(exclude_doc_ids)
    pairs = []
    for published in sorted(slices, key=lambda s: s.name):
        table = pq.read_table(published.path, columns=["id", "title", "text"]).to_pydict()
        for doc_id, title, text in zip(table["id"], table["title"], table["text"], strict=True):
            if doc_id is None or not text or doc_id in excluded:
                continue
            pairs += queries_for_document(doc_id, title or "", text)
    return pairs
def write_pairs(pairs: Sequence[Pair], folder: Path) -> tuple[Path, str]:
    """Write pairs as a content-addressed JSONL file, atomically; returns (path, digest)."""
    folder.mkdir(parents=True, exist_ok=True)
    # A name of its own: two runs writing one shared staging name would mix their pairs.
    handle, staging = tempfile.mkstemp(dir=folder, suffix=".jsonl.tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.writelines(json.dumps(dataclasses.asdict(p)) + "\n" for p in pairs)
        digest = sha256_file(Path(staging))
        path = folder / f"{digest}.jsonl"
        os.replace(staging, path)
    finally:
        Path(staging).unlink(missing_ok=True)
    return path, digest


def read_pairs(pairs_file: TrainingPairsFile) -> list[Pair]:
    """The pairs of a training pairs file, checked against its digest."""
    path = Path(pairs_file.path)
    if not path.is_file() or sha256_file(path) != pairs_file.digest:
        raise PlimsollError("the training pairs file is missing or differs from its digest "
                            f"{pairs_file.digest[:12]}", file=path,
                            fix="re-materialize training_pairs (it writes the file again)")
    fields = {f.name for f in dataclasses.fields(Pair)}
    return [Pair(**{k: v for k, v in row.items() if k in fields})
            for _, row in read_jsonl(path, error=PlimsollError)]
