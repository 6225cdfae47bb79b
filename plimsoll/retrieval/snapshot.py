"""Immutable, content-addressed embeddings index snapshots, built incrementally.

A snapshot's manifest lists every file with its sha256. Every reader (a rebuild that finds
the id already there, a query, a served model) verifies the files against it, so a snapshot
with a missing, extra or changed file is refused, never used.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from plimsoll.common.errors import PlimsollError, SnapshotConflictError
from plimsoll.common.hashing import sha256_file, sha256_json
from plimsoll.datasets.store import PublishedSlice
from plimsoll.retrieval.chunking import Chunk, ChunkingParams, chunk_document
from plimsoll.retrieval.embedding_cache import EmbeddingCache
from plimsoll.retrieval.encoder import Encoder, EncoderDirectory
from plimsoll.retrieval.reference import SnapshotRef

SNAPSHOT_FORMAT = 1
INDEX_PARAMS = {"type": "IndexFlatIP", "metric": "inner_product", "normalized": True}
CHUNK_FILE, VECTOR_FILE, INDEX_FILE, MANIFEST_FILE = (
    "chunks.parquet", "vectors.npy", "index.faiss", "manifest.json")
# The files a snapshot is made of, each listed in its manifest with its sha256.
SNAPSHOT_FILES = (CHUNK_FILE, VECTOR_FILE, INDEX_FILE)
CHUNK_COLUMNS = ("chunk_id", "chunk_hash", "doc_id", "slice", "ordinal", "text")
WINDOW = 2048  # chunks held in memory at once while embedding or indexing
STAGING_PREFIX, LOCK_SUFFIX = ".staging-", ".lock"


class CorruptSnapshotError(SnapshotConflictError):
    """A snapshot's files do not match its manifest; it is neither used nor overwritten."""


@dataclass
class BuildStats:
    """What a build did, for metadata and benchmarks."""

    chunks: int = 0
    unique_chunks: int = 0
    embedded: int = 0
    reused_snapshot: bool = False
    model_loaded: bool = False
    stale_staging_cleaned: int = 0  # directories left by killed builds, removed by this one


@dataclass(frozen=True)
class SnapshotResult:
    """The snapshot a build produced (or found) and what the build cost."""

    snapshot_id: str
    path: Path
    manifest: dict
    stats: BuildStats

    def ref(self) -> SnapshotRef:
        """What the next asset needs of this snapshot."""
        inputs = self.manifest["inputs"]
        return SnapshotRef(snapshot_id=self.snapshot_id, path=str(self.path),
                           encoder_digest=inputs["encoder_digest"],
                           tokenizer_hash=inputs["tokenizer_hash"], slices=dict(inputs["slices"]),
                           encoder_path=self.manifest["encoder_path"])


def iter_chunks(slices: Sequence[PublishedSlice], params: ChunkingParams) -> Iterator[Chunk]:
    """Chunks of every slice, in slice-name then row order, streamed from Parquet."""
    import pyarrow.parquet as pq

    for published in sorted(slices, key=lambda s: s.name):
        for batch in pq.ParquetFile(published.path).iter_batches(
                batch_size=1024, columns=["id", "title", "text"]):
            for row in batch.to_pylist():
                if row["id"] is None or not row["text"]:
                    continue
                yield from chunk_document(row["id"], row["title"] or "", row["text"],
                                          published.name, params)


