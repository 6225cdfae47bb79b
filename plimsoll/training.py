"""Contrastive fine-tuning of an encoder on (query, passage) pairs with in-batch negatives."""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from plimsoll.encoder import EncoderDirectory, copy_sentence_transformers_files
from plimsoll.errors import PlimsollError
from plimsoll.hashing import sha256_json

STATE_FILE = "training_state.pt"
GROUP = 4  # texts per padded group: a batch is encoded in length-sorted groups
PRECISIONS = ("auto", "bf16", "fp32")


@dataclass(frozen=True)
class TrainingParams:
    """Hyperparameters; all of them are part of the training fingerprint."""

    epochs: int = 1
    learning_rate: float = 5e-5
    batch_size: int = 16
    max_length: int = 128
    query_max_length: int = 48
    seed: int = 42
    freeze_embeddings: bool = True
    frozen_layers: int = 2
    passage_gradients: bool = False
    precision: str = "auto"
    warmup_ratio: float = 0.1
    scale: float = 20.0
    save_every: int = 25

    def as_dict(self) -> dict[str, object]:
        """Plain dict for MLflow params and lineage."""
        return asdict(self)


@dataclass(frozen=True)
class Pair:
    """A query and the passage that answers it."""

    query: str
    passage: str


@dataclass(frozen=True)
class TrainingResult:
    """The checkpoint a run produced and how it went."""

    checkpoint: EncoderDirectory
    steps: int
    resumed_from_step: int
    losses: list[float]
    fingerprint: str
    precision: str  # what "auto" resolved to on this machine


StepCallback = Callable[[int, float, float], None]  # (step, loss, learning rate)


def training_fingerprint(base: EncoderDirectory, pairs: Sequence[Pair],
                         params: TrainingParams, precision: str) -> str:
    """What determines the checkpoint: base weights, data, hyperparameters, precision.

    The resolved precision is part of it, so a bf16 run never resumes an fp32 one.
    """
    return sha256_json({"base": base.digest, "pairs": sha256_json(
        [[p.query, p.passage] for p in pairs]), "params": params.as_dict(),
        "precision": precision})


