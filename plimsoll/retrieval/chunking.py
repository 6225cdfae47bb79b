"""Split slice rows into overlapping chunks with stable ids and content hashes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from plimsoll.common.hashing import sha256_text

_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class ChunkingParams:
    """Chunk size and overlap, in whitespace-separated words; part of every snapshot id."""

    chunk_words: int = 160
    overlap_words: int = 32

    def __post_init__(self) -> None:
        if self.chunk_words < 8:
            raise ValueError(f"chunk_words must be at least 8, got {self.chunk_words}")
        if not 0 <= self.overlap_words < self.chunk_words:
            raise ValueError(f"overlap_words must be in [0, chunk_words), got "
                             f"{self.overlap_words} with chunk_words={self.chunk_words}")

    def as_dict(self) -> dict[str, int]:
        """Plain dict for manifests and hashing."""
        return asdict(self)


@dataclass(frozen=True)
class Chunk:
    """A passage of one document: what gets embedded, cited and hashed."""

    chunk_id: str
    chunk_hash: str
    doc_id: str
    slice: str
    ordinal: int
    text: str


def chunk_document(doc_id: str, title: str, text: str, slice_name: str,
                   params: ChunkingParams) -> Iterator[Chunk]:
    """Overlapping word windows of a document; the title prefixes each window's text.

    The chunk id is `<doc_id>#<ordinal>`; the chunk hash covers exactly the embedded
    text, so identical passages anywhere in the corpus share one embedding.
    """
    spans = [match.span() for match in _WORD.finditer(text)]
    step = params.chunk_words - params.overlap_words
    starts = range(0, max(len(spans) - params.overlap_words, 1), step) if spans else []
    for ordinal, first in enumerate(starts):
        window = spans[first:first + params.chunk_words]
        passage = text[window[0][0]:window[-1][1]]
        body = f"{title}\n{passage}" if title else passage
        yield Chunk(chunk_id=f"{doc_id}#{ordinal}", chunk_hash=sha256_text(body),
                    doc_id=doc_id, slice=slice_name, ordinal=ordinal, text=body)
