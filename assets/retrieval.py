"""The retrieval group: immutable FAISS snapshots (base encoder and fine-tuned)."""

import dagster as dg
from pydantic import Field

from platform_defs.resources import EncoderModel, PlimsollHome, SliceStorage
from plimsoll.retrieval.reference import SnapshotRef
from plimsoll.training.checkpoint import Checkpoint

GROUP = "retrieval"


class IndexConfig(dg.Config):
    """How passages are cut and which slices the index covers."""

    chunk_words: int = Field(default=160, description="Words per chunk (part of the "
                             "snapshot id).")
    overlap_words: int = Field(default=32, description="Words shared by consecutive chunks "
                               "(part of the snapshot id).")
    slices: list[str] = Field(default_factory=list, description="Slices to index; empty "
                              "means every slice declared in data_manifests/.")


def snapshot_output(context: dg.AssetExecutionContext, config: IndexConfig,
                    slice_names: list[str], home: PlimsollHome, slice_storage: SliceStorage,
                    encoder_path: str | None, batch_size: int) -> dg.Output[SnapshotRef]:
    """Build (or reuse) a snapshot of the published slices with one encoder."""
    from tqdm import tqdm

    from plimsoll.common.errors import PlimsollError
    from plimsoll.retrieval.chunking import ChunkingParams
    from plimsoll.retrieval.encoder import EncoderDirectory
    from plimsoll.retrieval.snapshot import SnapshotBuilder

    unknown = sorted(set(config.slices) - set(slice_names))
    if unknown:
        raise PlimsollError(f"unknown slices {unknown}", field="config.slices",
                            fix=f"choose from {slice_names}")
    store = slice_storage.store()
    published = [store.published(name) for name in (config.slices or slice_names)]

    def progress(label: str, total: int):
        bar = tqdm(total=total, desc=label, unit="chunk")
        return bar.update

    try:
        params = ChunkingParams(config.chunk_words, config.overlap_words)
    except ValueError as exc:
        raise PlimsollError(str(exc), field="config.chunk_words",
                            fix="use chunk_words of at least 8 and overlap_words from 0 to "
                            "below chunk_words") from None
    layout = home.layout
    builder = SnapshotBuilder(layout.index_snapshots, layout.embedding_cache,
                              EncoderDirectory.open(encoder_path), params,
                              batch_size=batch_size, progress=progress)
    result = builder.build(published)
    stats = result.stats
    context.log.info(f"snapshot {result.snapshot_id[:12]}: {stats.chunks} chunks, "
                     f"{stats.embedded} embedded now, reused={stats.reused_snapshot}")
    if stats.stale_staging_cleaned:
        context.log.warning(f"removed {stats.stale_staging_cleaned} staging folder(s) left in "
                            f"{layout.index_snapshots} by killed builds")
    inputs = result.manifest["inputs"]
    return dg.Output(
        result.ref(),
        data_version=dg.DataVersion(result.snapshot_id),
        metadata={
            "snapshot_id": result.snapshot_id,
            "snapshot_path": dg.MetadataValue.path(str(result.path)),
            "chunk_count": dg.MetadataValue.int(stats.chunks),
            "unique_chunks": dg.MetadataValue.int(stats.unique_chunks),
            "embedded_now": dg.MetadataValue.int(stats.embedded),
            "reused_snapshot": stats.reused_snapshot,
            "stale_staging_cleaned": dg.MetadataValue.int(stats.stale_staging_cleaned),
            "encoder_digest": inputs["encoder_digest"],
            "tokenizer_hash": inputs["tokenizer_hash"],
            "chunking": dg.MetadataValue.json(inputs["chunking"]),
            "slice_hashes": dg.MetadataValue.json(inputs["slices"]),
        },
    )


def build_embeddings_index(slice_names: list[str]) -> dg.AssetsDefinition:
    """The embeddings_index asset (base encoder) over the given slices."""

    @dg.asset(
        name="embeddings_index",
        group_name=GROUP,
        deps=["dataset_slice"],
        kinds={"faiss", "pytorch"},
        code_version="1",
    )
    def embeddings_index(context: dg.AssetExecutionContext, config: IndexConfig,
                         home: PlimsollHome, slice_storage: SliceStorage,
                         encoder: EncoderModel) -> dg.Output[SnapshotRef]:
        """Searchable snapshot of every published slice; unchanged chunks are never re-embedded."""
        return snapshot_output(context, config, slice_names, home, slice_storage,
                               encoder.path or None, encoder.batch_size)

    return embeddings_index


def build_candidate_index(slice_names: list[str]) -> dg.AssetsDefinition:
    """candidate_index: the published slices embedded with the fine-tuned encoder."""

    @dg.asset(group_name=GROUP, deps=["dataset_slice"], kinds={"faiss", "pytorch"},
              code_version="1")
    def candidate_index(context: dg.AssetExecutionContext, config: IndexConfig,
                        finetuned_encoder: Checkpoint, home: PlimsollHome,
                        slice_storage: SliceStorage,
                        encoder: EncoderModel) -> dg.Output[SnapshotRef]:
        """Index snapshot of the published slices, embedded with the fine-tuned encoder."""
        return snapshot_output(context, config, slice_names, home, slice_storage,
                               finetuned_encoder.path, encoder.batch_size)

    return candidate_index
