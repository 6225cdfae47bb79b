"""embeddings_index: an immutable FAISS snapshot over the published slices."""

import dagster as dg
from pydantic import Field

from platform_defs.resources import EncoderModel, PlimsollHome, SliceStorage

GROUP = "retrieval"


class IndexConfig(dg.Config):
    """How passages are cut and which slices the index covers."""

    chunk_words: int = Field(default=160, description="Words per chunk (part of the "
                             "snapshot id).")
    overlap_words: int = Field(default=32, description="Words shared by consecutive chunks "
                               "(part of the snapshot id).")
    slices: list[str] = Field(default_factory=list, description="Slices to index; empty "
                              "means every slice declared in data_manifests/.")


def build_embeddings_index(slice_names: list[str]) -> dg.AssetsDefinition:
    """The embeddings_index asset over the given slices."""

    @dg.asset(
        name="embeddings_index",
        group_name=GROUP,
        deps=["dataset_slice"],
        kinds={"faiss", "pytorch"},
        code_version="1",
    )
    def embeddings_index(context: dg.AssetExecutionContext, config: IndexConfig,
                         home: PlimsollHome, slice_storage: SliceStorage,
                         encoder: EncoderModel) -> dg.MaterializeResult:
        """Searchable snapshot of every published slice; unchanged chunks are never re-embedded."""
        from tqdm import tqdm

        from plimsoll.chunking import ChunkingParams
        from plimsoll.errors import PlimsollError
        from plimsoll.index_snapshot import SnapshotBuilder

        unknown = sorted(set(config.slices) - set(slice_names))
        if unknown:
            raise PlimsollError(f"unknown slices {unknown}", field="config.slices",
                                fix=f"choose from {slice_names}")
        store = slice_storage.store()
        published = [store.published(name) for name in (config.slices or slice_names)]

        def progress(label: str, total: int):
            bar = tqdm(total=total, desc=label, unit="chunk")
            return bar.update

        layout = home.layout
        builder = SnapshotBuilder(layout.index_snapshots, layout.embedding_cache,
                                  encoder.directory(),
                                  ChunkingParams(config.chunk_words, config.overlap_words),
                                  batch_size=encoder.batch_size, progress=progress)
        result = builder.build(published)
        stats = result.stats
        context.log.info(f"snapshot {result.snapshot_id[:12]}: {stats.chunks} chunks, "
                         f"{stats.embedded} embedded now, reused={stats.reused_snapshot}")
        inputs = result.manifest["inputs"]
        return dg.MaterializeResult(
            data_version=dg.DataVersion(result.snapshot_id),
            metadata={
                "snapshot_id": result.snapshot_id,
                "snapshot_path": dg.MetadataValue.path(str(result.path)),
                "chunk_count": dg.MetadataValue.int(stats.chunks),
                "unique_chunks": dg.MetadataValue.int(stats.unique_chunks),
                "embedded_now": dg.MetadataValue.int(stats.embedded),
                "reused_snapshot": stats.reused_snapshot,
                "encoder_digest": inputs["encoder_digest"],
                "tokenizer_hash": inputs["tokenizer_hash"],
                "chunking": dg.MetadataValue.json(inputs["chunking"]),
                "slice_hashes": dg.MetadataValue.json(inputs["slices"]),
            },
        )

    return embeddings_index
