"""Contrastive fine-tuning of an encoder on (query, passage) pairs with in-batch negatives."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from plimsoll.common.errors import PlimsollError
from plimsoll.common.hashing import sha256_json
from plimsoll.retrieval.encoder import (
    EncoderDirectory,
    copy_sentence_transformers_files,
    pick_device,
    pool,
)
from plimsoll.retrieval.snapshot import clean_stale_staging, staging_directory

if TYPE_CHECKING:
    from plimsoll.release.registry import ModelRegistry

STATE_FILE = "training_state.pt"
STATE_KEYS = frozenset({"model", "optimizer", "scheduler", "rng", "step", "losses", "cuda_rng"})
log = logging.getLogger(__name__)
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
    # What the run decided on its own, for people: always first how it began (from step 0,
    # resumed, or started over because the saved state was unreadable).
    notes: tuple[str, ...] = ()


StepCallback = Callable[[int, float, float], None]  # (step, loss, learning rate)


def training_fingerprint(base: EncoderDirectory, pairs: Sequence[Pair],
                         params: TrainingParams, precision: str) -> str:
    """What determines the checkpoint: base weights, data, hyperparameters, precision.

    The resolved precision is part of it, so a bf16 run never resumes an fp32 one.
    """
    return sha256_json({"base": base.digest, "pairs": sha256_json(
        [[p.query, p.passage] for p in pairs]), "params": params.as_dict(),
        "precision": precision})


# A training run logs its loss every step (seconds apart); one silent this long is dead,
# even when its Dagster run still reads "started" because its process was killed.
ABANDONED_AFTER_S = 3600
ASSET_TAG, DAGSTER_RUN_TAG, CLOSED_TAG = (
    "plimsoll.asset", "plimsoll.dagster_run_id", "plimsoll.closed_because")


def close_abandoned_runs(registry: ModelRegistry, experiment_id: str, asset: str,
                         dagster_run_id: str, owner_finished: Callable[[str], bool | None],
                         now_s: float | None = None) -> list[str]:
    """Close as FAILED the MLflow runs of `asset` left RUNNING by dead steps; say what was done.

    A run is dead when its Dagster run has finished (`owner_finished` is True), when it is
    an earlier attempt of this very step (a step runs once at a time in a Dagster run), or
    when it has logged nothing for ABANDONED_AFTER_S. A run whose Dagster run is in progress,
    or unknown here, and that logged recently is a live one elsewhere, and is left alone.
    """
    from plimsoll.release.registry import RegistryError

    now_ms = (time.time() if now_s is None else now_s) * 1000
    notes = []
    for run in registry.running_runs(experiment_id, ASSET_TAG, asset):
        run_id, owner = run.info.run_id, run.data.tags.get(DAGSTER_RUN_TAG, "")
        last_ms = max(run.info.start_time or 0, registry.last_logged_ms(run_id, "loss") or 0)
        idle_s = (now_ms - last_ms) / 1000
        if owner and owner == dagster_run_id:
            reason = f"an earlier attempt of this step (Dagster run {owner})"
        elif owner and owner_finished(owner):
            reason = f"its Dagster run {owner} has finished"
        elif idle_s > ABANDONED_AFTER_S:
            reason = f"nothing logged for {idle_s / 3600:.1f} h (Dagster run {owner or '?'})"
        else:
            continue
        try:
            registry.end_run(run_id, "FAILED", end_time_ms=int(last_ms), tags={
                CLOSED_TAG: f"{reason}; closed by Dagster run {dagster_run_id}"})
        except RegistryError as exc:  # e.g. no permission on another user's run: not ours
            notes.append(f"could not close abandoned MLflow run {run_id} ({reason}): "
                         f"{exc.problem}")
            continue
        notes.append(f"closed MLflow run {run_id} as FAILED: {reason}")
    return notes


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

    `stop_after_step` ends the run early after saving (used to test resumption). A saved
    state that cannot be read is moved aside and the run starts over; `notes` says which.
    """
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
    with _work_dir_lock(work_dir):
        return _fine_tune(base, pairs, params, work_dir, checkpoints_dir, on_step,
                          stop_after_step, device, precision, fingerprint)


def _fine_tune(base: EncoderDirectory, pairs: Sequence[Pair], params: TrainingParams,
               work_dir: Path, checkpoints_dir: Path, on_step: StepCallback | None,
               stop_after_step: int | None, device: str, precision: str,
               fingerprint: str) -> TrainingResult:
    """The training loop, with the work folder locked."""
    import torch
    from transformers import AutoModel, AutoTokenizer, get_linear_schedule_with_warmup

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
    state, begun = _saved_state(state_path, model, total_steps)
    log.info("fine-tune %s: %s", fingerprint[:12], begun)
    if state is not None:
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"])
            if device == "cuda" and state.get("cuda_rng") is not None:
                torch.cuda.set_rng_state_all(state["cuda_rng"])
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            # Half applied: the model may hold some saved weights, so starting over here
            # would not be a clean start.
            raise PlimsollError(f"the saved training state cannot be applied ({exc})",
                                file=state_path, fix="delete it to start this fine-tune over"
                                ) from None
        start_step, losses = state["step"], list(state["losses"])
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

    checkpoint, stored = _write_checkpoint(model, tokenizer, base, checkpoints_dir, fingerprint,
                                           params, precision)
    return TrainingResult(checkpoint=checkpoint, steps=total_steps,
                          resumed_from_step=resumed_from, losses=losses,
                          fingerprint=fingerprint, precision=precision,
                          notes=(begun, *stored))


