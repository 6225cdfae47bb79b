"""The eval registry: one SQL row per eval result (SQLite locally, PostgreSQL in prod)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from plimsoll.common.sql import open_table


class EvalRegistry:
    """Append-only table `eval_results` behind SQLAlchemy."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        self.url = url
        self._engine, self._table = open_table(url, "eval registry", lambda metadata: sa.Table(
            "eval_results", metadata,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("commit_sha", sa.String(64), nullable=False),
            sa.Column("model_ref", sa.String(512), nullable=False),
            sa.Column("eval_set_hash", sa.String(64), nullable=False),
            sa.Column("seed", sa.Integer, nullable=False),
            sa.Column("system", sa.String(64), nullable=False),
            sa.Column("metrics", sa.Text, nullable=False),
        ))

    def record(self, *, commit_sha: str, model_ref: str, eval_set_hash: str, seed: int,
               system: str, metrics: dict[str, float]) -> int:
        """Append one result; returns its row id."""
        with self._engine.begin() as connection:
            result = connection.execute(self._table.insert().values(
                created_at=datetime.now(UTC), commit_sha=commit_sha, model_ref=model_ref,
                eval_set_hash=eval_set_hash, seed=seed, system=system,
                metrics=json.dumps(metrics, sort_keys=True)))
            return int(result.inserted_primary_key[0])

    def results(self, model_ref: str | None = None) -> list[dict[str, object]]:
        """Rows, oldest first, optionally for one model ref."""
        query = self._table.select().order_by(self._table.c.id)
        if model_ref is not None:
            query = query.where(self._table.c.model_ref == model_ref)
        with self._engine.connect() as connection:
            return [{**row._mapping, "metrics": json.loads(row.metrics)}
                    for row in connection.execute(query)]

    def close(self) -> None:
        """Release connections."""
        self._engine.dispose()
