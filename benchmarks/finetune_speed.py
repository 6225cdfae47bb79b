"""Fine-tune throughput and eval time, as ratios against anchors measured in the same run.

Anchors and targets (issue #3):
  throughput   Plimsoll's fine_tune vs a plain torch + transformers loop (full fine-tune,
               AdamW, dynamic padding) on the same model, pairs, batch size and max length:
               target >= 3x pairs/s, at equal or better recall@5 on the CI eval set.
               The two loops alternate (--rounds) and each keeps its fastest run.
               The plain loop runs in fp32, as written by hand; Plimsoll runs its defaults
               (precision "auto": bf16 forward passes on a CPU with native bf16), and
               its fp32 rate is printed beside them for information.
  eval time    the 50-question eval (encoder already trained) under 60 s on this machine

Usage: python benchmarks/finetune_speed.py [--pairs N]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from finetune_timing import timed_fine_tune  # noqa: E402

from plimsoll.datasets.manifests import load_manifest  # noqa: E402
from plimsoll.datasets.slices import build_slice  # noqa: E402
from plimsoll.datasets.store import SliceStore  # noqa: E402
from plimsoll.evaluation.evalsets import load_evalset  # noqa: E402
from plimsoll.evaluation.scoring import evaluate_answerer  # noqa: E402
from plimsoll.retrieval.chunking import ChunkingParams  # noqa: E402
from plimsoll.retrieval.encoder import (  # noqa: E402
    Encoder,
    EncoderDirectory,
    copy_sentence_transformers_files,
)
from plimsoll.retrieval.snapshot import IndexSnapshot, SnapshotBuilder  # noqa: E402
from plimsoll.serving.answerer import Answerer  # noqa: E402
from plimsoll.serving.prompts import load_template  # noqa: E402
from plimsoll.training.finetune import TrainingParams  # noqa: E402
from plimsoll.training.pairs import derive_pairs  # noqa: E402

EVALSET = REPO / "evalsets" / "python_docs_ci.jsonl"
NIGHTLY = REPO / "evalsets" / "python_docs_nightly.jsonl"
SLICES = ("example_faq", "python_help_topics", "stdlib_docstrings")
TRAINING = ("python_help_topics", "stdlib_docstrings")


def plain_loop(base: EncoderDirectory, pairs, params: TrainingParams, out: Path) -> float:
    """What a user writes by hand: every weight trained, one AdamW, dynamic padding."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(params.seed)
    tokenizer = AutoTokenizer.from_pretrained(base.path)
    model = AutoModel.from_pretrained(base.path)
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.learning_rate)
    model.train()

    def encode(texts):
        batch = tokenizer(texts, padding=True, truncation=True, max_length=params.max_length,
                          return_tensors="pt")
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1)

    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(params.seed))
    start = time.perf_counter()
    for first in range(0, len(pairs) - params.batch_size + 1, params.batch_size):
        batch = [pairs[i] for i in order[first:first + params.batch_size].tolist()]
        scores = encode([p.query for p in batch]) @ encode([p.passage for p in batch]).T
        loss = torch.nn.functional.cross_entropy(scores * params.scale,
                                                 torch.arange(len(batch)))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    seconds = time.perf_counter() - start
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    copy_sentence_transformers_files(base.path, out)
    return seconds