class SnapshotBuilder:
    """Builds a snapshot, embedding only chunks the cache has not seen for this encoder."""

    def __init__(self, snapshots_dir: Path, cache_dir: Path, encoder_dir: EncoderDirectory,
                 params: ChunkingParams, batch_size: int = 32,
                 progress: Callable[[str, int], Callable[[int], None]] | None = None) -> None:
        self.snapshots_dir = Path(snapshots_dir)
        self.cache_dir = Path(cache_dir)
        self.encoder_dir = encoder_dir
        self.params = params
        self.batch_size = batch_size
        self.progress = progress or (lambda _label, _total: (lambda _n: None))
        self._encoder: Encoder | None = None

    def _load_encoder(self) -> Encoder:
        if self._encoder is None:
            self._encoder = Encoder(self.encoder_dir, batch_size=self.batch_size)
        return self._encoder

    def build(self, slices: Sequence[PublishedSlice]) -> SnapshotResult:
        """Build (or reuse) the snapshot for these slices; never overwrite an existing one."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        stats = BuildStats()
        stats.stale_staging_cleaned = clean_stale_staging(self.snapshots_dir)
        with staging_directory(self.snapshots_dir) as staging:
            # Pass 1: chunk, hash and stage the chunk table; the ids give the snapshot id.
            hashes: list[str] = []
            chunk_lines: list[str] = []
            schema = pa.schema([(name, pa.int32() if name == "ordinal" else pa.string())
                                for name in CHUNK_COLUMNS])
            with pq.ParquetWriter(staging / CHUNK_FILE, schema) as writer:
                window: list[Chunk] = []
                for chunk in iter_chunks(slices, self.params):
                    hashes.append(chunk.chunk_hash)
                    chunk_lines.append(f"{chunk.chunk_id} {chunk.chunk_hash}")
                    window.append(chunk)
                    if len(window) >= WINDOW:
                        writer.write_table(_chunk_table(window, schema))
                        window = []
                if window:
                    writer.write_table(_chunk_table(window, schema))
            stats.chunks = len(hashes)
            stats.unique_chunks = len(set(hashes))
            inputs = {
                "format": SNAPSHOT_FORMAT,
                "encoder_digest": self.encoder_dir.digest,
                "tokenizer_hash": self.encoder_dir.tokenizer_hash,
                "chunking": self.params.as_dict(),
                "index": INDEX_PARAMS,
                "slices": {s.name: s.content_hash for s in sorted(slices, key=lambda s: s.name)},
                "chunks_digest": sha256_json(chunk_lines),
            }
            del chunk_lines
            snapshot_id = sha256_json(inputs)
            final = self.snapshots_dir / snapshot_id
            if final.exists():
                manifest = verify_snapshot(final, expected_inputs=inputs)
                stats.reused_snapshot = True
                return SnapshotResult(snapshot_id, final, manifest, stats)

            with EmbeddingCache(self.cache_dir, self.encoder_dir.digest) as cache:
                stats.embedded = self._embed_missing(staging / CHUNK_FILE, hashes, cache)
                stats.model_loaded = self._encoder is not None
                dimension = self._index_vectors(staging, hashes, cache)
            manifest = {
                "snapshot_id": snapshot_id,
                "inputs": inputs,
                "encoder_path": str(self.encoder_dir.path),
                "dimension": dimension,
                "chunk_count": stats.chunks,
                "unique_chunk_count": stats.unique_chunks,
                "files": {name: sha256_file(staging / name) for name in SNAPSHOT_FILES},
                # When the slices were taken: the gateway judges staleness by it. Not an
                # input: the same inputs built later are the same snapshot.
                "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True))
            try:
                os.rename(staging, final)  # atomic; fails if another build won the race
            except OSError:
                manifest = verify_snapshot(final, expected_inputs=inputs)
                stats.reused_snapshot = True
            return SnapshotResult(snapshot_id, final, manifest, stats)

    def _embed_missing(self, chunk_file: Path, hashes: list[str], cache: EmbeddingCache) -> int:
        import pyarrow.parquet as pq

        todo = set(cache.missing(hashes))
        if not todo:
            return 0
        advance = self.progress("embedding new chunks", len(todo))
        encoder = self._load_encoder()
        pending_hashes: list[str] = []
        pending_texts: list[str] = []
        embedded = 0

        def flush() -> None:
            nonlocal embedded
            cache.put(pending_hashes, encoder.embed(pending_texts))
            embedded += len(pending_hashes)
            advance(len(pending_hashes))
            pending_hashes.clear()
            pending_texts.clear()

        for batch in pq.ParquetFile(chunk_file).iter_batches(
                batch_size=WINDOW, columns=["chunk_hash", "text"]):
            for chunk_hash, text in zip(batch.column("chunk_hash").to_pylist(),
                                        batch.column("text").to_pylist(), strict=True):
                if chunk_hash in todo:
                    todo.discard(chunk_hash)  # identical chunks are embedded once
                    pending_hashes.append(chunk_hash)
                    pending_texts.append(text)
                    if len(pending_hashes) >= WINDOW:
                        flush()
        if pending_hashes:
            flush()
        return embedded

    def _index_vectors(self, staging: Path, hashes: list[str], cache: EmbeddingCache) -> int:
        import faiss

        dimension = cache.get(hashes[:1]).shape[1] if hashes else self._load_encoder().dimension
        vectors = np.lib.format.open_memmap(staging / VECTOR_FILE, mode="w+",
                                            dtype=np.float32, shape=(len(hashes), dimension))
        index = faiss.IndexFlatIP(dimension)
        for start in range(0, len(hashes), WINDOW):
            block = cache.get(hashes[start:start + WINDOW])
            vectors[start:start + len(block)] = block
            index.add(block)
        vectors.flush()
        del vectors
        faiss.write_index(index, str(staging / INDEX_FILE))
        return dimension


def _chunk_table(chunks: list[Chunk], schema: object) -> object:
    import pyarrow as pa

    return pa.Table.from_pylist([{name: getattr(c, name) for name in CHUNK_COLUMNS}
                                 for c in chunks], schema=schema)


@contextlib.contextmanager
def staging_directory(parent: Path) -> Iterator[Path]:
    """A new staging directory under `parent`, marked live by a lock held until it is gone.

    The lock file sits beside the directory (inside, it would travel into the snapshot). It
    is locked before the directory exists and unlinked only after the directory is removed
    or renamed into place, so `clean_stale_staging` never sees a live directory unlocked.
    """
    import fcntl

    parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle, name = tempfile.mkstemp(prefix=STAGING_PREFIX, suffix=LOCK_SUFFIX, dir=parent)
        fcntl.flock(handle, fcntl.LOCK_EX)
        lock = Path(name)
        # A cleaner may have taken and unlinked the lock file before it was locked here.
        with contextlib.suppress(FileNotFoundError):
            if os.stat(lock).st_ino == os.fstat(handle).st_ino:
                break
        os.close(handle)
    staging = lock.with_name(lock.name.removesuffix(LOCK_SUFFIX))
    try:
        staging.mkdir()
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        lock.unlink(missing_ok=True)
        os.close(handle)


def clean_stale_staging(parent: Path) -> int:
    """Remove staging directories (and lock files) of builds that died; count the directories.

    A directory is stale when nothing holds its lock: its build was killed. One whose lock is
    held belongs to a build still running, in this process or another, and is kept.
    """
    import fcntl

    if not parent.is_dir():
        return 0
    cleaned = 0
    for entry in sorted(parent.glob(STAGING_PREFIX + "*")):
        is_lock = entry.name.endswith(LOCK_SUFFIX)
        lock = entry if is_lock else entry.with_name(entry.name + LOCK_SUFFIX)
        staging = entry.with_name(entry.name.removesuffix(LOCK_SUFFIX)) if is_lock else entry
        if is_lock and staging.exists():
            continue  # handled with its directory
        try:
            handle = os.open(lock, os.O_RDWR)
        except FileNotFoundError:
            handle = None  # no lock at all: left by a build from before staging was locked
        try:
            if handle is not None:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live build
            if staging.is_dir():
                shutil.rmtree(staging, ignore_errors=True)
                cleaned += 1
            lock.unlink(missing_ok=True)
        finally:
            if handle is not None:
                os.close(handle)
    return cleaned


def _corrupt_fix(path: Path) -> str:
    return (f"move {path} aside (or delete it) and rebuild it by materializing embeddings_index;"
            " a snapshot that fails verification is never reused, and snapshots are never "
            "overwritten")


def verify_snapshot(path: Path, expected_inputs: dict | None = None) -> dict:
    """Check a snapshot's files against its manifest (and the inputs that name it).

    The manifest must list exactly the snapshot's files, each with its sha256; a snapshot
    without that list cannot be verified, so it is as corrupt as one with a changed file.
    """
    path = Path(path)
    manifest_file = path / MANIFEST_FILE
    fix = _corrupt_fix(path)
    if not path.is_dir():
        raise PlimsollError("no index snapshot here", file=path,
                            fix="pass a snapshot id listed under PLIMSOLL_HOME/index_snapshots, "
                            "or materialize embeddings_index")
    if not manifest_file.is_file():
        raise CorruptSnapshotError("snapshot directory exists without a manifest",
                                   file=manifest_file, fix=fix)
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptSnapshotError(f"manifest is not valid JSON ({exc})", file=manifest_file,
                                   fix=fix) from None
    if not isinstance(manifest, dict):
        raise CorruptSnapshotError("manifest is not a JSON object", file=manifest_file, fix=fix)
    if expected_inputs is not None and manifest.get("inputs") != expected_inputs:
        raise CorruptSnapshotError("snapshot exists with different inputs than its id says",
                                   file=manifest_file, field="inputs", fix=fix)
    if manifest.get("snapshot_id") != path.name or sha256_json(
            manifest.get("inputs")) != path.name:
        raise CorruptSnapshotError("manifest does not match the snapshot id",
                                   file=manifest_file, field="snapshot_id", fix=fix)
    for key, kind in (("dimension", int), ("chunk_count", int), ("encoder_path", str)):
        if not isinstance(manifest.get(key), kind) or isinstance(manifest.get(key), bool):
            raise CorruptSnapshotError(f"manifest has no valid '{key}'", file=manifest_file,
                                       field=key, fix=fix)
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise CorruptSnapshotError("manifest lists no files with their hashes, so the snapshot "
                                   "cannot be verified", file=manifest_file, field="files",
                                   fix=fix)
    unlisted = sorted(set(SNAPSHOT_FILES) - set(files))
    if unlisted:
        raise CorruptSnapshotError(f"manifest does not list {unlisted} with their hashes, so "
                                   "they cannot be verified", file=manifest_file,
                                   field="files", fix=fix)
    present = {entry.name for entry in path.iterdir()} - {MANIFEST_FILE}
    unknown = sorted((present | set(files)) - set(SNAPSHOT_FILES))
    if unknown:
        raise CorruptSnapshotError(f"snapshot holds or lists files that are not part of a "
                                   f"snapshot: {unknown}", file=path, field="files", fix=fix)
    for name in SNAPSHOT_FILES:
        file = path / name
        if not file.is_file():
            raise CorruptSnapshotError(f"{name} is missing", file=file, field=f"files.{name}",
                                       fix=fix)
        if sha256_file(file) != files[name]:
            raise CorruptSnapshotError(f"{name} differs from the hash in the manifest",
                                       file=file, field=f"files.{name}", fix=fix)
    _check_parts_agree(path, manifest)
    return manifest


def _check_parts_agree(path: Path, manifest: dict) -> None:
    """A vector row per chunk row, of the manifest's dimension: the files were built together.

    The hashes prove each file is the one the manifest lists; this catches a manifest whose
    hashes were rewritten to fit files from elsewhere. Read from the file headers only.
    """
    import pyarrow.parquet as pq

    try:
        chunk_rows = pq.ParquetFile(path / CHUNK_FILE).metadata.num_rows
        vectors = np.load(path / VECTOR_FILE, mmap_mode="r")
        shape = vectors.shape
        del vectors
    except (OSError, ValueError) as exc:  # pyarrow's and numpy's errors for a foreign file
        raise CorruptSnapshotError(f"cannot read the snapshot's files ({exc})", file=path,
                                   field="files", fix=_corrupt_fix(path)) from None
    if len(shape) != 2 or not chunk_rows == shape[0] == manifest["chunk_count"] or (
            shape[1] != manifest["dimension"]):
        raise CorruptSnapshotError(
            f"the snapshot's parts disagree: {chunk_rows} chunk rows, vectors of shape {shape}, "
            f"manifest chunk_count {manifest['chunk_count']} and dimension "
            f"{manifest['dimension']}", file=path, field="chunk_count", fix=_corrupt_fix(path))


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk."""

    rank: int
    score: float
    chunk_id: str
    doc_id: str
    slice: str
    text: str


