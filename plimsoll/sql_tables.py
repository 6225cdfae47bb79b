"""One way to open Plimsoll's own SQL tables (eval registry, promotion ledger)."""

from __future__ import annotations

from collections.abc import Callable

from plimsoll.errors import PlimsollError


def open_table(url: str, what: str, define: Callable[[object], object]) -> tuple[object, object]:
    """(engine, table) for `url`, creating the table on first use; unreachable is clear."""
    import sqlalchemy as sa

    engine = sa.create_engine(url, future=True)
    metadata = sa.MetaData()
    table = define(metadata)
    try:
        metadata.create_all(engine)
    except sa.exc.OperationalError as exc:
        raise PlimsollError(f"{what} unreachable ({exc.orig})", field="url",
                            fix=f"check the database at {url}") from None
    return engine, table
