"""The promotion ledger: an append-only table of alias moves (MLflow keeps no alias history)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from plimsoll.sql_tables import open_table

ACTIONS = ("promote", "rollback", "reject")


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


class PromotionLedger:
    """Append-only: this class has no update or delete, and the database refuses them too."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        self.url = url
        self._engine, self._table = open_table(url, "promotion ledger", lambda metadata: sa.Table(
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
        ))
        self._forbid_rewrites()

    def _forbid_rewrites(self) -> None:
        import sqlalchemy as sa

        with self._engine.begin() as connection:
            if self._engine.dialect.name == "sqlite":
                for verb in ("UPDATE", "DELETE"):
                    connection.execute(sa.text(
                        f"CREATE TRIGGER IF NOT EXISTS promotion_ledger_no_{verb.lower()} "
                        f"BEFORE {verb} ON promotion_ledger BEGIN "
                        "SELECT RAISE(ABORT, 'promotion_ledger is append-only'); END"))
            elif self._engine.dialect.name == "postgresql":
                connection.execute(sa.text(
                    "CREATE OR REPLACE FUNCTION promotion_ledger_append_only() RETURNS trigger "
                    "AS $$ BEGIN RAISE EXCEPTION 'promotion_ledger is append-only'; END $$ "
                    "LANGUAGE plpgsql"))
                connection.execute(sa.text(
                    "DROP TRIGGER IF EXISTS promotion_ledger_no_rewrite ON promotion_ledger"))
                connection.execute(sa.text(
                    "CREATE TRIGGER promotion_ledger_no_rewrite BEFORE UPDATE OR DELETE ON "
                    "promotion_ledger FOR EACH ROW EXECUTE FUNCTION "
                    "promotion_ledger_append_only()"))

    def append(self, *, model: str, from_version: str | None, to_version: str, action: str,
               actor: str, reason: str, lineage_digest: str) -> LedgerEntry:
        """Add one row."""
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, got {action!r}")
        values = {"at": datetime.now(UTC), "model": model, "from_version": from_version,
                  "to_version": str(to_version), "action": action, "actor": actor,
                  "reason": reason, "lineage_digest": lineage_digest}
        with self._engine.begin() as connection:
            key = connection.execute(self._table.insert().values(**values)).inserted_primary_key
        return LedgerEntry(entry_id=int(key[0]), **values)

    def entries(self, model: str | None = None) -> list[LedgerEntry]:
        """Rows in the order they were appended."""
        query = self._table.select().order_by(self._table.c.id)
        if model is not None:
            query = query.where(self._table.c.model == model)
        with self._engine.connect() as connection:
            return [LedgerEntry(entry_id=row.id, at=row.at, model=row.model,
                                from_version=row.from_version, to_version=row.to_version,
                                action=row.action, actor=row.actor, reason=row.reason,
                                lineage_digest=row.lineage_digest)
                    for row in connection.execute(query)]

    def close(self) -> None:
        """Release connections."""
        self._engine.dispose()
