"""The promotion ledger: an append-only chain of alias moves (MLflow keeps no alias history).

Each row names the row it follows, and (model, follows) is unique: two writers that read
the same head cannot both append after it; (model, completes) is unique too, so an intent
is completed once. The second one gets LedgerConflict, re-reads
and decides again, so the history never forks.

A move of `champion` is two rows: an `intent` written before the alias moves, and a `done`
(or `reverted`) row that completes it. The alias never moves unless its intent is in the
ledger, and an intent without completion (a killed process, a ledger that went read-only
half-way) is reconciled by the next command or sensor tick (see plimsoll.release.promotion).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from plimsoll.common.sql import StoreError, forbid_rewrites, open_table, store_error, twice

ACTIONS = ("promote", "rollback", "reject")
STATUSES = ("intent", "done", "reverted")
LEDGER_ENV = "PLIMSOLL_LEDGER_URL"
WHAT = "promotion ledger"


class LedgerError(StoreError):
    """The ledger cannot be read or written."""


class LedgerConflict(LedgerError):
    """Another writer appended first; re-read the ledger and decide again."""


@dataclass(frozen=True)
class LedgerEntry:
    """One row: who moved `champion` from where to where, and why."""

    entry_id: int
    at: datetime
    model: str
    from_version: str | None
    to_version: str
    action: str
    actor: str
    reason: str
    lineage_digest: str
    follows: int | None = None
    status: str = "done"
    completes: int | None = None  # the intent a done/reverted row completes


class PromotionLedger:
    """Append-only: this class has no update or delete, and the database refuses them too."""

    def __init__(self, url: str, *, create: bool = True) -> None:
        import sqlalchemy as sa

        self.url = url
        self._engine, self._table = open_table(url, WHAT, lambda metadata: sa.Table(
            "promotion_ledger", metadata,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("model", sa.String(256), nullable=False),
            sa.Column("from_version", sa.String(32), nullable=True),
            sa.Column("to_version", sa.String(32), nullable=False),
            sa.Column("action", sa.String(16), nullable=False),
            sa.Column("actor", sa.String(256), nullable=False),
            sa.Column("reason", sa.Text, nullable=False),
            sa.Column("lineage_digest", sa.String(64), nullable=False),
            sa.Column("follows", sa.Integer, nullable=True),
            sa.Column("status", sa.String(16), nullable=True),
            sa.Column("completes", sa.Integer, nullable=True),
            sa.UniqueConstraint("model", "follows", name="promotion_ledger_one_successor"),
            sa.UniqueConstraint("model", "completes", name="promotion_ledger_one_completion"),
        ), create=create, env=LEDGER_ENV)
        self._upgrade()
        try:
            twice(lambda: forbid_rewrites(self._engine, "promotion_ledger"))
        except sa.exc.SQLAlchemyError as exc:
            if create:  # a read-only copy is fine to read; a writer must have its triggers
                raise store_error(exc, WHAT, url, "open", LedgerError) from None

    def _upgrade(self) -> None:
        """Ledgers written before the chain columns get them; their old rows count as done."""
        import sqlalchemy as sa

        try:
            columns = {c["name"] for c in sa.inspect(self._engine).get_columns(
                "promotion_ledger")}
            missing = [c for c in ("follows", "status", "completes") if c not in columns]
            if not missing:
                return
            with self._engine.begin() as connection:
                for column in missing:
                    kind = "VARCHAR(16)" if column == "status" else "INTEGER"
                    connection.execute(sa.text(
                        f"ALTER TABLE promotion_ledger ADD COLUMN {column} {kind}"))
                for name, column in (("one_successor", "follows"),
                                     ("one_completion", "completes")):
                    connection.execute(sa.text(
                        f"CREATE UNIQUE INDEX IF NOT EXISTS promotion_ledger_{name} "
                        f"ON promotion_ledger (model, {column})"))
        except sa.exc.SQLAlchemyError as exc:
            raise store_error(exc, WHAT, self.url, "upgrade", LedgerError) from None

    def head(self, model: str) -> int:
        """The id of the model's last row (0 when it has none)."""
        import sqlalchemy as sa

        t = self._table.c
        try:
            with self._engine.connect() as connection:
                return int(connection.execute(sa.select(sa.func.max(t.id)).where(
                    t.model == model)).scalar() or 0)
        except sa.exc.SQLAlchemyError as exc:
            raise store_error(exc, WHAT, self.url, "read", LedgerError) from None

    def append(self, *, model: str, from_version: str | None, to_version: str, action: str,
               actor: str, reason: str, lineage_digest: str, status: str = "done",
               completes: int | None = None, after: int | None = None) -> LedgerEntry:
        """Add one row after `after` (default: the current head).

        Raises LedgerConflict when another row already follows `after`, and LedgerError
        when the ledger cannot be written; in both cases nothing was added.
        """
        import sqlalchemy as sa

        if action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, got {action!r}")
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        follows = self.head(model) if after is None else after
        values = {"at": datetime.now(UTC), "model": model, "from_version": from_version,
                  "to_version": str(to_version), "action": action, "actor": actor,
                  "reason": reason, "lineage_digest": lineage_digest, "follows": follows,
                  "status": status, "completes": completes}
        try:
            with self._engine.begin() as connection:
                key = connection.execute(self._table.insert().values(**values)
                                         ).inserted_primary_key
        except sa.exc.IntegrityError:
            raise LedgerConflict(
                f"another writer appended to the {WHAT} of {model} after entry {follows}"
                + (f" or completed entry {completes}" if completes is not None else ""),
                field="follows", fix="re-read the ledger and retry; nothing was added"
            ) from None
        except sa.exc.SQLAlchemyError as exc:
            raise store_error(exc, WHAT, self.url, "write to", LedgerError) from None
        return LedgerEntry(entry_id=int(key[0]), **values)

    def entries(self, model: str | None = None) -> list[LedgerEntry]:
        """What happened, in order: completed moves and rejections (no intents, no reverts)."""
        return [e for e in self.rows(model) if e.status == "done"]

    def rows(self, model: str | None = None) -> list[LedgerEntry]:
        """Every row in the order it was appended, intents and reverted moves included."""
        import sqlalchemy as sa

        query = self._table.select().order_by(self._table.c.id)
        if model is not None:
            query = query.where(self._table.c.model == model)
        try:
            with self._engine.connect() as connection:
                rows = list(connection.execute(query))
        except sa.exc.SQLAlchemyError as exc:
            raise store_error(exc, WHAT, self.url, "read", LedgerError) from None
        return [LedgerEntry(entry_id=row.id, at=row.at, model=row.model,
                            from_version=row.from_version, to_version=row.to_version,
                            action=row.action, actor=row.actor, reason=row.reason,
                            lineage_digest=row.lineage_digest, follows=row.follows,
                            status=row.status or "done", completes=row.completes)
                for row in rows]

    def moves(self, model: str) -> list[LedgerEntry]:
        """Completed moves of champion (promote and rollback rows that are done), in order."""
        return [e for e in self.entries(model) if e.action in ("promote", "rollback")]

    def open_intents(self, model: str) -> list[LedgerEntry]:
        """Intents no done or reverted row completes yet."""
        return unfinished(self.rows(model))

    def close(self) -> None:
        """Release connections."""
        self._engine.dispose()


def unfinished(rows: list[LedgerEntry]) -> list[LedgerEntry]:
    """The intents among `rows` that no done or reverted row among them completes."""
    completed = {e.completes for e in rows if e.completes is not None}
    return [e for e in rows if e.status == "intent" and e.entry_id not in completed]
