"""Reading and moving MLflow aliases: through the MLflow client, or on the fast path.

The rollback lever must act in well under a second, and importing the MLflow client alone
takes longer than that on 2 cores. So rollback can use a fast path that speaks MLflow's
own interfaces without importing MLflow: its REST API for a tracking server, or its
registry tables for the embedded SQL store (the same rows MLflow's store merges; the
contract test, tests/test_alias_contract.py, runs the same moves through MLflow's client and
through this and compares the tables). The SQL path writes only a schema revision it was
checked against; on any other it says so and uses the MLflow client.
"""

from __future__ import annotations

import json
import re
import warnings
from typing import Protocol

from plimsoll.common.errors import PlimsollError

# MLflow marks a deleted version with this stage and keeps its row (and its tags).
DELETED_STAGE = "Deleted_Internal"
# The single-tenant store keeps every row in this workspace (MLflow 3's workspace column).
DEFAULT_WORKSPACE = "default"
# MLflow store schema revisions (alembic_version) the SQL path was checked against: the
# contract test passes on them. MLflow 3.17's head is dc11669786a5.
KNOWN_REVISIONS = frozenset({"dc11669786a5"})
# MLflow reserves these alias names (mlflow.utils.validation).
_RESERVED_ALIAS = re.compile(r"^(latest|v\d+)$", re.IGNORECASE)


class AliasStoreError(PlimsollError):
    """The registry could not be read or written on the fast path; nothing was changed."""


class UnknownSchema(AliasStoreError):
    """The MLflow store's schema revision is not one the SQL path was checked against."""

    def __init__(self, revision: str | None, url: str) -> None:
        self.revision = revision
        super().__init__(f"the MLflow store {url} has schema revision {revision or 'none'}, "
                         f"not one the fast path was checked against "
                         f"({', '.join(sorted(KNOWN_REVISIONS))})", field="--tracking-uri",
                         fix="use the MLflow client (fast_aliases does), or add the revision "
                         "to KNOWN_REVISIONS once tests/test_alias_contract.py passes on it")


class SlowerPathWarning(UserWarning):
    """The fast path cannot be used for this store: the MLflow client is used instead."""


class AliasBackend(Protocol):
    """What rollback needs from the registry."""

    def get(self, model: str, alias: str) -> str | None:
        """Version the alias points at, or None."""

    def set(self, model: str, alias: str, version: str) -> None:
        """Point the alias at a version; a missing or deleted one is refused."""

    def delete(self, model: str, alias: str) -> None:
        """Remove the alias (nothing to do when it is not set)."""

    def version_tags(self, model: str, version: str) -> dict[str, str]:
        """Tags of a model version."""


class MlflowAliases:
    """Aliases through a ModelRegistry (MLflow's client)."""

    def __init__(self, registry) -> None:
        self.registry = registry

    def get(self, model: str, alias: str) -> str | None:
        """Version the alias points at, or None."""
        return self.registry.alias_version(model, alias)

    def set(self, model: str, alias: str, version: str) -> None:
        """Point the alias at a version; a missing or deleted one is refused."""
        self.registry.set_alias(model, alias, version)

    def delete(self, model: str, alias: str) -> None:
        """Remove the alias (nothing to do when it is not set)."""
        self.registry.delete_alias(model, alias)

    def version_tags(self, model: str, version: str) -> dict[str, str]:
        """Tags of a model version."""
        return dict(self.registry.version(model, version).tags)


