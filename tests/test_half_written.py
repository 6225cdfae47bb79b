"""What a killed or damaged step leaves behind is never used as if it were whole.

Index snapshots are verified against a manifest that lists every file with its hash;
staging folders of killed builds are cleaned while a live build's is kept; a damaged
training state is moved aside and the run says it started over; an MLflow run left
RUNNING by a dead step is closed as FAILED.
"""

import json
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import FAQ_ROWS, write_jsonl, write_manifest

from plimsoll.datasets.manifests import load_manifest
from plimsoll.datasets.slices import build_slice
from plimsoll.datasets.store import SliceStore
from plimsoll.retrieval.chunking import ChunkingParams
from plimsoll.retrieval.snapshot import (
    MANIFEST_FILE,
    CorruptSnapshotError,
    IndexSnapshot,
    SnapshotBuilder,
    clean_stale_staging,
    staging_directory,
)

PARAMS = ChunkingParams(chunk_words=24, overlap_words=4)


@pytest.fixture(scope="module")
def built(tmp_path_factory, encoder_dir):
    """One published slice and a snapshot of it, built once; cases tamper with copies."""
    root = tmp_path_factory.mktemp("built")
    write_jsonl(root / "m" / "sources" / "faq.jsonl", FAQ_ROWS)
    store = SliceStore(root / "dvc", str(root / "remote"))
    published = store.publish(build_slice(load_manifest(write_manifest(root / "m", "faq"))))
    result = SnapshotBuilder(root / "snapshots", root / "cache", encoder_dir,
                             PARAMS).build([published])
    return root, published, result


def _copy(built, tmp_path):
    """A snapshots folder holding a copy of the built snapshot, and its cache."""
    root, published, result = built
    shutil.copytree(root / "snapshots", tmp_path / "snapshots")
    shutil.copytree(root / "cache", tmp_path / "cache")
    return published, tmp_path / "snapshots" / result.snapshot_id


def _edit_manifest(snapshot, change):
    manifest = json.loads((snapshot / MANIFEST_FILE).read_text())
    change(manifest)
    (snapshot / MANIFEST_FILE).write_text(json.dumps(manifest))


def _no_file_list_and_shuffled_vectors(snapshot):
    """The reported case: vectors shuffled, and a manifest with nothing to compare them to."""
    vectors = np.load(snapshot / "vectors.npy")
    np.save(snapshot / "vectors.npy", vectors[::-1].copy())
    _edit_manifest(snapshot, lambda m: m.pop("files"))


def _forged_hashes_over_fewer_chunks(snapshot):
    """Hashes rewritten to fit a chunk table from elsewhere: the parts no longer agree."""
    import pyarrow.parquet as pq

    from plimsoll.common.hashing import sha256_file

    table = pq.read_table(snapshot / "chunks.parquet")
    pq.write_table(table.slice(0, table.num_rows - 1), snapshot / "chunks.parquet")
    digest = sha256_file(snapshot / "chunks.parquet")
    _edit_manifest(snapshot, lambda m: m["files"].update({"chunks.parquet": digest}))


TAMPERING = [
    pytest.param(_no_file_list_and_shuffled_vectors, "lists no files", id="no-file-list"),
    pytest.param(lambda s: _edit_manifest(s, lambda m: m.update(files={})), "lists no files",
                 id="empty-file-list"),
    pytest.param(lambda s: _edit_manifest(s, lambda m: m["files"].pop("index.faiss")),
                 "does not list ['index.faiss']", id="file-list-lacks-index"),
    pytest.param(lambda s: (s / "index.faiss").unlink(), "index.faiss is missing",
                 id="missing-file"),
    pytest.param(lambda s: (s / "chunks.parquet").write_bytes(b"not parquet"),
                 "chunks.parquet differs from the hash", id="changed-file"),
    pytest.param(lambda s: (s / "extra.npy").write_bytes(b"x"), "['extra.npy']",
                 id="unlisted-file"),
    pytest.param(lambda s: (s / MANIFEST_FILE).write_text('{"snapshot_id": "'),
                 "manifest is not valid JSON", id="truncated-manifest"),
    pytest.param(lambda s: (s / MANIFEST_FILE).write_text("[]"), "not a JSON object",
                 id="manifest-not-an-object"),
    pytest.param(lambda s: _edit_manifest(s, lambda m: m.update(chunk_count="many")),
                 "no valid 'chunk_count'", id="manifest-field-wrong-type"),
    pytest.param(_forged_hashes_over_fewer_chunks, "parts disagree", id="forged-hashes"),
]


