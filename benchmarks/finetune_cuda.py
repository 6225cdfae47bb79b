"""The fine-tune path on whatever device `pick_device()` finds (CUDA on a GPU node).

Checks what the production GPU step job relies on, on the same code the CPU runs:
  - the default run (precision "auto") trains: loss falls (mean of the first third of the
    steps against the last third) and recall@5 / MRR on the CI eval set, averaged over a few
    seeds, beat the base encoder; the same for the other precision (fp32 or bf16), with
    the throughput of both;
  - a run stopped after a saved step resumes on the device and ends where an uninterrupted
    run ends (bit-equal on CPU; on CUDA the nondeterministic kernels allow a small drift,
    reported as the largest weight difference and the two runs' scores);
Retrieval is brute force over all chunks (what the snapshot's IndexFlatIP computes).

Two steps, because a GPU node may hold torch and transformers but not the rest of Plimsoll:
  python benchmarks/finetune_cuda.py --export DIR     # here: pairs, chunks, CI set, base
  python benchmarks/finetune_cuda.py --data DIR [--json OUT]   # there (or here, on CPU)
The exported base encoder is stored in fp16 to halve its size and widened back to fp32
before use, so the CPU and the GPU run start from the same (rounded) weights.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from finetune_timing import timed_fine_tune  # noqa: E402

from plimsoll.evaluation.metrics import retrieval_scores  # noqa: E402
from plimsoll.retrieval.encoder import (  # noqa: E402
    Encoder,
    EncoderDirectory,
    copy_sentence_transformers_files,
)
from plimsoll.training.finetune import (  # noqa: E402
    Pair,
    TrainingInterrupted,
    TrainingParams,
    fine_tune,
    pick_device,
    resolve_precision,
)

EVALSET = REPO / "evalsets" / "python_docs_ci.jsonl"
SLICES = ("example_faq", "python_help_topics", "stdlib_docstrings")
TRAINING = ("python_help_topics", "stdlib_docstrings")


def export(folder: Path) -> None:
    """Write what the check needs into `folder` (runs where Plimsoll is installed)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from plimsoll.datasets.manifests import load_manifest
    from plimsoll.datasets.slices import build_slice
    from plimsoll.datasets.store import SliceStore
    from plimsoll.retrieval.chunking import ChunkingParams
    from plimsoll.retrieval.snapshot import iter_chunks
    from plimsoll.training.pairs import derive_pairs

    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        store = SliceStore(Path(tmp) / "dvc", str(Path(tmp) / "remote"))
        published = [store.publish(build_slice(load_manifest(
            REPO / "data_manifests" / f"{name}.yaml"))) for name in SLICES]
        pairs = derive_pairs([p for p in published if p.name in TRAINING])
        chunks = list(iter_chunks(published, ChunkingParams()))
    _write_jsonl(folder / "pairs.jsonl", [{"query": p.query, "passage": p.passage}
                                          for p in pairs])
    _write_jsonl(folder / "chunks.jsonl", [{"doc_id": c.doc_id, "text": c.text}
                                           for c in chunks])
    shutil.copyfile(EVALSET, folder / "evalset.jsonl")
    base = EncoderDirectory.open(None)
    model = AutoModel.from_pretrained(base.path, local_files_only=True).to(torch.float16)
    model.save_pretrained(folder / "base-fp16", safe_serialization=True)
    AutoTokenizer.from_pretrained(base.path, local_files_only=True).save_pretrained(
        folder / "base-fp16")
    copy_sentence_transformers_files(base.path, folder / "base-fp16")
    print(f"exported {len(pairs)} pairs, {len(chunks)} chunks, the CI eval set and the base "
          f"encoder (fp16) to {folder}")


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def widened_base(folder: Path, into: Path) -> EncoderDirectory:
    """The exported fp16 base saved again in fp32, the dtype training expects."""
    import torch
    from transformers import AutoModel

    shutil.copytree(folder / "base-fp16", into)
    model = AutoModel.from_pretrained(into, local_files_only=True, dtype=torch.float32)
    model.save_pretrained(into, safe_serialization=True)
    return EncoderDirectory.open(into)


def scores(directory: EncoderDirectory, chunks: list[dict], questions: list[dict]) -> dict:
    """recall@5 and MRR over answerable questions, brute-force inner product over chunks."""
    import numpy as np

    encoder = Encoder(directory, batch_size=64)
    vectors = encoder.embed([c["text"] for c in chunks])
    answerable = [q for q in questions if q["gold_doc_ids"]]
    queries = encoder.embed([q["question"] for q in answerable])
    top = np.argsort(-(queries @ vectors.T), axis=1)[:, :50]
    ranked = [[chunks[i]["doc_id"] for i in row] for row in top]
    metrics = retrieval_scores(ranked, [q["gold_doc_ids"] for q in answerable])
    return {"recall@5": metrics["recall@5"], "mrr": metrics["mrr"]}


def timed_run(base, pairs, params, work: Path, checkpoints: Path) -> tuple:
    """fine_tune, and its pairs/s over the training steps (first step estimated)."""
    result, _, seconds = timed_fine_tune(base, pairs, params, work, checkpoints)
    return result, result.steps * params.batch_size / seconds


def largest_weight_difference(a: EncoderDirectory, b: EncoderDirectory) -> float:
    from safetensors.numpy import load_file

    left, right = load_file(a.path / "model.safetensors"), load_file(b.path / "model.safetensors")
    return max(float(abs(left[k] - right[k]).max()) for k in left)