class IndexSnapshot:
    """A snapshot opened for querying."""

    def __init__(self, path: Path) -> None:
        import faiss
        import pyarrow.parquet as pq

        self.path = Path(path)
        self.manifest = verify_snapshot(self.path)
        self.index = faiss.read_index(str(self.path / INDEX_FILE))
        self.chunks = pq.read_table(self.path / CHUNK_FILE,
                                    columns=["chunk_id", "doc_id", "slice", "text"]).to_pydict()
        # A hit's row number indexes the chunk table: the index must hold one vector per row.
        if (self.index.ntotal, self.index.d) != (self.manifest["chunk_count"],
                                                 self.manifest["dimension"]):
            raise CorruptSnapshotError(
                f"the index holds {self.index.ntotal} vectors of dimension {self.index.d}; the "
                f"manifest says {self.manifest['chunk_count']} of {self.manifest['dimension']}",
                file=self.path / INDEX_FILE, field="chunk_count", fix=_corrupt_fix(self.path))

    @property
    def snapshot_id(self) -> str:
        """The content address."""
        return self.manifest["snapshot_id"]

    def search(self, query_vectors: np.ndarray, k: int = 5) -> list[list[Hit]]:
        """Top-k hits per query vector, best first."""
        scores, rows = self.index.search(np.ascontiguousarray(query_vectors, np.float32), k)
        return [[Hit(rank=rank + 1, score=float(score), chunk_id=self.chunks["chunk_id"][row],
                     doc_id=self.chunks["doc_id"][row], slice=self.chunks["slice"][row],
                     text=self.chunks["text"][row])
                 for rank, (score, row) in enumerate(zip(s, r, strict=True)) if row >= 0]
                for s, r in zip(scores, rows, strict=True)]


def query_snapshot(snapshot: IndexSnapshot, encoder: Encoder, question: str,
                   k: int = 5) -> list[Hit]:
    """Top-k chunks for one question, with scores and chunk ids."""
    if encoder.directory.digest != snapshot.manifest["inputs"]["encoder_digest"]:
        raise SnapshotConflictError(
            "the encoder differs from the one that built this snapshot",
            file=snapshot.path / MANIFEST_FILE, field="inputs.encoder_digest",
            fix=f"query with the encoder at {snapshot.manifest['encoder_path']}")
    return snapshot.search(encoder.embed([question]), k)[0]