@pytest.mark.parametrize(("tamper", "message"), TAMPERING)
def test_a_damaged_snapshot_is_refused_by_every_reader_and_left_as_it_is(
        built, tmp_path, encoder_dir, tamper, message):
    published, snapshot = _copy(built, tmp_path)
    tamper(snapshot)
    before = {p.name: p.read_bytes() for p in snapshot.iterdir()}

    with pytest.raises(CorruptSnapshotError, match=re.escape(message)) as opened:
        IndexSnapshot(snapshot)  # the query path, the CLI and the served model
    builder = SnapshotBuilder(tmp_path / "snapshots", tmp_path / "cache", encoder_dir, PARAMS)
    with pytest.raises(CorruptSnapshotError, match=re.escape(message)) as rebuilt:
        builder.build([published])  # the build whose id is already taken

    for error in (opened.value, rebuilt.value):
        assert str(snapshot) in str(error)
        assert "rebuild" in error.fix and "never reused" in error.fix
    assert {p.name: p.read_bytes() for p in snapshot.iterdir()} == before
    assert builder._encoder is None  # nothing was embedded over it either


def test_a_served_model_refuses_a_damaged_snapshot(built, tmp_path, encoder_dir):
    """The pyfunc and `plimsoll serve` open their bundle's snapshot through the same check."""
    from conftest import REPO_ROOT

    from plimsoll.serving.bundles import build_answerer

    _, snapshot = _copy(built, tmp_path)
    _no_file_list_and_shuffled_vectors(snapshot)
    with pytest.raises(CorruptSnapshotError, match="lists no files"):
        build_answerer(encoder_dir.path, snapshot, REPO_ROOT / "prompts" / "answer.md",
                       REPO_ROOT / "prompts" / "abstain.md")


