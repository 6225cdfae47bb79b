"""Serving flags: which model version answers and how, changed without a redeploy.

The flags live in Plimsoll's own SQL store (the promotion ledger's database) as an
append-only chain per flag: every change is a row saying who, when, old → new and why, and
(flag, follows) is unique, so two writers of one flag cannot both record the same "old"
value; the loser re-reads and retries, and the history never forks.

Each gateway replica holds a FlagRouter: a snapshot of the current values, re-read when the
store's head moves (a cheap poll every `poll_s`), evaluated per request through the
OpenFeature SDK with a provider over that snapshot. No SQL runs on the request path, and a
store that cannot be read leaves the last known values in force (status() says why).

Where OpenFeature costs more than it gives: its evaluation pipeline (hooks, context merges,
type checks) runs once per flag, so a decision is five SDK calls, about 0.1 ms in all
(measured on one CPU core; plain dict lookups would take a few microseconds), and an
object flag cannot default to None, so "not set" travels as {}.
What it gives is the contract: hooks (metrics, traces), and a provider that can be swapped
(flagd, a vendor) without touching the gateway. The canary and shadow splits are computed
by the provider, the way flagd's `fractional` does, so they stay behind that contract.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from plimsoll.common.errors import PlimsollError
from plimsoll.common.hashing import sha256_text
from plimsoll.common.sql import (
    CONNECT_TIMEOUT_S,
    StoreError,
    describe_url,
    forbid_rewrites,
    open_table,
    store_error,
    twice,
)

WHAT = "flag store"
TABLE = "serving_flags"
# Two writers of one flag at once: the loser re-reads and appends after the winner. More
# losses in a row than this means a writer storm, better reported than retried forever.
CHAIN_ATTEMPTS = 5
DEFAULT_POLL_S = 2.0

logger = logging.getLogger(__name__)

ModelVersion = Annotated[str, StringConstraints(pattern=r"^[0-9]+$", max_length=32)]
Percent = Annotated[float, Field(ge=0, le=100)]


class _FlagValue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CanaryFlag(_FlagValue):
    """Send `percent` of traffic to `version`, sticky per user (or session)."""

    version: ModelVersion = Field(description="a registered model version number, e.g. 3")
    percent: Percent = Field(description="the share of requests, a number from 0 to 100")
    sticky: Literal["user", "session"] = Field(
        "user", description="user or session: whose requests stay on one side of the split")


class PinFlag(_FlagValue):
    """Serve `version` whatever the alias says."""

    version: ModelVersion = Field(description="a registered model version number, e.g. 3")


class ShadowFlag(_FlagValue):
    """After serving, also ask `version` for `percent` of requests (bucketed by request id)."""

    version: ModelVersion = Field(description="the challenger's model version number, e.g. 4")
    percent: Percent = Field(description="the share of requests, a number from 0 to 100")


@dataclass(frozen=True)
class FlagSpec:
    """One flag: what its value must be, what it does, its default and how to set it."""

    name: str
    kind: Any  # the pydantic model or type of the value
    help: str
    default: object  # JSON-safe; None: not set (an object flag's "off")
    example: str  # the words after `plimsoll flags set`

    @property
    def is_object(self) -> bool:
        """Whether the value is KEY=VALUE fields (else one scalar)."""
        return isinstance(self.kind, type) and issubclass(self.kind, BaseModel)

    @property
    def adapter(self) -> TypeAdapter:
        """The validator of the value."""
        return _adapter(self.name)


FLAGS: dict[str, FlagSpec] = {spec.name: spec for spec in (
    FlagSpec("pin", PinFlag, "serve this model version whatever the alias says (wins over "
             "canary)", None, "pin version=3"),
    FlagSpec("canary", CanaryFlag, "route this share of traffic to this model version, "
             "sticky per user or session", None, "canary version=3 percent=10 sticky=user"),
    FlagSpec("answer_mode", Literal["answer", "facts"], "answer: the normal template; facts: "
             "the strict cited-quotes template", "answer", "answer_mode facts"),
    FlagSpec("strict_safety", bool, "on: the guard refuses on soft findings too",
             False, "strict_safety on"),
    FlagSpec("shadow", ShadowFlag, "after serving, also ask this challenger version for this "
             "share of requests", None, "shadow version=4 percent=5"),
)}

_ADAPTERS: dict[str, TypeAdapter] = {}


def _adapter(name: str) -> TypeAdapter:
    if name not in _ADAPTERS:
        _ADAPTERS[name] = TypeAdapter(FLAGS[name].kind)
    return _ADAPTERS[name]


def flag_spec(name: str) -> FlagSpec:
    """The declared flag called `name`; an unknown name lists the known ones."""
    if name not in FLAGS:
        raise PlimsollError(f"no flag called '{name}'", field="flag",
                            fix=f"use one of: {', '.join(FLAGS)}")
    return FLAGS[name]


def validate_flag(name: str, value: object, *, from_text: bool = False) -> object:
    """The flag's value checked and made canonical (defaults filled in, JSON-safe).

    Types are strict (a version is a string of digits, not a number) unless the value comes
    from command-line text, where every field is a string and is read as its type.
    """
    spec = flag_spec(name)
    if value is None:
        raise PlimsollError(f"flag '{name}' needs a value", field=name,
                            fix=f"e.g. plimsoll flags set {spec.example}; to go back to the "
                            f"default, use `plimsoll flags clear {name}`")
    try:
        checked = spec.adapter.validate_python(value, strict=not from_text)
    except ValidationError as exc:
        raise _invalid(spec, exc, not from_text) from None
    return spec.adapter.dump_python(checked, mode="json")


def _invalid(spec: FlagSpec, exc: ValidationError, strict: bool) -> PlimsollError:
    """A validation failure as a message naming the flag, the field and the fix."""
    problems, fields = [], []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        where = f"{spec.name}.{key}" if key else spec.name
        fields.append(where)
        if error["type"] == "extra_forbidden":
            known = ", ".join(spec.kind.model_fields) if spec.is_object else ""
            problems.append(f"'{where}' is not a field of {spec.name} (its fields: {known})")
        elif error["type"] == "missing":
            problems.append(f"{spec.name} needs '{key}'")
        elif error["type"] in ("model_type", "dict_type"):
            problems.append(f"{spec.name} is a set of fields, not {error['input']!r}")
        else:
            kind = _TYPE_WORDS.get(error["type"]) if strict else None
            problems.append(f"{where} = {error['input']!r}: {_expected(spec, key)}"
                            + (f" ({kind})" if kind else ""))
    return PlimsollError(f"flag '{spec.name}': " + "; ".join(problems), field=fields[0],
                         fix=f"e.g. plimsoll flags set {spec.example}")


# A JSON value of the wrong type: what it must be instead.
_TYPE_WORDS = {"string_type": 'a string: quote it, "3"', "float_type": "a number",
               "bool_type": "true or false", "literal_error": "a string"}


def _expected(spec: FlagSpec, key: str) -> str:
    """What a field (or a scalar flag) must be, in words."""
    if spec.is_object and key in spec.kind.model_fields:
        return f"must be {spec.kind.model_fields[key].description}"
    if spec.kind is bool:
        return "must be on or off"
    return f"must be one of {', '.join(spec.kind.__args__)}"


class FlagStoreError(StoreError):
    """The flag store cannot be opened, read or written; nothing was changed."""


class FlagConflict(FlagStoreError):
    """Other writers kept changing the same flag; nothing was added."""


@dataclass(frozen=True)
class FlagChange:
    """One audited change: who set (or cleared) a flag, when, from what, to what, and why."""

    change_id: int
    at: datetime  # UTC
    flag: str
    value: object | None  # None: cleared (back to the default)
    previous: object | None  # None: it was at its default
    actor: str
    reason: str
    follows: int  # the change this one replaced; 0 for the flag's first

    @property
    def cleared(self) -> bool:
        """Whether this change put the flag back to its default."""
        return self.value is None

    def as_dict(self) -> dict[str, object]:
        """JSON-safe, for `plimsoll flags history --json` and status pages."""
        return {"id": self.change_id, "at": self.at.isoformat(), "flag": self.flag,
                "value": self.value, "previous": self.previous, "actor": self.actor,
                "reason": self.reason, "follows": self.follows}


class FlagStore:
    """The serving flags' append-only table; the database refuses UPDATE and DELETE too."""

    def __init__(self, url: str, *, create: bool = True) -> None:
        import sqlalchemy as sa

        self.url = url
        try:
            self._engine, self._table = open_table(url, WHAT, lambda metadata: sa.Table(
                TABLE, metadata,
                sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                sa.Column("at", sa.DateTime(timezone=True), nullable=False),
                sa.Column("flag", sa.String(64), nullable=False),
                sa.Column("value", sa.Text, nullable=True),
                sa.Column("previous", sa.Text, nullable=True),
                sa.Column("actor", sa.String(256), nullable=False),
                sa.Column("reason", sa.Text, nullable=False),
                sa.Column("follows", sa.Integer, nullable=False),
                sa.UniqueConstraint("flag", "follows", name=f"{TABLE}_one_successor"),
            ), create=create)
        except StoreError as exc:
            raise FlagStoreError(exc.problem, field=exc.field, fix=exc.fix) from None
        self.backend = self._engine.dialect.name
        try:
            twice(lambda: forbid_rewrites(self._engine, TABLE))
        except sa.exc.SQLAlchemyError as exc:
            if create:  # a read-only copy is fine to read; a writer must have its triggers
                raise store_error(exc, WHAT, url, "open", FlagStoreError) from None

    def set(self, name: str, value: object, *, actor: str, reason: str) -> FlagChange:
        """Record a new value of the flag `name` (validated) after its current one."""
        return self._append(name, validate_flag(name, value), actor=actor, reason=reason)

    def clear(self, name: str, *, actor: str, reason: str) -> FlagChange:
        """Put the flag back to its default; a flag already there is an error, not a row."""
        spec = flag_spec(name)
        return self._append(spec.name, None, actor=actor, reason=reason)

    def _append(self, name: str, value: object | None, *, actor: str,
                reason: str) -> FlagChange:
        import sqlalchemy as sa

        actor, reason = " ".join(actor.split()), reason.strip()
        if not actor:
            raise PlimsollError("who made the change is empty", field="actor",
                                fix="name yourself: --by 'Ada Lovelace' (or $PLIMSOLL_ACTOR)")
        if not reason:
            raise PlimsollError(f"no reason given for changing '{name}'", field="reason",
                                fix="say why, for the audit trail: --reason 'canary for v3'")
        text = None if value is None else _json(value)
        for _attempt in range(CHAIN_ATTEMPTS):
            latest = self._latest(name)
            if value is None and (latest is None or latest.value is None):
                default = FLAGS[name].default
                raise PlimsollError(f"flag '{name}' is not set" if default is None else
                                    f"flag '{name}' is already at its default ({default})",
                                    field=name, fix="nothing to clear, and nothing was "
                                    "recorded; `plimsoll flags list` shows what is set")
            row = {"at": datetime.now(UTC), "flag": name, "value": text,
                   "previous": None if latest is None or latest.value is None
                   else _json(latest.value),
                   "actor": actor, "reason": reason,
                   "follows": 0 if latest is None else latest.change_id}
            try:
                with self._engine.begin() as connection:
                    key = connection.execute(self._table.insert().values(**row)
                                             ).inserted_primary_key
            except sa.exc.IntegrityError:
                continue  # another writer appended after `latest`: re-read, go after it
            except sa.exc.SQLAlchemyError as exc:
                raise store_error(exc, WHAT, self.url, "write to", FlagStoreError) from None
            return _change(int(key[0]), row)
        raise FlagConflict(f"'{name}' was changed by other writers {CHAIN_ATTEMPTS} times "
                           "while this change was being recorded", field=name,
                           fix="check `plimsoll flags history`, then retry; nothing was added")

    def _latest(self, name: str) -> FlagChange | None:
        query = (self._table.select().where(self._table.c.flag == name)
                 .order_by(self._table.c.id.desc()).limit(1))
        rows = self._select(query)
        return rows[0] if rows else None

    def current(self) -> dict[str, FlagChange]:
        """The latest change of each flag that is set (cleared flags are left out)."""
        import sqlalchemy as sa

        t = self._table.c
        latest = sa.select(sa.func.max(t.id)).group_by(t.flag).scalar_subquery()
        rows = self._select(self._table.select().where(t.id.in_(latest)).order_by(t.id))
        return {row.flag: row for row in rows if not row.cleared}

    def history(self, name: str | None = None) -> list[FlagChange]:
        """Every change (of one flag, or of all), oldest first."""
        query = self._table.select().order_by(self._table.c.id)
        if name is not None:
            query = query.where(self._table.c.flag == flag_spec(name).name)
        return self._select(query)

    def head(self) -> int:
        """The id of the newest change of any flag (0 when none): a cheap poll."""
        import sqlalchemy as sa

        try:
            with self._engine.connect() as connection:
                return int(connection.execute(
                    sa.select(sa.func.max(self._table.c.id))).scalar() or 0)
        except sa.exc.SQLAlchemyError as exc:
            raise store_error(exc, WHAT, self.url, "read", FlagStoreError) from None

    def _select(self, query) -> list[FlagChange]:
        import sqlalchemy as sa

        try:
            with self._engine.connect() as connection:
                rows = [row._asdict() for row in connection.execute(query)]
        except sa.exc.SQLAlchemyError as exc:
            raise store_error(exc, WHAT, self.url, "read", FlagStoreError) from None
        return [_change(row.pop("id"), row) for row in rows]

    def close(self) -> None:
        """Release connections (the store stays usable: the next call reconnects)."""
        self._engine.dispose()


