import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAQ_ROWS, write_jsonl, write_manifest

from plimsoll.common.errors import StorageError
from plimsoll.datasets.manifests import load_manifest
from plimsoll.datasets.slices import build_slice
from plimsoll.datasets.store import SliceStore

DVC = str(Path(sys.executable).parent / "dvc")


def _table(tmp_path, rows, name="faq"):
    write_jsonl(tmp_path / "src" / "sources" / f"{name}.jsonl", rows)
    return build_slice(load_manifest(write_manifest(tmp_path / "src", name)))


def _remote_objects(remote: Path) -> set[str]:
    return {str(p.relative_to(remote)) for p in remote.rglob("*") if p.is_file()}


def test_publish_is_content_addressed_and_keeps_old_versions(tmp_path):
    store = SliceStore(tmp_path / "dvc", str(tmp_path / "remote"))
    first = store.publish(_table(tmp_path, FAQ_ROWS))
    assert first.content_hash == _table(tmp_path, FAQ_ROWS).content_hash
    assert first.row_count == len(FAQ_ROWS)
    objects = _remote_objects(tmp_path / "remote")
    assert len(objects) == 1 and first.dvc_md5[2:] in next(iter(objects))

    again = store.publish(_table(tmp_path, FAQ_ROWS))
    assert again.dvc_md5 == first.dvc_md5
    assert _remote_objects(tmp_path / "remote") == objects

    second = store.publish(_table(tmp_path, FAQ_ROWS[:-1]))
    assert second.dvc_md5 != first.dvc_md5
    assert _remote_objects(tmp_path / "remote") > objects  # the old version is still there
    assert store.published("faq").row_count == len(FAQ_ROWS) - 1


def test_failed_push_keeps_the_published_version(tmp_path):
    store = SliceStore(tmp_path / "dvc", str(tmp_path / "remote"))
    before = store.publish(_table(tmp_path, FAQ_ROWS))
    (tmp_path / "not-a-dir").write_text("a file where the remote should be")
    broken = SliceStore(tmp_path / "dvc", str(tmp_path / "not-a-dir" / "remote"))
    with pytest.raises(StorageError) as caught:
        broken.publish(_table(tmp_path, FAQ_ROWS[:2]))
    assert caught.value.field == "remote_url" and "reachable" in caught.value.fix
    after = store.published("faq")
    assert (after.dvc_md5, after.content_hash) == (before.dvc_md5, before.content_hash)
    assert after.row_count == len(FAQ_ROWS)


def test_unpublished_slice_is_a_clear_error(tmp_path):
    store = SliceStore(tmp_path / "dvc", str(tmp_path / "remote"))
    with pytest.raises(StorageError, match="has not been published") as caught:
        store.published("nope")
    assert "materialize dataset_slice partition 'nope'" in caught.value.fix


def test_pinned_pointers_work_with_the_real_dvc_cli(tmp_path, home, monkeypatch):
    """`plimsoll data pin` writes pointers that `dvc status` and `dvc pull` understand."""
    from plimsoll.cli.main import main
    from plimsoll.common.home import HomeLayout

    layout = HomeLayout(home)
    repo = tmp_path / "repo"
    write_jsonl(repo / "data_manifests" / "sources" / "faq.jsonl", FAQ_ROWS)
    manifest = load_manifest(write_manifest(repo / "data_manifests", "faq"))
    SliceStore(layout.dvc_workspace, str(layout.dvc_remote)).publish(build_slice(manifest))

    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([DVC, "init", "-q"], cwd=repo, check=True)
    monkeypatch.chdir(repo)
    assert main(["data", "pin", "--manifests", "data_manifests"]) == 0
    pointer = repo / "data_manifests" / "faq.parquet.dvc"
    assert pointer.is_file()

    status = subprocess.run([DVC, "status"], cwd=repo, capture_output=True, text=True)
    assert status.returncode == 0 and "not in cache" in status.stdout
    pulled = subprocess.run([DVC, "pull"], cwd=repo, capture_output=True, text=True)
    assert pulled.returncode == 0, pulled.stderr
    data = repo / "data_manifests" / "faq.parquet"
    from plimsoll.datasets.slices import content_hash, read_slice

    assert content_hash(read_slice(data)) == build_slice(manifest).content_hash
    clean = subprocess.run([DVC, "status"], cwd=repo, capture_output=True, text=True)
    assert "up to date" in clean.stdout


def test_the_store_leaves_the_process_environment_alone(tmp_path, monkeypatch):
    """DVC analytics are off in the repository's config, not through os.environ."""
    import os

    from dvc import analytics

    monkeypatch.delenv("DVC_NO_ANALYTICS", raising=False)
    monkeypatch.delenv("DVC_TEST", raising=False)
    before = dict(os.environ)
    store = SliceStore(tmp_path / "dvc", str(tmp_path / "remote"))
    assert dict(os.environ) == before
    store.publish(_table(tmp_path, FAQ_ROWS))
    assert dict(os.environ) == before
    monkeypatch.chdir(tmp_path / "dvc")
    assert analytics.is_enabled() is False  # what `dvc` run in the workspace decides