def pick_device() -> str:
    """CUDA when present (the GPU step job in prod), else CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_precision(requested: str, device: str) -> str:
    """The precision of the forward passes ("auto" resolved for this machine).

    "auto" is bf16 on a CPU that computes it natively (AVX512-BF16 or AMX): about 1.4x the
    steps per second of fp32 on 2 cores. On CUDA "auto" stays fp32: this small encoder at
    batch 16 is bound by kernel launches, and autocast's casts made H200 runs 2.3-2.8x
    slower (benchmarks/finetune_cuda.py); ask for "bf16" with large batches or models.
    Weights, optimizer state, pooling, scores and loss stay fp32 either way.
    """
    import torch

    if requested not in PRECISIONS:
        raise PlimsollError(f"unknown precision {requested!r}", field="precision",
                            fix=f"use one of {', '.join(PRECISIONS)}")
    if requested != "auto":
        return requested
    if device != "cpu":
        return "fp32"
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return "bf16" if native else "fp32"


def fine_tune(base: EncoderDirectory, pairs: Sequence[Pair], params: TrainingParams,
              work_dir: Path, checkpoints_dir: Path, on_step: StepCallback | None = None,
              stop_after_step: int | None = None) -> TrainingResult:
    """Fine-tune `base`; resume from work_dir's last saved step; write a hashed checkpoint.

    `stop_after_step` ends the run early after saving (used to test resumption).
    """
    import torch
    from transformers import AutoModel, AutoTokenizer, get_linear_schedule_with_warmup
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()

    if len(pairs) < 2:
        raise PlimsollError(f"only {len(pairs)} training pairs; in-batch negatives need at "
                            "least 2", field="training_slices",
                            fix="add training slices or lower their filters")
    device = pick_device()
    precision = resolve_precision(params.precision, device)
    fingerprint = training_fingerprint(base, pairs, params, precision)
    work_dir = Path(work_dir) / fingerprint[:16]
    work_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(params.seed)
    random.seed(params.seed)
    if device == "cpu":
        torch.use_deterministic_algorithms(True)

    tokenizer = AutoTokenizer.from_pretrained(base.path, local_files_only=True)
    model = AutoModel.from_pretrained(base.path, local_files_only=True).to(device)
    _freeze(model, params)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=params.learning_rate, foreach=True)
    batches_per_epoch = len(pairs) // params.batch_size or 1
    total_steps = batches_per_epoch * params.epochs
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(total_steps * params.warmup_ratio), total_steps)
    order = _batch_order(len(pairs), params, batches_per_epoch)

    start_step, losses = 0, []
    state_path = work_dir / STATE_FILE
    if state_path.exists():
        # Loaded to the CPU: the RNG states must stay CPU byte tensors, and load_state_dict
        # copies weights and optimizer moments onto the model's device.
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        if device == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        start_step, losses = state["step"], state["losses"]
    resumed_from = start_step

    model.train()
    for step in range(start_step, total_steps):
        batch = [pairs[i] for i in order[step]]
        with torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16"):
            queries = _encode(model, tokenizer, [p.query for p in batch],
                              params.query_max_length, device)
            passages = _encode_passages(model, tokenizer, [p.passage for p in batch], params,
                                        device)
        scores = queries @ passages.T * params.scale
        labels = torch.arange(len(batch), device=device)
        loss = torch.nn.functional.cross_entropy(scores, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if on_step:
            on_step(step + 1, losses[-1], scheduler.get_last_lr()[0])
        done = step + 1
        if done % params.save_every == 0 or done in (total_steps, stop_after_step):
            _save_state(state_path, {"model": model.state_dict(),
                                     "optimizer": optimizer.state_dict(),
                                     "scheduler": scheduler.state_dict(),
                                     "rng": torch.get_rng_state(), "step": done,
                                     "cuda_rng": torch.cuda.get_rng_state_all()
                                     if device == "cuda" else None,
                                     "losses": losses})
        if done == stop_after_step:
            raise TrainingInterrupted(done)

    checkpoint = _write_checkpoint(model, tokenizer, base, checkpoints_dir, fingerprint, params,
                                   precision)
    return TrainingResult(checkpoint=checkpoint, steps=total_steps,
                          resumed_from_step=resumed_from, losses=losses,
                          fingerprint=fingerprint, precision=precision)


class TrainingInterrupted(RuntimeError):
    """Raised by `stop_after_step`: the run stopped after saving its state."""

    def __init__(self, step: int) -> None:
        super().__init__(f"training stopped after step {step}; state saved")
        self.step = step


def _freeze(model: object, params: TrainingParams) -> None:
    if params.freeze_embeddings:
        for parameter in model.embeddings.parameters():
            parameter.requires_grad = False
    for layer in model.encoder.layer[: params.frozen_layers]:
        for parameter in layer.parameters():
            parameter.requires_grad = False


def _batch_order(count: int, params: TrainingParams, per_epoch: int) -> list[list[int]]:
    import torch

    generator = torch.Generator().manual_seed(params.seed)
    order = []
    for _ in range(params.epochs):
        permutation = torch.randperm(count, generator=generator).tolist()
        order += [permutation[b * params.batch_size:(b + 1) * params.batch_size]
                  for b in range(per_epoch)]
    return order


def _encode(model, tokenizer, texts: list[str], max_length: int, device: str,
            group: int | None = None):
    """Pooled embeddings; with `group`, in length-sorted groups each padded to its own longest.

    Passages vary (86 tokens on average, a batch padded to 128), so grouping them saves
    about a sixth of their encoding; short queries gain nothing from it.
    """
    import torch

    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
    size = group or len(texts)
    parts = []
    for first in range(0, len(order), size):
        batch = tokenizer.pad({"input_ids": [ids[i] for i in order[first:first + size]]},
                              return_tensors="pt").to(device)
        parts.append(_pool(model(**batch).last_hidden_state, batch["attention_mask"]))
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.tensor(order)] = torch.arange(len(order))
    return torch.cat(parts)[inverse.to(device)]


def _pool(hidden, attention_mask):
    """Mean over the real tokens, L2-normalised (sentence-transformers pooling), in fp32."""
    import torch

    hidden = hidden.float()
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1)


def _encode_passages(model, tokenizer, texts: list[str], params: TrainingParams, device: str):
    """Passages with gradients, or (the fast default) as fixed targets the queries learn to meet.

    Without gradients the passages need no autograd graph, so they are encoded in eval mode.
    """
    import torch

    if params.passage_gradients:
        return _encode(model, tokenizer, texts, params.max_length, device, GROUP)
    model.eval()
    try:
        with torch.no_grad():
            return _encode(model, tokenizer, texts, params.max_length, device, GROUP)
    finally:
        model.train()


def _save_state(path: Path, state: dict) -> None:
    import torch

    handle, staging = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(handle)
    torch.save(state, staging)
    os.replace(staging, path)


def _write_checkpoint(model, tokenizer, base: EncoderDirectory, checkpoints_dir: Path,
                      fingerprint: str, params: TrainingParams,
                      precision: str) -> EncoderDirectory:
    """Save safetensors + tokenizer + pooling config; the directory is named by its digest."""
    checkpoints_dir = Path(checkpoints_dir)
    checkpoints_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=checkpoints_dir))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        # Training leaves padding/truncation state on the fast tokenizer, and that state is
        # saved into tokenizer.json; a fresh copy keeps the checkpoint digest reproducible.
        type(tokenizer).from_pretrained(base.path, local_files_only=True).save_pretrained(
            staging)
        copy_sentence_transformers_files(base.path, staging)
        (staging / "plimsoll_training.json").write_text(json.dumps(
            {"base_digest": base.digest, "fingerprint": fingerprint,
             "params": params.as_dict(), "precision": precision}, indent=2, sort_keys=True))
        digest = EncoderDirectory(staging).digest
        final = checkpoints_dir / digest
        if final.exists():
            shutil.rmtree(staging)
        else:
            os.rename(staging, final)
        return EncoderDirectory.open(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
