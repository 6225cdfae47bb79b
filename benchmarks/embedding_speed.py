"""Embedding and index-snapshot speed, printed as ratios against anchors measured in the same run.

Anchors and targets (issue #2):
  fresh build      embeddings_index path vs sentence-transformers `encode` on the same
                   chunks, model and machine: ratio (encode time / our time) >= 0.95
  no change        a re-run with nothing changed loads no model and embeds nothing
  1% changed       rebuild after changing ~1% of chunks costs <= 5% of a full build
  duplicates       identical chunks are embedded once
  peak memory      10x the chunks must not need 10x the peak memory (child processes)
  definitions      loading the code location takes < 2 s (fresh interpreter)

Usage: python benchmarks/embedding_speed.py [--chunks N] [--repeats R]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from plimsoll.datasets.manifests import load_manifest  # noqa: E402
from plimsoll.datasets.slices import SliceTable, build_slice, content_hash  # noqa: E402
from plimsoll.datasets.store import SliceStore  # noqa: E402
from plimsoll.retrieval.chunking import ChunkingParams  # noqa: E402
from plimsoll.retrieval.encoder import EncoderDirectory  # noqa: E402
from plimsoll.retrieval.snapshot import SnapshotBuilder, iter_chunks  # noqa: E402

PARAMS = ChunkingParams()


def reference_slices(store: SliceStore, max_chunks: int):
    """Publish the reference slices, trimmed so the corpus has about max_chunks chunks."""
    published = []
    budget = max_chunks
    for name in ("python_help_topics", "stdlib_docstrings"):
        table = build_slice(load_manifest(REPO / "data_manifests" / f"{name}.yaml"))
        frame, taken = table.frame, 0
        keep = []
        for position, row in enumerate(frame.itertuples(index=False)):
            n = len(list(iter_chunks_for(row.id, row.title, row.text, name)))
            if taken + n > budget // 2 and keep:
                break
            keep.append(position)
            taken += n
        trimmed = frame.iloc[keep].reset_index(drop=True)
        published.append(store.publish(SliceTable(table.manifest, trimmed,
                                                  content_hash(trimmed))))
    return published


def iter_chunks_for(doc_id, title, text, slice_name):
    from plimsoll.retrieval.chunking import chunk_document

    return chunk_document(doc_id, title or "", text, slice_name, PARAMS)


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def build(home: Path, encoder_dir, slices, cache_name="cache"):
    builder = SnapshotBuilder(home / "snapshots", home / cache_name, encoder_dir, PARAMS)
    seconds, result = timed(lambda: builder.build(slices))
    return seconds, result, builder


def encode_anchor(encoder_dir, texts):
    from sentence_transformers import SentenceTransformer

    def run():
        model = SentenceTransformer(str(encoder_dir.path), device="cpu")
        return model.encode(texts, batch_size=32, normalize_embeddings=True)

    return timed(run)[0]


def fresh_build_ratio(encoder_dir, slices, repeats):
    texts = [c.text for c in iter_chunks(slices, PARAMS)]
    anchor, ours = [], []
    for attempt in range(repeats):  # interleaved, best of each, to damp machine noise
        anchor.append(encode_anchor(encoder_dir, texts))
        with tempfile.TemporaryDirectory() as tmp:
            ours.append(build(Path(tmp), encoder_dir, slices)[0])
        print(f"  attempt {attempt + 1}: encode {anchor[-1]:.2f}s, "
              f"embeddings_index {ours[-1]:.2f}s", flush=True)
    return len(texts), min(anchor), min(ours)


def incremental(encoder_dir, store, slices):
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        full_s, full, _ = build(home, encoder_dir, slices)
        again_s, again, again_builder = build(home, encoder_dir, slices)
        # Change ~1% of chunks: edit the first documents until 1% of chunks are covered.
        target = max(1, full.stats.chunks // 100)
        table = build_slice(load_manifest(REPO / "data_manifests" / "stdlib_docstrings.yaml"))
        frame = store_frame(store, "stdlib_docstrings")
        changed, edited = 0, frame.copy()
        for position, row in enumerate(frame.itertuples(index=False)):
            if changed >= target:
                break
            changed += len(list(iter_chunks_for(row.id, row.title, row.text,
                                                "stdlib_docstrings")))
            edited.loc[position, "text"] = row.text + " (revised)"
        republished = store.publish(SliceTable(table.manifest, edited, content_hash(edited)))
        others = [s for s in slices if s.name != "stdlib_docstrings"]
        one_pct_s, one_pct, _ = build(home, encoder_dir, [*others, republished])
        store.publish(SliceTable(table.manifest, frame, content_hash(frame)))  # restore
    return {"full_s": full_s, "full": full, "again_s": again_s, "again": again,
            "again_model_loaded": again_builder._encoder is not None,
            "one_pct_s": one_pct_s, "one_pct": one_pct}


def store_frame(store, name):
    from plimsoll.datasets.slices import read_slice

    return read_slice(store.published(name).path)


def duplicates(encoder_dir, store):
    frame = store_frame(store, "python_help_topics")
    doubled = frame.copy()
    doubled["id"] = doubled["id"] + ":copy"
    table = build_slice(load_manifest(REPO / "data_manifests" / "python_help_topics.yaml"))
    import pandas as pd

    both = pd.concat([frame, doubled], ignore_index=True)
    published = store.publish(SliceTable(table.manifest, both, content_hash(both)))
    with tempfile.TemporaryDirectory() as tmp:
        _, result, _ = build(Path(tmp), encoder_dir, [published])
    store.publish(SliceTable(table.manifest, frame, content_hash(frame)))  # restore
    return result.stats


MEMORY_CHILD = r"""
import json, sys, tempfile, threading, time
from pathlib import Path
import pandas as pd
import psutil
sys.path.insert(0, sys.argv[1])
from plimsoll.retrieval.chunking import ChunkingParams
from plimsoll.retrieval.encoder import EncoderDirectory
from plimsoll.retrieval.snapshot import SnapshotBuilder
from plimsoll.datasets.manifests import SliceManifest
from plimsoll.datasets.store import SliceStore
from plimsoll.datasets.slices import SLICE_COLUMNS, SliceTable, content_hash