@contextlib.contextmanager
def _work_dir_lock(work_dir: Path) -> Iterator[None]:
    """One fine-tune per fingerprint at a time; the next one resumes where it ended.

    Held, it also makes the work folder's leftover temporary saves safe to remove: they
    can only be from a run that was killed mid-save.
    """
    import fcntl

    with open(work_dir / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("another fine-tune with this fingerprint is running in %s; waiting "
                        "for it, then resuming from its last save", work_dir)
            fcntl.flock(handle, fcntl.LOCK_EX)
        for stale in work_dir.glob("*.tmp"):
            stale.unlink(missing_ok=True)
        yield


def _saved_state(path: Path, model: object, total_steps: int) -> tuple[dict | None, str]:
    """The saved state to resume from (None: start at step 0) and one line saying which.

    A state that cannot be read, or that does not fit this model and run, is moved aside
    (kept for inspection, never deleted) and the run starts over.
    """
    import torch

    if not path.exists():
        return None, "started from step 0 (no saved state)"
    try:
        # weights_only: the file is unpickled, and must not be able to run code. Loaded to
        # the CPU: the RNG states must stay CPU byte tensors, and load_state_dict copies
        # weights and optimizer moments onto the model's device.
        state = torch.load(path, map_location="cpu", weights_only=True)
        problem = _state_problem(state, model, total_steps)
    except Exception as exc:  # torch raises many types for a truncated or foreign file
        problem = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:160]}"
    if problem is None:
        return state, f"resumed from step {state['step']} of {total_steps} (saved in {path})"
    aside = path.with_name(f"{path.name}.unreadable-{time.strftime('%Y%m%dT%H%M%S')}")
    os.replace(path, aside)
    note = (f"the saved training state {path} is unreadable ({problem}); moved it to {aside} "
            "and started over from step 0")
    log.warning("%s", note)
    return None, note


def _state_problem(state: object, model: object, total_steps: int) -> str | None:
    """What is wrong with a loaded state, or None when it fits this model and run."""
    import torch

    if not isinstance(state, dict) or not {"model", "optimizer", "scheduler", "rng", "step",
                                           "losses"} <= set(state) <= STATE_KEYS:
        return "not a Plimsoll training state"
    step, losses = state["step"], state["losses"]
    if isinstance(step, bool) or not isinstance(step, int) or not 0 < step <= total_steps:
        return f"step {step!r} is outside 1..{total_steps}"
    if not isinstance(losses, list) or len(losses) != step:
        return f"{len(losses) if isinstance(losses, list) else 'no'} losses for {step} steps"
    if not isinstance(state["rng"], torch.Tensor) or not isinstance(state["model"], dict):
        return "no RNG state or model weights"
    expected = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    saved = {name: tuple(getattr(tensor, "shape", ())) for name, tensor in state["model"].items()}
    if saved != expected:
        return "its weights do not fit this model"
    return None


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
        parts.append(pool(model(**batch).last_hidden_state, batch["attention_mask"]))
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.tensor(order)] = torch.arange(len(order))
    return torch.cat(parts)[inverse.to(device)]


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
    """Write whole or not at all: a reader sees the previous save or this one, never part."""
    import torch

    handle, staging = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(state, stream)
            stream.flush()
            os.fsync(stream.fileno())  # on disk before the rename makes it the save
        os.replace(staging, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staging)


def _write_checkpoint(model, tokenizer, base: EncoderDirectory, checkpoints_dir: Path,
                      fingerprint: str, params: TrainingParams,
                      precision: str) -> tuple[EncoderDirectory, tuple[str, ...]]:
    """Save safetensors + tokenizer + pooling config; the directory is named by its digest.

    Also returns what a person should know: stale staging folders removed, or a damaged
    checkpoint found under this digest and moved aside.
    """
    checkpoints_dir = Path(checkpoints_dir)
    notes = []
    cleaned = clean_stale_staging(checkpoints_dir)
    if cleaned:
        notes.append(f"removed {cleaned} staging folder(s) left in {checkpoints_dir} by killed "
                     "runs")
    with staging_directory(checkpoints_dir) as staging:
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
        if final.exists() and not _is_checkpoint(final, digest):
            # The name promises content it no longer has; the fresh copy takes its place.
            aside = final.with_name(f"{digest}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
            os.replace(final, aside)
            notes.append(f"the checkpoint {final} did not match its digest; moved it to "
                         f"{aside} and stored this run's")
            log.warning("%s", notes[-1])
        if not final.exists():
            os.rename(staging, final)
        return EncoderDirectory.open(final), tuple(notes)


def _is_checkpoint(path: Path, digest: str) -> bool:
    from plimsoll.common.errors import EncoderError

    try:
        return EncoderDirectory.open(path).digest == digest
    except (EncoderError, OSError):
        return False