def check(folder: Path, out: Path | None, seeds: list[int], batch_size: int) -> int:
    import torch

    device = pick_device()
    name = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu"
    report: dict = {"device": device, "device_name": name, "torch": torch.__version__,
                    "auto_precision": resolve_precision("auto", device)}
    print(f"device {device} ({name}), torch {torch.__version__}, precision auto -> "
          f"{report['auto_precision']}")
    pairs = [Pair(**row) for row in _read_jsonl(folder / "pairs.jsonl")]
    chunks = _read_jsonl(folder / "chunks.jsonl")
    questions = _read_jsonl(folder / "evalset.jsonl")
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        base = widened_base(folder, home / "base")
        report["base"] = scores(base, chunks, questions)
        report["batch_size"] = batch_size
        print(f"base encoder              recall@5 {report['base']['recall@5']:.3f}  "
              f"MRR {report['base']['mrr']:.3f}")
        runs = {}
        other = "fp32" if report["auto_precision"] == "bf16" else "bf16"
        for precision in ("auto", other):
            # Warm-up: the device's first steps pay for kernel selection and allocator growth.
            with contextlib.suppress(TrainingInterrupted):
                fine_tune(base, pairs, TrainingParams(precision=precision, batch_size=batch_size),
                          home / "warm", home / "warm-ckpt", stop_after_step=3)
            rows = []
            for seed in seeds:
                params = TrainingParams(precision=precision, seed=seed,
                                        batch_size=batch_size)
                result, rate = timed_run(base, pairs, params, home / "work", home / "ckpt")
                runs[(precision, seed)] = result
                third = max(1, len(result.losses) // 3)
                row = {"seed": seed, "pairs_per_s": rate, "steps": result.steps,
                       "precision": result.precision,
                       "loss_first_third": sum(result.losses[:third]) / third,
                       "loss_last_third": sum(result.losses[-third:]) / third,
                       **scores(result.checkpoint, chunks, questions)}
                rows.append(row)
                print(f"fine-tune {precision:>4} ({result.precision}) seed {seed:>3}  recall@5 "
                      f"{row['recall@5']:.3f}  MRR {row['mrr']:.3f}  {rate:7.1f} pairs/s  loss "
                      f"{row['loss_first_third']:.3f} -> {row['loss_last_third']:.3f} "
                      "(mean of first and last third)")
                if row["loss_last_third"] >= row["loss_first_third"]:
                    failures.append(f"{precision} seed {seed}: loss did not fall")
            mean = {key: sum(r[key] for r in rows) / len(rows)
                    for key in ("recall@5", "mrr", "pairs_per_s")}
            report[f"runs_{precision}"] = {"seeds": rows, "mean": mean}
            print(f"  mean over {len(rows)} seeds      recall@5 {mean['recall@5']:.3f}  MRR "
                  f"{mean['mrr']:.3f}  {mean['pairs_per_s']:7.1f} pairs/s")
            if mean["recall@5"] < report["base"]["recall@5"] or \
                    mean["mrr"] <= report["base"]["mrr"]:
                failures.append(f"{precision}: not better than base (mean over seeds)")

        params = TrainingParams(seed=seeds[0], batch_size=batch_size)
        stop_at = max(1, len(pairs) // batch_size // 3)  # a third of the way through
        try:
            fine_tune(base, pairs, params, home / "resume", home / "ckpt",
                      stop_after_step=stop_at)
            failures.append("stop_after_step did not stop")
        except TrainingInterrupted:
            pass
        resumed = fine_tune(base, pairs, params, home / "resume", home / "ckpt")
        uninterrupted = runs[("auto", seeds[0])]
        drift = largest_weight_difference(resumed.checkpoint, uninterrupted.checkpoint)
        bit_equal = resumed.checkpoint.digest == uninterrupted.checkpoint.digest
        report["resume"] = {"resumed_from_step": resumed.resumed_from_step,
                            "bit_equal": bit_equal,
                            "largest_weight_difference": drift,
                            **scores(resumed.checkpoint, chunks, questions)}
        print(f"resumed at step {resumed.resumed_from_step}     recall@5 "
              f"{report['resume']['recall@5']:.3f}  MRR {report['resume']['mrr']:.3f}  "
              f"bit-equal to the uninterrupted run: {report['resume']['bit_equal']} "
              f"(largest weight difference {drift:.2e})")
        if resumed.resumed_from_step != stop_at:
            failures.append("did not resume from the saved step")
        if device == "cpu" and not report["resume"]["bit_equal"]:
            failures.append("CPU resume not bit-equal")
    report["failures"] = failures
    if out:
        out.write_text(json.dumps(report, indent=2))
    print(f"result: {'all checks passed' if not failures else 'FAILED: ' + '; '.join(failures)}")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--export", type=Path, metavar="DIR",
                      help="write pairs, chunks, the CI eval set and the base encoder to DIR")
    mode.add_argument("--data", type=Path, metavar="DIR", help="run the checks on DIR")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--seeds", type=lambda text: [int(x) for x in text.split(",")],
                        default=[42, 1, 2], help="training seeds per precision, comma-separated "
                        "(default 42,1,2; the default seed comes first); the gate is on their "
                        "mean, since one epoch on ~500 pairs moves MRR by about 0.02 between "
                        "seeds")
    parser.add_argument("--batch-size", type=int, default=TrainingParams().batch_size,
                        help="pairs per step (default: the training default)")
    args = parser.parse_args()
    if args.export:
        export(args.export)
        return 0
    return check(args.data, args.json, args.seeds, args.batch_size)


if __name__ == "__main__":
    sys.exit(main())