docs = int(sys.argv[2])
words = ("plimsoll snapshot index encoder chunk slice manifest lineage model version "
         "rollback champion checks hash vector faiss query answer cite passage").split()
rows = [{"id": f"d{i}", "title": "", "slice": "synthetic", "classification": "public",
         "text": " ".join(words[(i * 7 + j * 3) % len(words)] + str((i * 31 + j) % 997)
                          for j in range(30))} for i in range(docs)]
frame = pd.DataFrame(rows, columns=list(SLICE_COLUMNS)).astype("string")
manifest = SliceManifest(name="synthetic", description="d", owner="o",
                         source={"kind": "pydoc_topics"}, schema_version=1,
                         classification="public", ttl_days=1)
with tempfile.TemporaryDirectory() as tmp:
    home = Path(tmp)
    store = SliceStore(home / "dvc", str(home / "remote"))
    published = store.publish(SliceTable(manifest, frame, content_hash(frame)))
    del rows, frame
    builder = SnapshotBuilder(home / "snaps", home / "cache", EncoderDirectory.open(None),
                              ChunkingParams(chunk_words=32, overlap_words=0))
    builder._load_encoder()
    builder._encoder.embed(["warm up the allocator"] * 32)
    process = psutil.Process()
    before = process.memory_info().rss
    peak, running = before, True

    def sample():
        global peak
        while running:
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    result = builder.build([published])
    running = False
    sampler.join()
