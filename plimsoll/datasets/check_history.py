"""The slice check history: each run of a slice's checks, appended to Plimsoll's own SQL store.

The dataset_slice asset records every run, passing or failing, in `slice_check_runs` (the
promotion ledger's database), so the gateway can tell whether a slice in the index snapshot it
serves had its latest checks fail without asking Dagster. A failing slice is not published,
so its last published version stays current; this history is where the failure is still seen.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from plimsoll.common.sql import (
    StoreError,
    forbid_rewrites,
    open_store,
    store_error,
    twice,
)

if TYPE_CHECKING:
    from plimsoll.datasets.validation import CheckOutcome

LEDGER_ENV = "PLIMSOLL_LEDGER_URL"
WHAT = "slice check history"
TABLE = "slice_check_runs"


class CheckHistoryError(StoreError):
    """The slice check history cannot be opened, read or written."""


@dataclass(frozen=True)
class SliceCheckRun:
    """One run of a slice's checks: which content was checked, and what failed."""

    entry_id: int  # the order runs were recorded in; the highest is a slice's latest
    at: datetime  # UTC, when the run was recorded
    slice_name: str
    content_hash: str  # the checked content (SliceTable.content_hash)
    passed: bool  # every check passed (only then is the content published)
    failures: str  # the failed checks' messages joined by "; " (empty when passed)
    row_count: int


def failure_summary(outcomes: Iterable[CheckOutcome]) -> str:
    """The failed checks' messages as one line ("" when all passed)."""
    return "; ".join(outcome.message for outcome in outcomes if not outcome.passed)


def _define(metadata):
    import sqlalchemy as sa

    return sa.Table(
        TABLE, metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("slice_name", sa.String(256), nullable=False),
        sa.Column("content_hash", sa.String(128), nullable=False),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("failures", sa.Text, nullable=False),
        sa.Column("row_count", sa.Integer, nullable=False),
        sa.Index("slice_check_runs_by_slice", "slice_name", "id"),
    )


class SliceCheckHistory:
    """Append-only: this class has no update or delete, and the database refuses them too.

    With create=False (the gateway's reader) a missing SQLite file is an error and a missing
    table is not created (no slice has been checked), so a read-only copy is read without
    writing anything.
    """

    def __init__(self, url: str, *, create: bool = True) -> None:
        import sqlalchemy as sa

        self.url = url
        self._create = create
        self._engine, self._table = open_store(url, WHAT, _define, create=create,
                                               env=LEDGER_ENV, error=CheckHistoryError)
        if create:
            try:
                twice(lambda: forbid_rewrites(self._engine, TABLE))
            except sa.exc.SQLAlchemyError as exc:
                self._engine.dispose()
                raise store_error(exc, WHAT, url, "open", CheckHistoryError,
                                  field=f"${LEDGER_ENV}") from None

    def record(self, slice_name: str, content_hash: str,
               outcomes: Sequence[CheckOutcome]) -> SliceCheckRun:
        """Append one run of the slice's checks; the slice passed only if every check did.

        Raises ValueError when no outcome is given (no checks ran is not a pass), and
        CheckHistoryError when the store cannot be written; then nothing was added.
        """
        import sqlalchemy as sa

        if not outcomes:
            raise ValueError(f"no check outcomes for slice {slice_name!r}: a run without "
                             "checks cannot be recorded as passed or failed")
        values = {"at": datetime.now(UTC), "slice_name": slice_name,
                  "content_hash": content_hash,
                  "passed": all(outcome.passed for outcome in outcomes),
                  "failures": failure_summary(outcomes),
                  "row_count": outcomes[0].row_count}
        try:
            with self._engine.begin() as connection:
                key = connection.execute(self._table.insert().values(**values)
                                         ).inserted_primary_key
        except sa.exc.SQLAlchemyError as exc:
            raise store_error(exc, WHAT, self.url, "write to", CheckHistoryError,
                              field=f"${LEDGER_ENV}") from None
        return SliceCheckRun(entry_id=int(key[0]), **values)

    def latest(self, slice_names: Iterable[str]) -> dict[str, SliceCheckRun]:
        """The last recorded run of each named slice; slices never checked are absent."""
        import sqlalchemy as sa

        names = sorted(set(slice_names))
        if not names:
            return {}
        t = self._table.c
        newest = (sa.select(sa.func.max(t.id)).where(t.slice_name.in_(names))
                  .group_by(t.slice_name))
        query = self._table.select().where(t.id.in_(newest))
        try:
            if not self._create and not sa.inspect(self._engine).has_table(TABLE):
                return {}  # nothing was ever recorded here, and this reader creates nothing
            with self._engine.connect() as connection:
                rows = list(connection.execute(query))
        except sa.exc.SQLAlchemyError as exc:
            raise store_error(exc, WHAT, self.url, "read", CheckHistoryError,
                              field=f"${LEDGER_ENV}") from None
        return {row.slice_name: _run(row) for row in rows}

    def close(self) -> None:
        """Release connections."""
        self._engine.dispose()


def _run(row) -> SliceCheckRun:
    # SQLite hands timestamps back without their zone; they were written in UTC.
    at = row.at.replace(tzinfo=UTC) if row.at.tzinfo is None else row.at.astimezone(UTC)
    return SliceCheckRun(entry_id=row.id, at=at, slice_name=row.slice_name,
                         content_hash=row.content_hash, passed=bool(row.passed),
                         failures=row.failures, row_count=row.row_count)