def _json(value: object) -> str:
    """Compact JSON in the value's own field order (the order people read and type)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _change(change_id: int, row: Mapping[str, Any]) -> FlagChange:
    at = row["at"]
    if at.tzinfo is None:  # SQLite keeps no zone; every row is written in UTC
        at = at.replace(tzinfo=UTC)
    return FlagChange(change_id=change_id, at=at, flag=row["flag"],
                      value=None if row["value"] is None else json.loads(row["value"]),
                      previous=None if row["previous"] is None else json.loads(row["previous"]),
                      actor=row["actor"], reason=row["reason"], follows=row["follows"])


def bucket(salt: str, key: str) -> float:
    """A stable place in [0, 100) for `key`: sha256 of "salt/key", its first 8 bytes."""
    return int(sha256_text(f"{salt}/{key}")[:16], 16) / 2**64 * 100


@dataclass(frozen=True)
class RouteDecision:
    """How one request is served: which version, by which route, in which mode."""

    version: str | None  # None: follow the alias
    route: str  # alias | pin | canary
    answer_mode: str  # answer | facts
    strict_safety: bool
    shadow_version: str | None  # ask this challenger too, after serving
    values: dict[str, object] = field(default_factory=dict)  # the flags as evaluated


@functools.cache
def _provider_class():
    """The OpenFeature provider over a router's snapshot (the SDK imported on first use)."""
    from openfeature.exception import ErrorCode
    from openfeature.flag_evaluation import FlagResolutionDetails, Reason
    from openfeature.provider import AbstractProvider, Metadata

    class SnapshotProvider(AbstractProvider):
        """Resolves flags from the values a FlagRouter last read; canary and shadow split."""

        def __init__(self, read: Callable[[], Mapping[str, object]]) -> None:
            super().__init__()
            self._read = read

        def get_metadata(self) -> Metadata:
            return Metadata(name="plimsoll-sql-flags")

        def _resolve(self, key, default, context, expected) -> FlagResolutionDetails:
            if key not in FLAGS:
                return FlagResolutionDetails(default, error_code=ErrorCode.FLAG_NOT_FOUND,
                                             error_message=f"no flag called '{key}'",
                                             reason=Reason.ERROR)
            value = self._read().get(key)
            if value is None:
                return FlagResolutionDetails(default, reason=Reason.DEFAULT)
            if not isinstance(value, expected):
                return FlagResolutionDetails(default, error_code=ErrorCode.TYPE_MISMATCH,
                                             reason=Reason.ERROR)
            if key in ("canary", "shadow"):
                return _split(key, value, (context.attributes if context else {}))
            if isinstance(value, dict):
                value = dict(value)  # the caller's copy, not the snapshot's
            return FlagResolutionDetails(value, reason=Reason.STATIC)

        def resolve_boolean_details(self, flag_key, default_value, evaluation_context=None):
            return self._resolve(flag_key, default_value, evaluation_context, bool)

        def resolve_string_details(self, flag_key, default_value, evaluation_context=None):
            return self._resolve(flag_key, default_value, evaluation_context, str)

        def resolve_integer_details(self, flag_key, default_value, evaluation_context=None):
            return self._resolve(flag_key, default_value, evaluation_context, int)

        def resolve_float_details(self, flag_key, default_value, evaluation_context=None):
            return self._resolve(flag_key, default_value, evaluation_context, float)

        def resolve_object_details(self, flag_key, default_value, evaluation_context=None):
            return self._resolve(flag_key, default_value, evaluation_context, dict)

    def _split(key: str, value: dict, attributes: Mapping[str, object]):
        if key == "canary":
            # The sticky key first; without it the other one (still sticky); else the
            # request id, which is not sticky.
            order = ("user", "session") if value["sticky"] == "user" else ("session", "user")
            by = next((name for name in order if attributes.get(name)), "request")
        else:
            by = "request"  # shadow traffic is a sample of requests, not of users
        target = str(attributes.get("request_id" if by == "request" else by, ""))
        place = bucket(key, target)
        hit = place < value["percent"]
        return FlagResolutionDetails(
            {**value, "bucket": round(place, 2), "hit": hit, "by": by},
            reason=Reason.SPLIT, variant="on" if hit else "off")

    return SnapshotProvider


