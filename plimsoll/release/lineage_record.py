"""The lineage of record: Plimsoll's own append-only copy of each version's lineage.

MLflow's tags are mutable by anyone with edit rights on the model, so a digest stored
beside the tags it covers proves nothing: edit a tag, recompute the digest, and it matches.
Registration therefore also writes the lineage (every lineage tag, the artifacts digest and
who trained the version) here, in the same SQL store as the promotion ledger, one row per
version that the database refuses to update or delete. `verify`, the approval sensor and
rollback compare MLflow's tags with this row, never the tags with themselves.

Where users can write this store too, PLIMSOLL_SIGNING_KEY (a Kubernetes Secret in prod)
signs each row with HMAC-SHA256, so a row forged or edited without the key is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime

from plimsoll.common.sql import StoreError, forbid_rewrites, open_table, store_error, twice

SIGNING_KEY_ENV = "PLIMSOLL_SIGNING_KEY"
WHAT = "lineage record store"


class LineageRecordError(StoreError):
    """The lineage record store cannot be read or written, or a record already exists."""


def normalise_identity(name: str | None) -> str:
    """A person's name as compared: Unicode NFKC, case-folded, inner whitespace collapsed.

    So 'Root ', 'ROOT' and 'ｒｏｏｔ' are all the trainer 'root'.
    """
    text = unicodedata.normalize("NFKC", name or "")
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cf", "Cc"))
    return " ".join(text.casefold().split())


def signing_key() -> bytes | None:
    """$PLIMSOLL_SIGNING_KEY as bytes, or None when it is not set."""
    value = os.environ.get(SIGNING_KEY_ENV, "")
    return value.encode("utf-8") if value else None


@dataclass(frozen=True)
class LineageRecord:
    """What registration recorded for one version."""

    model: str
    version: str
    recorded_at: datetime
    lineage: dict[str, str]
    trainers: tuple[str, ...]
    signature: str

    def payload(self) -> bytes:
        """The bytes the signature covers."""
        return _payload(self.model, self.version, self.lineage, self.trainers)


def _payload(model: str, version: str, lineage: dict[str, str],
             trainers: tuple[str, ...]) -> bytes:
    return json.dumps({"model": model, "version": str(version), "lineage": lineage,
                       "trainers": list(trainers)}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _sign(payload: bytes, key: bytes | None) -> str:
    if key is None:
        return "sha256:" + hashlib.sha256(payload).hexdigest()
    return "hmac-sha256:" + hmac.new(key, payload, hashlib.sha256).hexdigest()


class LineageRecords:
    """The `lineage_records` table: one signed row per registered version."""

    def __init__(self, url: str, *, create: bool = True, key: bytes | None = None) -> None:
        import sqlalchemy as sa

        self.url = url
        # key=b"" means unsigned on purpose (tests, a local store nobody else writes).
        self._key = (key if key is not None else signing_key()) or None
        self._engine, self._table = open_table(url, WHAT, lambda metadata: sa.Table(
            "lineage_records", metadata,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("model", sa.String(256), nullable=False),
            sa.Column("version", sa.String(32), nullable=False),
            sa.Column("lineage", sa.Text, nullable=False),
            sa.Column("trainers", sa.Text, nullable=False),
            sa.Column("signature", sa.String(128), nullable=False),
            sa.UniqueConstraint("model", "version", name="lineage_records_one_per_version"),
        ), create=create, env="PLIMSOLL_LEDGER_URL")
        try:
            twice(lambda: forbid_rewrites(self._engine, "lineage_records"))
        except sa.exc.SQLAlchemyError as exc:
            if create:
                raise store_error(exc, WHAT, url, "open", LineageRecordError) from None

    def record(self, model: str, version: str, lineage: dict[str, str],
               trainers: list[str]) -> LineageRecord:
        """Write the record of a new version; a version is recorded once."""
        import sqlalchemy as sa

        names = tuple(sorted({normalise_identity(t) for t in trainers if normalise_identity(t)}))
        payload = _payload(model, str(version), dict(lineage), names)
        row = {"recorded_at": datetime.now(UTC), "model": model, "version": str(version),
               "lineage": json.dumps(lineage, sort_keys=True), "trainers": json.dumps(names),
               "signature": _sign(payload, self._key)}
        try:
            with self._engine.begin() as connection:
                connection.execute(self._table.insert().values(**row))
        except sa.exc.IntegrityError:
            raise LineageRecordError(f"{model} version {version} already has a lineage "
                                     "record", field="version", fix="lineage is written once; "
                                     "register a new version") from None
        except sa.exc.SQLAlchemyError as exc:
            raise store_error(exc, WHAT, self.url, "write to", LineageRecordError) from None
        return LineageRecord(model, str(version), row["recorded_at"], dict(lineage), names,
                             row["signature"])

    def get(self, model: str, version: str) -> LineageRecord | None:
        """The record of a version, or None when registration wrote none."""
        import sqlalchemy as sa

        t = self._table.c
        try:
            with self._engine.connect() as connection:
                rows = list(connection.execute(self._table.select().where(
                    t.model == model, t.version == str(version))))
        except sa.exc.SQLAlchemyError as exc:
            raise store_error(exc, WHAT, self.url, "read", LineageRecordError) from None
        if not rows:
            return None
        row = rows[0]
        return LineageRecord(row.model, row.version, row.recorded_at, json.loads(row.lineage),
                             tuple(json.loads(row.trainers)), row.signature)

    def check(self, model: str, version: str, tags: dict[str, str],
              prefix: str) -> tuple[LineageRecord | None, list[str]]:
        """(record, problems): MLflow's lineage tags against the signed record."""
        record = self.get(model, version)
        if record is None:
            return None, [f"no lineage record for {model} version {version} in "
                          f"{self.url.split('://')[0]} store: it was not registered by "
                          "Plimsoll, or its registration did not finish"]
        problems = self._signature_problems(record)
        tagged = {k: v for k, v in tags.items() if k.startswith(prefix)}
        recorded = {k: v for k, v in record.lineage.items() if k.startswith(prefix)}
        for key in sorted(set(tagged) | set(recorded)):
            if key not in tagged:
                problems.append(f"lineage tag {key} was removed")
            elif key not in recorded:
                problems.append(f"lineage tag {key} was added after registration")
            elif tagged[key] != recorded[key]:
                problems.append(f"lineage tag {key} was edited (it differs from the "
                                "lineage record)")
        return record, problems

    def _signature_problems(self, record: LineageRecord) -> list[str]:
        kind = record.signature.split(":", 1)[0]
        if kind == "hmac-sha256" and self._key is None:
            return [f"the lineage record is signed, and {SIGNING_KEY_ENV} is not set here: "
                    "it cannot be checked"]
        if kind == "sha256" and self._key is not None:
            return ["the lineage record is unsigned, and this deployment signs every "
                    "record: it was not written by a registration that held "
                    f"{SIGNING_KEY_ENV}"]
        if not hmac.compare_digest(record.signature, _sign(record.payload(), self._key)):
            return ["the lineage record's signature does not match its content (the record "
                    "was edited, or the signing key differs)"]
        return []

    def close(self) -> None:
        """Release connections."""
        self._engine.dispose()
