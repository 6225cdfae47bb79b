"""The prod profile's Dagster storage, PostgreSQL, with the real server on this machine."""

import dagster as dg
import pytest
import yaml
from conftest import REPO_ROOT

pytestmark = pytest.mark.postgres


@pytest.mark.usefixtures("home", "manifests")
def test_materialize_on_postgres_storage(tmp_path, postgres_url, monkeypatch):
    prod = yaml.safe_load((REPO_ROOT / "platform_defs" / "instance" / "prod" /
                           "dagster.yaml").read_text())
    dagster_home = tmp_path / "dagster_pg"
    dagster_home.mkdir()
    # The prod storage block as it is; the K8s run launcher needs a cluster, so not here.
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump({"storage": prod["storage"]}))
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    monkeypatch.setenv("DAGSTER_PG_URL", postgres_url)

    from platform_defs.definitions import defs

    definitions = defs()
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        result = definitions.resolve_job_def("dataset_slices_job").execute_in_process(
            partition_key="faq", instance=instance)
        assert result.success
        record = instance.get_latest_materialization_event(dg.AssetKey("dataset_slice"))
        assert record is not None
        assert {c.check_name for c in result.get_asset_check_evaluations()} >= {"ids_unique"}

    import psycopg2

    dsn = postgres_url.replace("+psycopg2", "")
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM runs")
        assert cursor.fetchone()[0] == 1
