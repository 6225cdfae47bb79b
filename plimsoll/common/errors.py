"""Errors written for people: each names the file, the field and the fix."""

from __future__ import annotations

from pathlib import Path


class PlimsollError(Exception):
    """A problem a user can fix; the message says where it is and what to do."""

    def __init__(self, problem: str, *, file: str | Path | None = None,
                 field: str | None = None, fix: str | None = None,
                 line: int | None = None) -> None:
        self.problem = problem
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        self.fix = fix
        super().__init__(self.describe())

    def describe(self) -> str:
        """One readable paragraph: where, what, and how to fix it."""
        where = []
        if self.file:
            where.append(f"{self.file}:{self.line}" if self.line else self.file)
        if self.field:
            where.append(f"field '{self.field}'")
        head = ": ".join([", ".join(where), self.problem]) if where else self.problem
        return f"{head}\n  fix: {self.fix}" if self.fix else head


class ManifestError(PlimsollError):
    """A dataset slice manifest is malformed or points at something that is not there."""


class SliceDataError(PlimsollError):
    """A slice's source data cannot become a valid slice (empty, undecodable, unusable)."""


class EncoderError(PlimsollError):
    """The encoder directory is missing or is not a usable transformers encoder."""


class SnapshotConflictError(PlimsollError):
    """An index snapshot directory already exists with different content."""


class StorageError(PlimsollError):
    """Versioned storage (DVC) could not store or fetch a slice."""
