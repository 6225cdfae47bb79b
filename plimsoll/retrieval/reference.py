"""A reference to an index snapshot: what the next stage needs, light enough to import anywhere."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SnapshotRef:
    """Where a snapshot is and what made it (encoder, tokenizer, the slices' content hashes)."""

    snapshot_id: str
    path: str
    encoder_digest: str
    tokenizer_hash: str
    slices: dict[str, str]  # slice name -> content hash
    encoder_path: str