class SqlAliases:
    """The embedded store's registry tables, read and written with SQLAlchemy.

    Only a store whose schema revision this code was checked against (KNOWN_REVISIONS) is
    opened here; any other raises UnknownSchema, and fast_aliases then uses the MLflow
    client. MLflow's own checks are repeated: deleted versions are refused, reserved alias
    names too, and every row read or written is in the store's workspace (a store from
    before MLflow 3's workspaces has no such column, and one workspace).
    """

    TABLES = ("alembic_version", "registered_models", "registered_model_aliases",
              "model_versions", "model_version_tags")

    def __init__(self, url: str, workspace: str = DEFAULT_WORKSPACE) -> None:
        import sqlalchemy as sa

        from plimsoll.common.sql import open_engine, store_error

        self.url = url
        self.workspace = workspace
        self._engine = open_engine(url, "MLflow store", create=False, env="MLFLOW_TRACKING_URI")
        try:
            present = set(sa.inspect(self._engine).get_table_names())
            missing = [name for name in self.TABLES if name not in present]
            if missing:
                self._engine.dispose()
                raise AliasStoreError(f"{url} is not an MLflow store (no table {missing[0]})",
                                      field="--tracking-uri", fix="point at the MLflow "
                                      "database (PLIMSOLL_HOME/mlflow/mlflow.db locally)")
            metadata = sa.MetaData()
            revision_table, self._models, self._aliases, self._versions, self._tags = (
                sa.Table(name, metadata, autoload_with=self._engine) for name in self.TABLES)
            with self._engine.connect() as connection:
                self.revision = connection.execute(
                    sa.select(revision_table.c.version_num)).scalar()
        except sa.exc.SQLAlchemyError as exc:
            raise store_error(exc, "MLflow store", url, "open") from None
        if self.revision not in KNOWN_REVISIONS:
            self._engine.dispose()
            raise UnknownSchema(self.revision, url)

    def _scope(self, table) -> list:
        """The workspace clause of a table, where it has the column."""
        return [table.c.workspace == self.workspace] if "workspace" in table.c else []

    def _version_row(self, connection, model: str, version: str):
        v = self._versions.c
        try:
            number = int(str(version))
        except ValueError:
            raise AliasStoreError(f"'{version}' is not a version number", field="--to",
                                  fix="pass a number listed by `plimsoll history`") from None
        row = connection.execute(self._versions.select().where(
            v.name == model, v.version == number, *self._scope(self._versions))).first()
        if row is None or row.current_stage == DELETED_STAGE:
            raise AliasStoreError(f"{model} version {version} is not registered"
                                  + (" (it was deleted)" if row is not None else ""),
                                  field="version", fix="pick a version listed by "
                                  "`plimsoll status`; nothing was changed")
        return row

    def _model_row(self, connection, model: str):
        m = self._models.c
        row = connection.execute(self._models.select().where(
            m.name == model, *self._scope(self._models))).first()
        if row is None:
            raise AliasStoreError(f"no registered model '{model}' in {self.url}",
                                  field="--model", fix="check the model name, and that "
                                  "--tracking-uri is the store it was registered in")
        return row

    def get(self, model: str, alias: str) -> str | None:
        """Version the alias points at, or None."""
        import sqlalchemy as sa

        from plimsoll.common.sql import store_error

        a = self._aliases.c
        try:
            with self._engine.connect() as connection:
                row = connection.execute(self._aliases.select().where(
                    a.name == model, a.alias == alias, *self._scope(self._aliases))).first()
        except sa.exc.SQLAlchemyError as exc:
            raise store_error(exc, "MLflow store", self.url, "read") from None
        return None if row is None else str(row.version)

    def set(self, model: str, alias: str, version: str) -> None:
        """Point the alias at a version (insert or update, one transaction).

        As MLflow's set_registered_model_alias: the version's row is checked and nothing
        else changes (MLflow leaves last_updated_time alone on an alias move too).
        """
        import sqlalchemy as sa

        from plimsoll.common.sql import store_error

        if _RESERVED_ALIAS.match(alias):
            raise AliasStoreError(f"'{alias}' is an alias name MLflow reserves",
                                  field="alias", fix="use another name; nothing was changed")
        a = self._aliases.c
        try:
            with self._engine.begin() as connection:
                found = self._version_row(connection, model, version)
                updated = connection.execute(self._aliases.update().where(
                    a.name == model, a.alias == alias, *self._scope(self._aliases)).values(
                    version=int(version)))
                if updated.rowcount == 0:
                    row = {"name": model, "alias": alias, "version": int(version)}
                    if "workspace" in a:
                        row["workspace"] = found.workspace
                    connection.execute(self._aliases.insert().values(**row))
        except sa.exc.SQLAlchemyError as exc:
            raise store_error(exc, "MLflow store", self.url, "move an alias in") from None

    def delete(self, model: str, alias: str) -> None:
        """Remove the alias; as MLflow, a model that is not registered is an error."""
        import sqlalchemy as sa

        from plimsoll.common.sql import store_error

        a = self._aliases.c
        try:
            with self._engine.begin() as connection:
                self._model_row(connection, model)
                connection.execute(self._aliases.delete().where(
                    a.name == model, a.alias == alias, *self._scope(self._aliases)))
        except sa.exc.SQLAlchemyError as exc:
            raise store_error(exc, "MLflow store", self.url, "delete an alias in") from None

    def version_tags(self, model: str, version: str) -> dict[str, str]:
        """Tags of a model version."""
        import sqlalchemy as sa

        from plimsoll.common.sql import store_error

        t = self._tags.c
        try:
            with self._engine.connect() as connection:
                self._version_row(connection, model, version)
                rows = connection.execute(self._tags.select().where(
                    t.name == model, t.version == int(version), *self._scope(self._tags)))
                return {row.key: row.value for row in rows}
        except sa.exc.SQLAlchemyError as exc:
            raise store_error(exc, "MLflow store", self.url, "read") from None


class RestError(AliasStoreError):
    """The MLflow server answered with an HTTP error."""

    def __init__(self, status: int, error_code: str, problem: str, **where) -> None:
        self.status = status
        self.error_code = error_code
        super().__init__(problem, **where)


