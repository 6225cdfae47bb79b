"""One way to open Plimsoll's own SQL tables (eval registry, promotion ledger, lineage)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from plimsoll.common.errors import PlimsollError

# A database that does not answer must fail in seconds, naming itself, not hang a 3 a.m. lever.
CONNECT_TIMEOUT_S = 5


class StoreError(PlimsollError):
    """One of Plimsoll's SQL stores cannot be opened, read or written."""


def describe_url(url: str) -> str:
    """The URL without its password, for messages."""
    import sqlalchemy as sa

    try:
        parsed = sa.engine.make_url(url)
    except Exception:  # an unparseable URL is reported by open_engine
        return url
    return url if parsed.password is None else parsed.render_as_string(hide_password=True)


def open_engine(url: str, what: str, *, create: bool = True, env: str | None = None):
    """An engine for `url`, checked before anything is read or written.

    A SQLite file that does not exist is created only when `create` is true, and never in a
    folder that does not exist: a typo in a path must not become a new, empty store.
    """
    import sqlalchemy as sa

    where = f"${env}" if env else "url"
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise StoreError(f"'{url}' is not a database URL", field=where,
                         fix=f"use sqlite:////absolute/path.sqlite or "
                         f"postgresql+psycopg2://user:password@host:5432/db for the {what}"
                         ) from None
    connect_args: dict[str, object] = {}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            path = Path(database)
            if not path.parent.is_dir():
                raise StoreError(f"the {what}'s folder {path.parent} does not exist",
                                 field=where, fix=f"check the path in {url}, or create the "
                                 "folder first")
            if not create and not path.exists():
                raise StoreError(f"no {what} at {path}", field=where,
                                 fix=f"check the path in {url} (PLIMSOLL_HOME or --home); "
                                 "nothing was created")
        connect_args["timeout"] = CONNECT_TIMEOUT_S * 2
    elif parsed.get_backend_name() == "postgresql":
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    else:
        raise StoreError(f"the {what} must be SQLite or PostgreSQL, not "
                         f"'{parsed.get_backend_name()}'", field=where,
                         fix="use sqlite:///… locally or postgresql+psycopg2://… in prod")
    try:
        return sa.create_engine(url, future=True, connect_args=connect_args)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise StoreError(f"cannot open the {what} ({exc})", field=where,
                         fix=f"check the URL {describe_url(url)}") from None


def store_error(exc: Exception, what: str, url: str, doing: str,
                kind: type[StoreError] = StoreError, field: str = "url") -> StoreError:
    """A SQLAlchemy failure as a message that names the store, what failed and the fix."""
    text = str(getattr(exc, "orig", exc)).strip().splitlines()[0][:200]
    if "readonly" in text.replace("-", "").replace(" ", "").lower() or \
            "read-only" in text.lower() or "permission denied" in text.lower():
        fix = f"make the {what} writable ({describe_url(url)}); nothing was changed"
    else:
        fix = f"check the database at {describe_url(url)}; nothing was changed"
    return kind(f"could not {doing} the {what} ({text})", field=field, fix=fix)


def open_table(url: str, what: str, define: Callable[[object], object], *,
               create: bool = True, env: str | None = None) -> tuple[object, object]:
    """(engine, table) for `url`, creating the table on first use; unreachable is clear."""
    import sqlalchemy as sa

    engine = open_engine(url, what, create=create, env=env)
    metadata = sa.MetaData()
    table = define(metadata)
    try:
        twice(lambda: metadata.create_all(engine))
    except sa.exc.SQLAlchemyError as exc:
        raise store_error(exc, what, url, "open",
                          field=f"${env}" if env else "url") from None
    return engine, table


def open_store(url: str, what: str, define: Callable[[object], object], *, create: bool,
               env: str | None = None,
               error: type[StoreError] = StoreError) -> tuple[object, object]:
    """(engine, table) of one store: created on first use when `create`, else only opened.

    A reader (`create=False`) creates neither the file nor the table; a failure is raised
    as the store's own error type, with the same message.
    """
    import sqlalchemy as sa

    try:
        if create:
            return open_table(url, what, define, env=env)
        return open_engine(url, what, create=False, env=env), define(sa.MetaData())
    except StoreError as exc:
        if isinstance(exc, error):
            raise
        raise error(exc.problem, field=exc.field, fix=exc.fix) from None


def twice(action: Callable[[], object]) -> object:
    """Run a schema step, and once more if it fails.

    Two processes creating the same table or trigger at once make one of them fail; its
    retry then finds the other's work done.
    """
    import sqlalchemy as sa

    try:
        return action()
    except sa.exc.SQLAlchemyError:
        return action()


def forbid_rewrites(engine, table: str) -> None:
    """Make a table append-only in the database itself: UPDATE and DELETE are refused.

    Checked before created, so opening a store that is read-only (a replica, a read-only
    home) to read it writes nothing.
    """
    import sqlalchemy as sa

    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            for verb in ("update", "delete"):
                name = f"{table}_no_{verb}"
                if connection.execute(sa.text(
                        "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = :n"),
                        {"n": name}).first():
                    continue
                connection.execute(sa.text(
                    f"CREATE TRIGGER {name} BEFORE {verb.upper()} ON {table} BEGIN "
                    f"SELECT RAISE(ABORT, '{table} is append-only'); END"))
        elif engine.dialect.name == "postgresql":
            if connection.execute(sa.text(
                    "SELECT 1 FROM pg_trigger WHERE tgname = :n"),
                    {"n": f"{table}_no_rewrite"}).first():
                return
            connection.execute(sa.text(
                f"CREATE OR REPLACE FUNCTION {table}_append_only() RETURNS trigger "
                f"AS $$ BEGIN RAISE EXCEPTION '{table} is append-only'; END $$ "
                "LANGUAGE plpgsql"))
            connection.execute(sa.text(
                f"CREATE TRIGGER {table}_no_rewrite BEFORE UPDATE OR DELETE ON "
                f"{table} FOR EACH ROW EXECUTE FUNCTION {table}_append_only()"))
