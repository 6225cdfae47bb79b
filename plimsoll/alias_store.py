"""Reading and moving MLflow aliases: through the MLflow client, or on the fast path.

The rollback lever must act in well under a second, and importing the MLflow client alone
takes longer than that on 2 cores. So rollback can use a fast path that speaks MLflow's
own interfaces without importing MLflow: its REST API for a tracking server, or its
registry tables for the embedded SQL store (the same rows MLflow's store merges; the
tests check that the MLflow client reads back exactly what this writes).
"""

from __future__ import annotations

import json
from typing import Protocol


class AliasBackend(Protocol):
    """What rollback needs from the registry."""

    def get(self, model: str, alias: str) -> str | None:
        """Version the alias points at, or None."""

    def set(self, model: str, alias: str, version: str) -> None:
        """Point the alias at a version."""

    def version_tags(self, model: str, version: str) -> dict[str, str]:
        """Tags of a model version."""


class MlflowAliases:
    """Aliases through the MLflow client of a ModelRegistry."""

    def __init__(self, registry) -> None:
        self.registry = registry

    def get(self, model: str, alias: str) -> str | None:
        """Version the alias points at, or None."""
        try:
            return str(self.registry.client.get_model_version_by_alias(model, alias).version)
        except Exception as exc:
            text = str(exc).lower()
            if "not found" in text or "does not exist" in text or "alias" in text:
                return None
            raise

    def set(self, model: str, alias: str, version: str) -> None:
        """Point the alias at a version."""
        self.registry.call(self.registry.client.set_registered_model_alias, model, alias,
                             version)

    def version_tags(self, model: str, version: str) -> dict[str, str]:
        """Tags of a model version."""
        return dict(self.registry.call(self.registry.client.get_model_version, model,
                                         version).tags)


class SqlAliases:
    """The embedded store's registry tables, read and written with SQLAlchemy."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        self._engine = sa.create_engine(url)
        metadata = sa.MetaData()
        self._aliases = sa.Table("registered_model_aliases", metadata,
                                 autoload_with=self._engine)
        self._tags = sa.Table("model_version_tags", metadata, autoload_with=self._engine)
        self._versions = sa.Table("model_versions", metadata, autoload_with=self._engine)

    def get(self, model: str, alias: str) -> str | None:
        """Version the alias points at, or None."""
        a = self._aliases.c
        with self._engine.connect() as connection:
            row = connection.execute(self._aliases.select().where(
                a.name == model, a.alias == alias)).first()
        return None if row is None else str(row.version)

    def set(self, model: str, alias: str, version: str) -> None:
        """Point the alias at a version (insert or update, one transaction)."""
        a, v = self._aliases.c, self._versions.c
        with self._engine.begin() as connection:
            found = connection.execute(self._versions.select().where(
                v.name == model, v.version == int(version))).first()
            if found is None:
                raise LookupError(f"{model} version {version} does not exist")
            updated = connection.execute(self._aliases.update().where(
                a.name == model, a.alias == alias).values(version=int(version)))
            if updated.rowcount == 0:
                row = {"name": model, "alias": alias, "version": int(version)}
                if "workspace" in a:
                    row["workspace"] = found.workspace
                connection.execute(self._aliases.insert().values(**row))

    def version_tags(self, model: str, version: str) -> dict[str, str]:
        """Tags of a model version."""
        t = self._tags.c
        with self._engine.connect() as connection:
            rows = connection.execute(self._tags.select().where(
                t.name == model, t.version == int(version)))
            return {row.key: row.value for row in rows}


class RestAliases:
    """A tracking server's REST API (api/2.0/mlflow/registered-models/...)."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base = base_url.rstrip("/") + "/api/2.0/mlflow"
        self.timeout = timeout

    def _call(self, method: str, path: str, payload: dict | None = None,
              query: dict | None = None) -> dict:
        import urllib.error
        import urllib.parse
        import urllib.request

        url = f"{self.base}/{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        request = urllib.request.Request(url, method=method, data=json.dumps(
            payload).encode() if payload is not None else None,
            headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return {"error_code": "RESOURCE_DOES_NOT_EXIST"}
            raise

    def get(self, model: str, alias: str) -> str | None:
        """Version the alias points at, or None."""
        found = self._call("GET", "registered-models/alias", query={"name": model,
                                                                     "alias": alias})
        version = found.get("model_version", {}).get("version")
        return None if version is None else str(version)

    def set(self, model: str, alias: str, version: str) -> None:
        """Point the alias at a version."""
        self._call("POST", "registered-models/alias", {"name": model, "alias": alias,
                                                        "version": str(version)})

    def version_tags(self, model: str, version: str) -> dict[str, str]:
        """Tags of a model version."""
        found = self._call("GET", "model-versions/get", query={"name": model,
                                                               "version": str(version)})
        return {t["key"]: t["value"] for t in found.get("model_version", {}).get("tags", [])}


def fast_aliases(tracking_uri: str) -> AliasBackend:
    """The fast path for a tracking URI: REST for a server, SQL for the embedded store."""
    if tracking_uri.startswith(("http://", "https://")):
        return RestAliases(tracking_uri)
    return SqlAliases(tracking_uri)