class RestAliases:
    """A tracking server's REST API (api/2.0/mlflow/registered-models/...)."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.server = base_url.rstrip("/")
        self.base = self.server + "/api/2.0/mlflow"
        self.timeout = timeout

    def _call(self, method: str, path: str, payload: dict | None = None,
              query: dict | None = None) -> dict:
        """One API call; every failure is an AliasStoreError that names the server.

        A 404 is never turned into a value: the caller says what was not found.
        """
        import urllib.error
        import urllib.parse
        import urllib.request

        url = f"{self.base}/{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        request = urllib.request.Request(url, method=method, data=json.dumps(
            payload).encode() if payload is not None else None,
            headers={"Content-Type": "application/json"})
        server = self.server
        fix = "check --tracking-uri / $MLFLOW_TRACKING_URI; nothing was changed"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read() or b"{}")
            except ValueError:
                detail = {}
            if not isinstance(detail, dict):
                detail = {}
            raise RestError(exc.code, str(detail.get("error_code", "")),
                            f"{server} answered {exc.code} to {method} {path}: "
                            f"{detail.get('message', exc.reason)}", field="--tracking-uri",
                            fix=fix) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError):
                raise AliasStoreError(f"the MLflow server {server} did not answer within "
                                      f"{self.timeout:g}s", field="--tracking-uri",
                                      fix=fix) from None
            raise AliasStoreError(f"cannot reach the MLflow server {server} ({reason})",
                                  field="--tracking-uri", fix=fix) from None
        try:
            found = json.loads(body or b"{}")
        except ValueError:
            found = None
        if not isinstance(found, dict):
            raise AliasStoreError(f"{server} is not an MLflow server (its answer to {path} "
                                  "is not a JSON object)", field="--tracking-uri",
                                  fix=fix) from None
        return found

    def get(self, model: str, alias: str) -> str | None:
        """Version the alias points at, or None."""
        try:
            found = self._call("GET", "registered-models/alias", query={"name": model,
                                                                         "alias": alias})
        except RestError as exc:
            if exc.status != 404 and exc.error_code != "INVALID_PARAMETER_VALUE":
                raise
            # MLflow says 404 for a missing alias and for a missing model: ask which.
            try:
                self._call("GET", "registered-models/get", query={"name": model})
            except RestError as missing:
                if missing.status == 404:
                    raise self._no_model(model) from None
                raise
            return None
        version = found.get("model_version", {}).get("version")
        return None if version is None else str(version)

    def set(self, model: str, alias: str, version: str) -> None:
        """Point the alias at a version."""
        self.version_tags(model, version)  # a missing or deleted version says so first
        self._call("POST", "registered-models/alias", {"name": model, "alias": alias,
                                                        "version": str(version)})

    def delete(self, model: str, alias: str) -> None:
        """Remove the alias (nothing to do when it is not set)."""
        try:
            # MLflow reads a DELETE's fields from its JSON body, as its own client sends them.
            self._call("DELETE", "registered-models/alias", {"name": model, "alias": alias})
        except RestError as exc:
            if exc.status == 404:
                raise self._no_model(model) from None
            raise

    def _no_model(self, model: str) -> AliasStoreError:
        return AliasStoreError(f"no registered model '{model}' on {self.server}",
                               field="--model", fix="check the model name, and that "
                               "--tracking-uri is the MLflow server")

    def version_tags(self, model: str, version: str) -> dict[str, str]:
        """Tags of a model version."""
        try:
            found = self._call("GET", "model-versions/get", query={"name": model,
                                                                   "version": str(version)})
        except RestError as exc:
            if exc.status == 404:
                raise AliasStoreError(f"{model} version {version} is not registered on "
                                      f"{self.server}",
                                      field="version", fix="pick a version listed by "
                                      "`plimsoll status`; nothing was changed") from None
            raise
        if "model_version" not in found:
            raise AliasStoreError(f"{self.server} answered model-versions/get without a "
                                  "model_version", field="--tracking-uri",
                                  fix="check that the URL is an MLflow server")
        return {t["key"]: t["value"] for t in found.get("model_version", {}).get("tags", [])}


def fast_aliases(tracking_uri: str) -> AliasBackend:
    """The fast path for a tracking URI: REST for a server, SQL for the embedded store.

    A SQL store of a schema revision the fast path was not checked against is moved with
    the MLflow client instead (slower to start), with a SlowerPathWarning that says so.
    """
    if tracking_uri.startswith(("http://", "https://")):
        return RestAliases(tracking_uri)
    try:
        return SqlAliases(tracking_uri)
    except UnknownSchema as exc:
        from plimsoll.release.registry import ModelRegistry

        warnings.warn(f"the MLflow store {tracking_uri} has schema revision "
                      f"{exc.revision or 'none'}, which the fast alias path was not checked "
                      "against; using the MLflow client (slower to start)", SlowerPathWarning,
                      stacklevel=2)
        return MlflowAliases(ModelRegistry(tracking_uri))