def _hold_lock(lock_path):
    """Another process holding a staging lock, as a concurrent build does."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time\n"
         "handle = open(sys.argv[1], 'a')\nfcntl.flock(handle, fcntl.LOCK_EX)\n"
         "print('locked', flush=True)\ntime.sleep(120)", str(lock_path)],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_stale_staging_is_cleaned_and_a_live_build_kept(built, tmp_path, encoder_dir):
    published, _ = _copy(built, tmp_path)
    snapshots = tmp_path / "snapshots"
    legacy = snapshots / ".staging-legacy1"  # from a build before staging was locked
    legacy.mkdir()
    (legacy / "chunks.parquet").write_bytes(b"half")
    orphan_lock = snapshots / ".staging-orphan1.lock"  # killed between lock and mkdir
    orphan_lock.touch()
    live = snapshots / ".staging-live1"
    live.mkdir()
    (live / "chunks.parquet").write_bytes(b"being written")
    holder = _hold_lock(snapshots / ".staging-live1.lock")
    try:
        with staging_directory(snapshots) as same_process_live:
            result = SnapshotBuilder(snapshots, tmp_path / "cache", encoder_dir,
                                     PARAMS).build([published])
            assert same_process_live.is_dir()
        assert result.stats.stale_staging_cleaned == 1
        assert result.stats.reused_snapshot
        assert not legacy.exists() and not orphan_lock.exists()
        assert (live / "chunks.parquet").read_bytes() == b"being written"
    finally:
        holder.kill()
        holder.wait()
    # Killed, its lock is released by the kernel: the next build cleans its folder.
    assert clean_stale_staging(snapshots) == 1
    assert sorted(p.name for p in snapshots.iterdir()) == [result.snapshot_id]


def test_a_killed_build_leaves_nothing_the_next_one_keeps(built, tmp_path, encoder_dir):
    published, snapshot = _copy(built, tmp_path)
    shutil.rmtree(snapshot)
    killed = subprocess.run(
        [sys.executable, "-c", "import os, sys\n"
         "from plimsoll.retrieval.snapshot import staging_directory\n"
         "from pathlib import Path\n"
         "with staging_directory(Path(sys.argv[1])) as staging:\n"
         "    (staging / 'chunks.parquet').write_bytes(b'half')\n"
         "    os._exit(9)", str(tmp_path / "snapshots")], check=False)
    assert killed.returncode == 9
    assert len(list((tmp_path / "snapshots").glob(".staging-*"))) == 2  # folder and lock
    result = SnapshotBuilder(tmp_path / "snapshots", tmp_path / "cache", encoder_dir,
                             PARAMS).build([published])
    assert result.stats.stale_staging_cleaned == 1 and not result.stats.reused_snapshot
    assert sorted(p.name for p in (tmp_path / "snapshots").iterdir()) == [result.snapshot_id]
    IndexSnapshot(result.path)


# -- training state --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model(encoder_dir):
    from transformers import AutoModel

    return AutoModel.from_pretrained(encoder_dir.path, local_files_only=True)


class Unexpected:
    """A pickled object: loading a state must never construct arbitrary classes."""


def _truncated(path, model):
    _save_good(path, model)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _save_good(path, encoder_model, **changes):
    import torch

    state = {"model": encoder_model.state_dict(), "optimizer": {}, "scheduler": {},
             "rng": torch.get_rng_state(), "step": 1, "losses": [0.5], **changes}
    torch.save(state, path)


DAMAGED_STATES = [
    pytest.param(_truncated, "unreadable", id="truncated"),
    pytest.param(lambda p, _m: p.write_bytes(b"\x00garbage" * 100), "unreadable", id="garbage"),
    pytest.param(lambda p, _m: p.write_bytes(b""), "unreadable", id="empty"),
    pytest.param(lambda p, _m: __import__("torch").save({"step": 3}, p),
                 "not a Plimsoll training state", id="foreign-dict"),
    pytest.param(lambda p, _m: __import__("torch").save({"x": Unexpected()}, p),
                 "Unpickling", id="arbitrary-object"),
    pytest.param(lambda p, m: _save_good(p, m, step=99, losses=[0.1] * 99),
                 "outside 1..2", id="step-beyond-the-run"),
    pytest.param(lambda p, m: _save_good(p, m, losses=[]), "0 losses for 1 steps",
                 id="losses-do-not-match"),
    pytest.param(lambda p, m: _save_good(p, m, model={"w": __import__("torch").zeros(2)}),
                 "do not fit this model", id="other-model"),
]


@pytest.mark.parametrize(("damage", "reason"), DAMAGED_STATES)
def test_a_damaged_training_state_is_moved_aside_and_the_run_starts_over(
        tmp_path, model, damage, reason):
    from plimsoll.training.finetune import STATE_FILE, _saved_state

    path = tmp_path / STATE_FILE
    damage(path, model)
    original = path.read_bytes()
    state, note = _saved_state(path, model, total_steps=2)
    assert state is None
    assert str(path) in note and reason in note and "started over from step 0" in note
    (aside,) = tmp_path.glob(f"{STATE_FILE}.unreadable-*")
    assert aside.read_bytes() == original  # kept for inspection, not deleted
    assert not path.exists()


def test_an_intact_state_is_resumed_and_says_so(tmp_path, model):
    from plimsoll.training.finetune import STATE_FILE, _saved_state

    _save_good(tmp_path / STATE_FILE, model)
    state, note = _saved_state(tmp_path / STATE_FILE, model, total_steps=2)
    assert state["step"] == 1 and note.startswith("resumed from step 1 of 2")


def test_fine_tune_over_a_truncated_state_starts_over_and_records_it(
        tmp_path, encoder_dir, model):
    from plimsoll.training.finetune import (
        STATE_FILE,
        Pair,
        TrainingParams,
        fine_tune,
        pick_device,
        resolve_precision,
        training_fingerprint,
    )

    pairs = [Pair(f"How do I use feature {i}?", f"Feature {i} is used by calling f{i}().")
             for i in range(8)]
    tiny = TrainingParams(batch_size=4, save_every=1, frozen_layers=5)
    fingerprint = training_fingerprint(encoder_dir, pairs, tiny,
                                       resolve_precision(tiny.precision, pick_device()))
    work = tmp_path / "work" / fingerprint[:16]
    work.mkdir(parents=True)
    _truncated(work / STATE_FILE, model)  # a save cut short by a full disk or a copy
    (work / "tmpkilled.tmp").write_bytes(b"a save cut short")  # killed mid-save

    result = fine_tune(encoder_dir, pairs, tiny, tmp_path / "work", tmp_path / "ckpt")

    assert result.resumed_from_step == 0 and len(result.losses) == result.steps
    assert "unreadable" in result.notes[0] and "started over" in result.notes[0]
    assert len(list(work.glob(f"{STATE_FILE}.unreadable-*"))) == 1
    assert not (work / "tmpkilled.tmp").exists()
    assert not list((tmp_path / "ckpt").glob(".staging-*"))

    # A checkpoint whose content no longer matches its name is replaced, not reused.
    weights = result.checkpoint.path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-64])
    again = fine_tune(encoder_dir, pairs, tiny, tmp_path / "work", tmp_path / "ckpt")
    assert again.notes[0].startswith(f"resumed from step {result.steps} of {result.steps}")
    assert "did not match its digest; moved it to" in again.notes[1]
    assert again.checkpoint.digest == again.checkpoint.path.name == result.checkpoint.digest
    assert len(list((tmp_path / "ckpt").glob(f"{result.checkpoint.digest}.damaged-*"))) == 1


# -- MLflow runs of dead steps ----------------------------------------------------------------

@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory):
    """One SQLite MLflow store for these tests (creating one takes seconds); each test has its
    own experiment."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def mlflow_client(mlflow_uri):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_uri)
    return client, client.create_experiment("closing")


