"""Derive (query, passage) training pairs from slices: a doc's lead sentence asks for the rest."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from plimsoll.common.errors import PlimsollError
from plimsoll.common.files import read_jsonl
from plimsoll.common.hashing import sha256_file
from plimsoll.datasets.store import PublishedSlice
from plimsoll.training.checkpoint import TrainingPairsFile
from plimsoll.training.finetune import Pair

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_RULE_LINE = re.compile(r"^[*=\-~^#]{3,}$")  # reStructuredText heading underline
MIN_QUERY_WORDS, MAX_QUERY_WORDS, MIN_PASSAGE_WORDS, PASSAGE_WORDS = 4, 40, 8, 120


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


def pair_from_document(title: str, text: str) -> Pair | None:
    """The first real sentence is the query; the title and what follows are the passage.

    Headings and one-line documents give no pair: they hold no question to ask.
    """
    sentences = _sentences(text)
    for index, sentence in enumerate(sentences):
        words = sentence.split()
        if not sentence[:1].isalpha() or not MIN_QUERY_WORDS <= len(words) <= MAX_QUERY_WORDS:
            continue
        rest = " ".join(" ".join(sentences[index + 1:]).split()[:PASSAGE_WORDS])
        if len(rest.split()) < MIN_PASSAGE_WORDS:
            return None
        return Pair(query=sentence, passage=f"{title}\n{rest}" if title else rest)
    return None


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
            pair = pair_from_document(title or "", text)
            if pair is not None:
                pairs.append(pair)
    return pairs


def write_pairs(pairs: Sequence[Pair], folder: Path) -> tuple[Path, str]:
    """Write pairs as a content-addressed JSONL file, atomically; returns (path, digest)."""
    folder.mkdir(parents=True, exist_ok=True)
    # A name of its own: two runs writing one shared staging name would mix their pairs.
    handle, staging = tempfile.mkstemp(dir=folder, suffix=".jsonl.tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.writelines(json.dumps({"query": p.query, "passage": p.passage}) + "\n"
                              for p in pairs)
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
    return [Pair(query=row["query"], passage=row["passage"])
            for _, row in read_jsonl(path, error=PlimsollError)]
