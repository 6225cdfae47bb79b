import dagster as dg
import pytest
from conftest import FAQ_ROWS, QUIET, write_jsonl, write_manifest


@pytest.fixture
def definitions(home, manifests):  # noqa: ARG001 (isolated PLIMSOLL_HOME and manifests)
    from platform_defs.definitions import defs

    return defs()


@pytest.fixture
def instance(home):  # noqa: ARG001 (home: an isolated PLIMSOLL_HOME and DAGSTER_HOME)
    with dg.instance_for_test() as test_instance:
        yield test_instance


def _slice(definitions, instance, name):
    return definitions.resolve_job_def("dataset_slices_job").execute_in_process(
        partition_key=name, instance=instance, run_config=QUIET, raise_on_error=False)


def _index(definitions, instance):
    return definitions.resolve_job_def("embeddings_index_job").execute_in_process(
        instance=instance, run_config=QUIET)


def _metadata(result, node):
    (materialization,) = result.asset_materializations_for_node(node)
    return {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}


def test_slices_then_index_end_to_end(definitions, instance):
    from plimsoll.datasets.manifests import load_manifest
    from plimsoll.datasets.slices import build_slice

    for name in ("faq", "notes"):
        result = _slice(definitions, instance, name)
        assert result.success
        metadata = _metadata(result, "dataset_slice")
        expected = build_slice(load_manifest(definitions.resources["manifests"].manifest_path(
            name))).content_hash
        assert metadata["content_hash"] == expected and metadata["published"] is True
        (materialization,) = result.asset_materializations_for_node("dataset_slice")
        assert materialization.tags["dagster/data_version"] == expected
        checks = result.get_asset_check_evaluations()
        assert len(checks) == 6 and all(c.passed for c in checks)


    first = _metadata(_index(definitions, instance), "embeddings_index")
    assert first["embedded_now"] == first["unique_chunks"] > 0
    assert set(first["slice_hashes"]) == {"faq", "notes"}

    second = _metadata(_index(definitions, instance), "embeddings_index")
    assert second["snapshot_id"] == first["snapshot_id"]
    assert second["reused_snapshot"] is True and second["embedded_now"] == 0


def test_data_version_is_the_content_hash_so_unchanged_slices_do_not_stale(
        definitions, instance):
    from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
    from dagster._core.loader import LoadingContextForTest

    for name in ("faq", "notes"):
        _slice(definitions, instance, name)
    _index(definitions, instance)
    record = instance.get_latest_data_version_record(dg.AssetKey("dataset_slice"), False, "faq")
    first_version = record.asset_materialization.tags["dagster/data_version"]
    rerun = _slice(definitions, instance, "faq")  # same data, new run
    assert _metadata(rerun, "dataset_slice")["content_hash"] == first_version

    resolver = CachingStaleStatusResolver(instance, definitions.resolve_asset_graph(),
                                          LoadingContextForTest(instance))
    assert resolver.get_status(dg.AssetKey("embeddings_index")) == StaleStatus.FRESH


def test_failing_check_stops_downstream_in_the_same_run(home, manifests, instance):
    rows = [*FAQ_ROWS, dict(FAQ_ROWS[0], text="a second row under the same id"),
            {"id": "empty", "text": ""}]
    write_jsonl(manifests / "sources" / "bad.jsonl", rows)
    write_manifest(manifests, "bad")
    from platform_defs.definitions import defs

    definitions = defs()
    assets = [definitions.get_assets_def("dataset_slice"),
              definitions.get_assets_def("embeddings_index")]
    result = dg.materialize(assets, partition_key="bad", instance=instance,
                            resources=definitions.resources, run_config=QUIET,
                            raise_on_error=False)
    assert not result.success
    assert result.asset_materializations_for_node("embeddings_index") == []
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    duplicate = checks["ids_unique"]
    assert not duplicate.passed and duplicate.blocking
    assert duplicate.metadata["failing_rows"].value == 2
    assert duplicate.metadata["sample_failing_ids"].value == ["doc-0", "doc-0"]
    assert duplicate.metadata["source_file"].value.endswith("bad.jsonl")
    assert not checks["text_not_null"].passed
    assert checks["text_not_null"].metadata["sample_failing_ids"].value == ["empty"]
    assert _metadata(result, "dataset_slice")["published"] is False

    from plimsoll.common.errors import StorageError
    from plimsoll.common.home import HomeLayout
    from plimsoll.datasets.store import SliceStore

    with pytest.raises(StorageError, match="has not been published"):
        SliceStore(HomeLayout(home).dvc_workspace, "unused").published("bad")


@pytest.mark.usefixtures("home")
def test_malformed_manifest_fails_the_partition_with_a_readable_error(
        manifests, instance):
    write_manifest(manifests, "broken", classification="secret")
    from platform_defs.definitions import defs

    definitions = defs()  # the code location still loads: only file names are read there
    result = _slice(definitions, instance, "broken")
    assert not result.success
    failure = result.failure_data_for_node("dataset_slice")
    message = str(failure.error.message) + "".join(
        str(c.message) for c in [failure.error.cause] if c)
    assert "broken.yaml" in message and "classification" in message


def test_a_failing_new_version_leaves_the_published_one_current(
        home, manifests, definitions, instance):
    from plimsoll.common.home import HomeLayout
    from plimsoll.datasets.store import SliceStore

    assert _slice(definitions, instance, "faq").success
    store = SliceStore(HomeLayout(home).dvc_workspace, "unused")
    before = store.published("faq")
    write_jsonl(manifests / "sources" / "faq.jsonl", [*FAQ_ROWS, FAQ_ROWS[0]])
    result = _slice(definitions, instance, "faq")
    assert not result.success
    after = store.published("faq")
    assert (after.dvc_md5, after.content_hash, after.row_count) == (
        before.dvc_md5, before.content_hash, before.row_count)