print(json.dumps({"chunks": result.stats.chunks, "before": before, "peak": peak}))
"""


def peak_memory(docs):
    done = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(REPO), str(docs)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def definitions_load_seconds():
    code = ("import time; t = time.perf_counter();"
            "from platform_defs.definitions import defs; defs();"
            "print(time.perf_counter() - t)")
    samples = []
    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                              text=True, check=True)
        samples.append(float(done.stdout.strip().splitlines()[-1]))
    return min(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=600,
                        help="approximate chunks in the speed corpus (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=2,
                        help="interleaved repeats of the fresh-build comparison")
    parser.add_argument("--memory-docs", type=int, default=300,
                        help="documents in the small memory corpus; the large one has 10x")
    args = parser.parse_args()

    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"python {platform.python_version()}")
    encoder_dir = EncoderDirectory.open(None)
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        store = SliceStore(Path(tmp) / "dvc", str(Path(tmp) / "remote"))
        slices = reference_slices(store, args.chunks)

        print("\n[fresh build] embeddings_index vs sentence-transformers encode, same chunks")
        n, anchor_s, ours_s = fresh_build_ratio(encoder_dir, slices, args.repeats)
        ratio = anchor_s / ours_s
        print(f"  {n} chunks: encode {anchor_s:.2f}s ({n / anchor_s:.1f}/s), embeddings_index "
              f"{ours_s:.2f}s ({n / ours_s:.1f}/s)")
        print(f"  RATIO speed vs encode = {ratio:.3f}x   (target >= 0.95)")
        if ratio < 0.95:
            failures.append("fresh build")

        print("\n[incremental] re-run with nothing changed; rebuild after ~1% of chunks change")
        inc = incremental(encoder_dir, store, slices)
        print(f"  full build {inc['full_s']:.2f}s; re-run {inc['again_s']:.3f}s, embedded "
              f"{inc['again'].stats.embedded}, model loaded: {inc['again_model_loaded']}")
        no_change = inc["again_s"] / inc["full_s"]
        print(f"  RATIO no-change re-run / full = {no_change:.4f}   (target: no model work)")
        if inc["again"].stats.embedded or inc["again_model_loaded"]:
            failures.append("no change")
        one = inc["one_pct"].stats
        one_ratio = inc["one_pct_s"] / inc["full_s"]
        print(f"  1% change: {one.embedded} of {one.chunks} chunks embedded "
              f"({100 * one.embedded / one.chunks:.1f}%), {inc['one_pct_s']:.2f}s")
        print(f"  RATIO 1%-change rebuild / full = {one_ratio:.3f}   (target <= 0.05)")
        if one_ratio > 0.05:
            failures.append("1% change")

        print("\n[duplicates] every help topic twice, under different ids")
        dup = duplicates(encoder_dir, store)
        print(f"  {dup.chunks} chunks, {dup.unique_chunks} unique, {dup.embedded} embedded")
        print(f"  RATIO embedded / unique = {dup.embedded / dup.unique_chunks:.3f}   "
              "(target 1.000)")
        if dup.embedded != dup.unique_chunks:
            failures.append("duplicates")

    print("\n[peak memory] the same build on N and 10N synthetic documents (child processes)")
    small, large = peak_memory(args.memory_docs), peak_memory(10 * args.memory_docs)
    mib = 1 << 20
    total = large["peak"] / small["peak"]
    growth_small = small["peak"] - small["before"]
    growth_large = large["peak"] - large["before"]
    growth = growth_large / max(growth_small, mib)
    for run, extra in ((small, growth_small), (large, growth_large)):
        print(f"  {run['chunks']:>6} chunks: peak RSS {run['peak'] / mib:.0f} MiB, of which "
              f"{extra / mib:.1f} MiB during the build (model already loaded)")
    print(f"  RATIO peak RSS(10x) / peak RSS(1x) = {total:.2f}   (target well below 10)")
    print(f"  RATIO build growth(10x) / build growth(1x) = {growth:.2f}   (target below 10)")
    if total >= 10 or growth >= 10:
        failures.append("peak memory")

    print("\n[definitions] loading the code location in a fresh interpreter")
    load_s = definitions_load_seconds()
    print(f"  RATIO load time / 2 s budget = {load_s / 2:.2f}   ({load_s:.2f}s)")
    if load_s >= 2:
        failures.append("definitions load")

    print(f"\nresult: {'all targets met' if not failures else 'MISSED: ' + ', '.join(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