class FlagRouter:
    """Per-request routing from a cached snapshot of the flags; the store is polled, not hit."""

    def __init__(self, store_or_url: FlagStore | str, *, poll_s: float = DEFAULT_POLL_S,
                 domain: str | None = None) -> None:
        from openfeature import api

        if isinstance(store_or_url, FlagStore):
            self._store: FlagStore | None = store_or_url
            self.url = store_or_url.url
        else:
            self._store, self.url = None, store_or_url
        self.poll_s = poll_s
        self.domain = domain or f"plimsoll-flags-{uuid.uuid4().hex[:12]}"
        self._values: dict[str, object] = {}  # replaced whole, never mutated: readers need no lock
        self._changes: dict[str, FlagChange] = {}
        self._problems: list[str] = []  # stored values that no longer validate
        self._head: int | None = None
        self._error: str | None = None
        self._last_refresh: datetime | None = None
        self._refreshing = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._provider = _provider_class()(lambda: self._values)
        # _and_wait: a provider set without waiting answers defaults until its init thread runs.
        api.set_provider_and_wait(self._provider, domain=self.domain)
        self._client = api.get_client(domain=self.domain)

    def refresh(self) -> bool:
        """Re-read the store if its head moved; False (last values kept) when it cannot."""
        with self._refreshing:
            try:
                if self._store is None:
                    self._store = FlagStore(self.url, create=False)
                head = self._store.head()
                if head != self._head:
                    changes = self._store.current()
                    self._values, self._problems = _values_of(changes)
                    self._changes, self._head = changes, head
                self._error = "; ".join(self._problems) or None
                self._last_refresh = datetime.now(UTC)
                return True
            except StoreError as exc:
                self._error = exc.describe()
                return False
            except Exception as exc:  # a poll must never take the gateway down
                logger.exception("reading the serving flags from %s failed",
                                 describe_url(self.url))
                self._error = f"unexpected error reading the {WHAT}: {exc!r}"
                return False
            finally:
                if self._store is not None and self._store.backend == "sqlite":
                    # A pooled SQLite connection keeps reading a file that was deleted or
                    # replaced; reconnecting at each poll reads the one that is there now.
                    self._store.close()

    def start(self) -> None:
        """Read the store once now, then poll it every poll_s on a daemon thread."""
        if self._thread is not None and self._thread.is_alive():
            return
        self.refresh()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._poll, name=f"{self.domain}-poll",
                                        daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stopping.wait(self.poll_s):
            self.refresh()

    def stop(self) -> None:
        """Stop polling and wait for the poll thread to end (values stay as last read)."""
        self._stopping.set()
        if self._thread is not None:
            # A poll stuck on an unreachable database gives up within its connect timeout.
            self._thread.join(timeout=self.poll_s + 3 * CONNECT_TIMEOUT_S)
            self._thread = None

    def close(self) -> None:
        """Stop polling, release the store and unbind this router's OpenFeature domain."""
        from openfeature import api
        from openfeature.provider.no_op_provider import NoOpProvider

        self.stop()
        if self._store is not None:
            self._store.close()
        api.set_provider(NoOpProvider(), domain=self.domain)

    def status(self) -> dict[str, object]:
        """What the router serves from and how fresh it is, JSON-safe (for /status pages)."""
        values = self._values
        return {
            "store": describe_url(self.url),
            "last_refresh": self._last_refresh.isoformat() if self._last_refresh else None,
            "head": self._head,
            "error": self._error,
            "values": {name: values.get(name, spec.default) for name, spec in FLAGS.items()},
            "changes": {name: {"id": change.change_id, "at": change.at.isoformat(),
                               "actor": change.actor, "reason": change.reason}
                        for name, change in self._changes.items() if name in values},
        }

    def decide(self, *, user: str | None, session: str | None,
               request_id: str) -> RouteDecision:
        """Route one request: pin wins over canary, canary over the alias. Never raises."""
        from openfeature.evaluation_context import EvaluationContext

        attributes = {"request_id": request_id}
        if user:
            attributes["user"] = user
        if session:
            attributes["session"] = session
        context = EvaluationContext(targeting_key=user or session or request_id,
                                    attributes=attributes)
        client = self._client
        pin = client.get_object_value("pin", {}, context) or None
        canary = client.get_object_value("canary", {}, context) or None
        answer_mode = client.get_string_value("answer_mode", FLAGS["answer_mode"].default,
                                              context)
        strict_safety = client.get_boolean_value("strict_safety",
                                                 FLAGS["strict_safety"].default, context)
        shadow = client.get_object_value("shadow", {}, context) or None
        if pin:
            version, route = pin["version"], "pin"
        elif canary and canary["hit"]:
            version, route = canary["version"], "canary"
        else:
            version, route = None, "alias"
        shadow_version = (shadow["version"] if shadow and shadow["hit"]
                          and shadow["version"] != version else None)
        return RouteDecision(
            version=version, route=route, answer_mode=answer_mode,
            strict_safety=strict_safety, shadow_version=shadow_version,
            values={"pin": pin, "canary": canary, "answer_mode": answer_mode,
                    "strict_safety": strict_safety, "shadow": shadow})


def _values_of(changes: Mapping[str, FlagChange]) -> tuple[dict[str, object], list[str]]:
    """The values to serve; a stored value that no longer validates serves the default."""
    values, problems = {}, []
    for name, change in changes.items():
        if name not in FLAGS:
            continue  # a flag a newer Plimsoll wrote; this one does not serve it
        try:
            values[name] = validate_flag(name, change.value)
        except PlimsollError as exc:
            problems.append(f"change {change.change_id} of '{name}' is not valid, so its "
                            f"default is served: {exc.problem}")
    return values, problems