def recall_at_5(encoder_dir: EncoderDirectory, published, home: Path,
                evalset: Path = EVALSET) -> float:
    snapshot = SnapshotBuilder(home / "snapshots", home / "cache", encoder_dir,
                               ChunkingParams()).build(published)
    answerer = Answerer(Encoder(encoder_dir), IndexSnapshot(snapshot.path),
                        load_template(REPO / "prompts" / "answer.md"),
                        load_template(REPO / "prompts" / "abstain.md"))
    return evaluate_answerer("x", answerer, load_evalset(evalset), 0.0).metrics["recall@5"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=0, help="use the first N pairs (0: all)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="alternate the two loops this many times and keep each one's "
                             "fastest run, so a noisy neighbour hurts neither (default 2)")
    args = parser.parse_args()
    import torch
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"python {platform.python_version()}")
    params = TrainingParams()
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        store = SliceStore(home / "dvc", str(home / "remote"))
        published = [store.publish(build_slice(load_manifest(
            REPO / "data_manifests" / f"{name}.yaml"))) for name in SLICES]
        pairs = derive_pairs([p for p in published if p.name in TRAINING])
        pairs = pairs[:args.pairs] if args.pairs else pairs
        trained_pairs = (len(pairs) // params.batch_size) * params.batch_size
        base = EncoderDirectory.open(None)
        print(f"\n[throughput] {trained_pairs} pairs, batch {params.batch_size}, max length "
              f"{params.max_length}, 1 epoch")

        plain_s, loop_s, ours_s = float("inf"), float("inf"), float("inf")
        fp32_s = float("inf")
        fp32 = TrainingParams(precision="fp32")
        for round_ in range(args.rounds):
            plain_dir = home / f"plain-{round_}"
            plain_s = min(plain_s, plain_loop(base, pairs, params, plain_dir))
            ours, seconds, steps_s = timed_fine_tune(base, pairs, params, home / f"w-{round_}",
                                                     home / "checkpoints")
            ours_s, loop_s = min(ours_s, seconds), min(loop_s, steps_s)
            if ours.precision != "fp32":  # for information: the same loop in fp32
                fp32_s = min(fp32_s, timed_fine_tune(base, pairs, fp32, home / f"f-{round_}",
                                                     home / "checkpoints")[2])
        plain_rate, ours_rate = trained_pairs / plain_s, trained_pairs / loop_s
        print(f"  plain loop   {plain_rate:6.2f} pairs/s ({plain_s:.1f}s, training steps only; "
              f"fastest of {args.rounds})")
        print(f"  plimsoll     {ours_rate:6.2f} pairs/s ({loop_s:.1f}s of steps; {ours_s:.1f}s "
              f"with model load and checkpoint writes; fastest of {args.rounds})")
        print(f"               freeze_embeddings={params.freeze_embeddings}, frozen_layers="
              f"{params.frozen_layers}, passage_gradients={params.passage_gradients}, "
              f"precision={params.precision} ({ours.precision} forward passes on this machine)")
        if fp32_s != float("inf"):
            print(f"  plimsoll fp32 {trained_pairs / fp32_s:6.2f} pairs/s (precision=fp32, for "
                  f"information: {trained_pairs / fp32_s / plain_rate:.2f}x the plain loop)")
        ratio = ours_rate / plain_rate
        print(f"  RATIO throughput vs plain loop = {ratio:.2f}x   (target >= 3x)")
        if ratio < 3:
            failures.append("throughput")

        print("\n[quality] recall@5, each model indexing the same corpus")
        models = {"base": base, "plain loop": EncoderDirectory.open(plain_dir),
                  "plimsoll": ours.checkpoint}
        held_out = {name: recall_at_5(d, published, home) for name, d in models.items()}
        generated = {name: recall_at_5(d, published, home, NIGHTLY) for name, d in models.items()}
        print("  CI set (hand-checked questions):       " + "   ".join(
            f"{name} {value:.3f}" for name, value in held_out.items()))
        print("  nightly set (template questions from the same docstrings the training pairs "
              "come from; for information):\n                                         "
              + "   ".join(f"{name} {value:.3f}" for name, value in generated.items()))
        ratio = held_out["plimsoll"] / held_out["plain loop"]
        print(f"  RATIO recall@5 plimsoll / plain loop on the CI set = {ratio:.3f}   "
              "(target >= 1.000)")
        if ratio < 1:
            failures.append("recall@5")

        print("\n[eval time] 50 questions on the fine-tuned bundle (encoder already trained)")
        snapshot = SnapshotBuilder(home / "snapshots", home / "cache", ours.checkpoint,
                                   ChunkingParams()).build(published)
        start = time.perf_counter()
        answerer = Answerer(Encoder(ours.checkpoint), IndexSnapshot(snapshot.path),
                            load_template(REPO / "prompts" / "answer.md"),
                            load_template(REPO / "prompts" / "abstain.md"))
        run = evaluate_answerer("finetuned", answerer, load_evalset(EVALSET).limited(50), 0.0)
        eval_s = time.perf_counter() - start
        print(f"  {eval_s:.2f}s for 50 questions (p95 latency "
              f"{run.metrics['latency_p95_ms']:.1f} ms)")
        print(f"  RATIO eval time / 60 s budget = {eval_s / 60:.3f}   (target < 1)")
        if eval_s >= 60:
            failures.append("eval time")
    print(f"\nresult: {'all targets met' if not failures else 'MISSED: ' + ', '.join(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
