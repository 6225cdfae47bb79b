"""The alias fast path against MLflow: the same moves through MLflow's own client and through
SqlAliases, on two copies of one fresh store, leave the same registry tables.

MLflow's set_registered_model_alias and delete_registered_model_alias change only the
aliases table (no last_updated_time moves), and so does the fast path: the tables are
compared whole, timestamps included. The one deliberate difference is the error type of a
refusal (RegistryError through the client, AliasStoreError on the fast path; both
PlimsollError, both saying what is wrong and that nothing changed).
"""

import shutil

import pytest
import sqlalchemy as sa

from plimsoll.common.errors import PlimsollError
from plimsoll.release.aliases import KNOWN_REVISIONS, MlflowAliases, SqlAliases
from plimsoll.release.registry import ModelRegistry

MODEL = "m"
TABLES = ("registered_models", "registered_model_tags", "registered_model_aliases",
          "model_versions", "model_version_tags")
# (operation, model, alias, version): sets, a move, deletes, and what MLflow refuses.
MOVES = [
    ("set", MODEL, "champion", "1"),
    ("set", MODEL, "challenger", "2"),
    ("set", MODEL, "champion", "2"),  # a move
    ("set", MODEL, "previous-champion", "1"),
    ("delete", MODEL, "challenger", None),
    ("delete", MODEL, "never-set", None),
    ("set", MODEL, "champion", "3"),  # a deleted version: refused
    ("set", MODEL, "champion", "9"),  # never registered: refused
    ("set", MODEL, "latest", "1"),  # a name MLflow reserves: refused
    ("set", "no-such-model", "champion", "1"),  # refused
    ("delete", "no-such-model", "champion", None),  # refused
    ("get", MODEL, "champion", None),
    ("get", MODEL, "challenger", None),
    ("get", "no-such-model", "champion", None),
]
REFUSED = {6, 7, 8, 9, 10}


@pytest.fixture(scope="module")
def fresh_store(tmp_path_factory):
    """A fresh MLflow store: model m with versions 1-3, version 3 deleted."""
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("alias-contract")
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    client.create_registered_model(MODEL)
    for number in range(1, 4):
        client.create_model_version(MODEL, source=str(root), tags={"seed": str(number)})
    client.delete_model_version(MODEL, "3")
    return root / "mlflow.db"


def _copy(fresh_store, tmp_path, name):
    shutil.copy(fresh_store, tmp_path / name)
    return f"sqlite:///{tmp_path / name}"


def _apply(backend) -> list[str]:
    outcomes = []
    for operation, model, alias, version in MOVES:
        try:
            if operation == "set":
                backend.set(model, alias, version)
                outcomes.append("ok")
            elif operation == "delete":
                backend.delete(model, alias)
                outcomes.append("ok")
            else:
                outcomes.append(f"= {backend.get(model, alias)}")
        except PlimsollError:
            outcomes.append("refused")
    return outcomes


def _tables(url: str) -> dict[str, list[tuple]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return {name: sorted(tuple(row) for row in connection.execute(
                sa.text(f"SELECT * FROM {name}"))) for name in TABLES}
    finally:
        engine.dispose()


def test_the_fresh_store_is_of_a_revision_the_fast_path_knows(fresh_store, tmp_path):
    assert SqlAliases(_copy(fresh_store, tmp_path, "known.db")).revision in KNOWN_REVISIONS


def test_the_same_moves_leave_the_same_tables(fresh_store, tmp_path):
    through_mlflow = _copy(fresh_store, tmp_path, "client.db")
    fast = _copy(fresh_store, tmp_path, "fast.db")
    before = _tables(fast)

    expected = _apply(MlflowAliases(ModelRegistry(through_mlflow)))
    assert _apply(SqlAliases(fast)) == expected
    assert {i for i, outcome in enumerate(expected) if outcome == "refused"} == REFUSED
    assert expected[-3:] == ["= 2", "= None", "= None"]

    after = _tables(fast)
    assert after == _tables(through_mlflow)
    # Only the aliases changed; no version or model row was touched by a move.
    assert {name for name in TABLES if after[name] != before[name]} == {
        "registered_model_aliases"}
    engine = sa.create_engine(fast)
    with engine.connect() as connection:
        aliases = connection.execute(sa.text(
            "SELECT workspace, name, alias, version FROM registered_model_aliases "
            "ORDER BY alias")).all()
    engine.dispose()
    assert [tuple(row) for row in aliases] == [("default", "m", "champion", 2),
                                               ("default", "m", "previous-champion", 1)]


def test_the_mlflow_client_reads_back_what_the_fast_path_wrote(fresh_store, tmp_path):
    fast = _copy(fresh_store, tmp_path, "fast.db")
    SqlAliases(fast).set(MODEL, "champion", "2")
    client = ModelRegistry(fast)
    assert client.alias_version(MODEL, "champion") == "2"
    assert client.aliases(MODEL) == {"champion": "2"}