def _run(client, experiment, owner, asset="finetuned_encoder", age_s=0.0):
    start = int((time.time() - age_s) * 1000)
    return client.create_run(experiment, start_time=start, tags={
        "plimsoll.asset": asset, "plimsoll.dagster_run_id": owner}).info.run_id


def test_runs_left_running_by_dead_steps_are_closed_and_live_ones_kept(mlflow_client,
                                                                      mlflow_uri):
    from plimsoll.release.registry import ModelRegistry
    from plimsoll.training.finetune import close_abandoned_runs

    client, experiment = mlflow_client
    runs = {
        "finished-owner": _run(client, experiment, "dagster-finished"),
        "earlier-attempt": _run(client, experiment, "dagster-current"),
        "silent-for-hours": _run(client, experiment, "dagster-elsewhere", age_s=3 * 3600),
        "live-elsewhere": _run(client, experiment, "dagster-elsewhere"),
        "live-in-progress": _run(client, experiment, "dagster-running", age_s=3 * 3600),
        "other-asset": _run(client, experiment, "dagster-finished", asset="something_else"),
    }
    client.log_metric(runs["live-in-progress"], "loss", 0.3)  # its heartbeat is recent
    states = {"dagster-finished": True, "dagster-running": False}

    notes = close_abandoned_runs(ModelRegistry(mlflow_uri), experiment, "finetuned_encoder",
                                 "dagster-current", lambda owner: states.get(owner))

    status = {name: client.get_run(run_id).info.status for name, run_id in runs.items()}
    assert status == {"finished-owner": "FAILED", "earlier-attempt": "FAILED",
                      "silent-for-hours": "FAILED", "live-elsewhere": "RUNNING",
                      "live-in-progress": "RUNNING", "other-asset": "RUNNING"}
    assert len(notes) == 3 and all("closed MLflow run" in note for note in notes)
    closed = client.get_run(runs["finished-owner"]).data.tags["plimsoll.closed_because"]
    assert "dagster-finished has finished" in closed and "dagster-current" in closed


def test_finetuned_encoder_closes_dead_runs_and_fails_its_own_run_on_error(
        tmp_path, home, mlflow_uri):
    import dagster as dg
    from conftest import REPO_ROOT

    from assets.training import TrainingConfig, build_training_assets
    from platform_defs.resources import (
        EncoderModel,
        MlflowStore,
        PlimsollHome,
        ProjectFiles,
        SliceStorage,
    )
    from plimsoll.common.errors import PlimsollError
    from plimsoll.common.hashing import sha256_file
    from plimsoll.training.checkpoint import TrainingPairsFile

    with dg.instance_for_test() as instance:
        @dg.asset
        def earlier():
            return 1

        finished = dg.materialize([earlier], instance=instance).run_id
        store = MlflowStore(tracking_uri=mlflow_uri, experiment="training")
        registry = store.registry()
        experiment = registry.ensure_reachable()
        dead = _run(registry.client, experiment, finished)

        pairs = tmp_path / "pairs.jsonl"
        pairs.write_text(json.dumps({"query": "only one", "passage": "pair"}) + "\n")
        _, finetuned_encoder = build_training_assets(["faq"], None)
        with pytest.raises(PlimsollError, match="in-batch negatives need at least 2"):
            finetuned_encoder(
                context=dg.build_asset_context(instance=instance),
                config=TrainingConfig(batch_size=2, dev_evalset="none"),
                home=PlimsollHome(path=str(home)), encoder=EncoderModel(), mlflow=store,
                slice_storage=SliceStorage(workspace=str(tmp_path / "dvc"),
                                           remote_url=str(tmp_path / "remote")),
                project=ProjectFiles(directory=str(REPO_ROOT), evalset="evalsets/x.jsonl",
                                     redteam="evalsets/r.jsonl", guard_policy="g.yaml",
                                     prompts="prompts"),
                training_pairs=TrainingPairsFile(path=str(pairs), digest=sha256_file(pairs),
                                                 count=1, data_manifest_digest="d" * 64,
                                                 slices={}))

    assert registry.client.get_run(dead).info.status == "FAILED"
    (own,) = [run for run in registry.client.search_runs([experiment])
              if run.info.run_id != dead]
    assert own.info.status == "FAILED"
    assert "in-batch negatives" in own.data.tags["plimsoll.failure"]
