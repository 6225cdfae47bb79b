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
from dataclasses import asdict, dataclass, field
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
    from plimsoll.training.validation import DevSet

STATE_FILE = "training_state.pt"
STATE_KEYS = frozenset({"model", "optimizer", "scheduler", "rng", "step", "losses", "cuda_rng",
                        "epoch_scores", "base_scores", "bank"})
BEST_FILE = "best_model.pt"  # the weights of the best epoch so far, for early stopping
log = logging.getLogger(__name__)
GROUP = 4  # texts per padded group: a batch is encoded in length-sorted groups
PRECISIONS = ("auto", "bf16", "fp32")


@dataclass(frozen=True)
class TrainingParams:
    """Hyperparameters; all of them are part of the training fingerprint."""

    # Chosen on the dev set (README, "Fine-tuning and eval"): at 5e-5 the model drifted from
    # the base on real-style questions within an epoch; 3 epochs is a ceiling that early
    # stopping rarely reaches.
    epochs: int = 3
    learning_rate: float = 2e-5
    batch_size: int = 32
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
    hard_negatives: bool = True  # the pairs' mined negatives join the in-batch ones
    patience: int = 1  # epochs without a better dev score before training stops
    selection_metric: str = "mrr"  # what the dev set is scored on to choose the epoch

    def as_dict(self) -> dict[str, object]:
        """Plain dict for MLflow params and lineage."""
        return asdict(self)


@dataclass(frozen=True)
class Pair:
    """A query, the passage that answers it, its document and a mined hard negative.

    `doc_id` tells in-batch duplicates apart: two queries on one document share a positive,
    and each must not be trained to push the other's passage away.
    """

    query: str
    passage: str
    doc_id: str = ""
    negative: str = ""  # a passage that looks relevant and is not ("" when none was mined)
    negative_doc_id: str = ""
    kind: str = ""  # which rule made the query (sentence, question, name)


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
    # Early stopping: the dev score after each epoch run, and the epoch kept (1-based; 0
    # when no dev set was given and the last epoch is kept).
    epoch_scores: tuple[dict[str, float], ...] = ()
    chosen_epoch: int = 0
    base_scores: dict[str, float] = field(default_factory=dict)  # the dev set before training

    @property
    def chosen_score(self) -> dict[str, float]:
        """The dev scores of the kept epoch ({} without a dev set)."""
        return dict(self.epoch_scores[self.chosen_epoch - 1]) if self.chosen_epoch else {}


StepCallback = Callable[[int, float, float], None]  # (step, loss, learning rate)
EpochCallback = Callable[[int, dict[str, float]], None]  # (epoch, dev scores)


def training_fingerprint(base: EncoderDirectory, pairs: Sequence[Pair],
                         params: TrainingParams, precision: str,
                         dev: DevSet | None = None) -> str:
    """What determines the checkpoint: base weights, data, hyperparameters, precision, dev set.

    The resolved precision is part of it, so a bf16 run never resumes an fp32 one; the dev
    set too, since it chooses the epoch that is kept.
    """
    return sha256_json({"base": base.digest, "pairs": sha256_json(
        [[p.query, p.passage, p.doc_id, p.negative, p.negative_doc_id] for p in pairs]),
        "params": params.as_dict(), "precision": precision,
        "dev": dev.digest if dev is not None else None})


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
              stop_after_step: int | None = None, dev: DevSet | None = None,
              on_epoch: EpochCallback | None = None) -> TrainingResult:
    """Fine-tune `base`; resume from work_dir's last saved step; write a hashed checkpoint.

    With a `dev` set, the model is scored on it after each epoch; training stops once
    `params.patience` epochs in a row have not beaten the best, and the checkpoint holds the
    best epoch's weights. `stop_after_step` ends the run early after saving (used to test
    resumption). A saved state that cannot be read is moved aside and the run starts over;
    `notes` says which.
    """
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()

    if len(pairs) < 2:
        raise PlimsollError(f"only {len(pairs)} training pairs; in-batch negatives need at "
                            "least 2", field="training_slices",
                            fix="add training slices or lower their filters")
    if params.selection_metric not in _selection_metrics():
        raise PlimsollError(f"unknown selection metric {params.selection_metric!r}",
                            field="selection_metric",
                            fix=f"use one of {', '.join(_selection_metrics())}")
    if params.patience < 1 or params.epochs < 1:
        raise PlimsollError(f"epochs {params.epochs} and patience {params.patience}",
                            field="patience", fix="give at least 1 epoch and a patience of 1")
    device = pick_device()
    precision = resolve_precision(params.precision, device)
    fingerprint = training_fingerprint(base, pairs, params, precision, dev)
    work_dir = Path(work_dir) / fingerprint[:16]
    work_dir.mkdir(parents=True, exist_ok=True)
    with _work_dir_lock(work_dir):
        return _fine_tune(base, pairs, params, work_dir, checkpoints_dir, on_step,
                          stop_after_step, device, precision, fingerprint, dev, on_epoch)


def _selection_metrics() -> tuple[str, ...]:
    from plimsoll.training.validation import SELECTION_METRICS

    return SELECTION_METRICS


def _fine_tune(base: EncoderDirectory, pairs: Sequence[Pair], params: TrainingParams,
               work_dir: Path, checkpoints_dir: Path, on_step: StepCallback | None,
               stop_after_step: int | None, device: str, precision: str,
               fingerprint: str, dev: DevSet | None,
               on_epoch: EpochCallback | None) -> TrainingResult:
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

    start_step, losses, epoch_scores, base_scores = 0, [], [], {}
    state_path, best_path = work_dir / STATE_FILE, work_dir / BEST_FILE
    state, begun = _saved_state(state_path, model, total_steps)
    log.info("fine-tune %s: %s", fingerprint[:12], begun)
    bank = None if params.passage_gradients else PassageBank(pairs, dev)
    if state is not None:
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"])
            if device == "cuda" and state.get("cuda_rng") is not None:
                torch.cuda.set_rng_state_all(state["cuda_rng"])
            if bank is not None:
                bank.restore(state["bank"], device)
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            # Half applied: the model may hold some saved weights, so starting over here
            # would not be a clean start.
            raise PlimsollError(f"the saved training state cannot be applied ({exc})",
                                file=state_path, fix="delete it to start this fine-tune over"
                                ) from None
        start_step, losses = state["step"], list(state["losses"])
        epoch_scores = [dict(score) for score in state.get("epoch_scores", [])]
        base_scores = dict(state.get("base_scores") or {})
    elif bank is not None:
        bank.refresh(model, tokenizer, params, device, precision)
    if dev is not None and not base_scores:
        base_scores = _dev_scores(model, tokenizer, dev, bank, device, params, precision)
    resumed_from = start_step
    stopped_early = _patience_spent(epoch_scores, params) if dev is not None else False

    def save(path: Path, done: int) -> None:
        _save_state(path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                           "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state(),
                           "step": done, "cuda_rng": torch.cuda.get_rng_state_all()
                           if device == "cuda" else None, "losses": losses,
                           "epoch_scores": epoch_scores, "base_scores": base_scores,
                           "bank": bank.vectors.cpu() if bank is not None else None})

    model.train()
    for step in range(start_step, total_steps):
        if stopped_early:
            break
        batch = [pairs[i] for i in order[step]]
        negatives = [p for p in batch if p.negative] if params.hard_negatives else []
        with torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16"):
            queries = _encode(model, tokenizer, [p.query for p in batch],
                              params.query_max_length, device)
            if bank is None:
                passages = _encode(model, tokenizer, [p.passage for p in batch]
                                   + [p.negative for p in negatives], params.max_length,
                                   device, GROUP)
            else:
                passages = bank.lookup([p.passage for p in batch]
                                       + [p.negative for p in negatives])
        scores = queries @ passages.T * params.scale
        scores = scores.masked_fill(_false_negatives(batch, negatives, device), float("-inf"))
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
        epoch_end = done % batches_per_epoch == 0
        if epoch_end and bank is not None and (done < total_steps or dev is not None):
            bank.refresh(model, tokenizer, params, device, precision)
        if epoch_end and dev is not None:
            epoch_scores.append(_dev_scores(model, tokenizer, dev, bank, device, params,
                                            precision))
            if _best_epoch(epoch_scores, params) == len(epoch_scores):
                _save_state(best_path, {"model": model.state_dict(),
                                        "epoch": len(epoch_scores)})
            if on_epoch:
                on_epoch(len(epoch_scores), epoch_scores[-1])
            stopped_early = _patience_spent(epoch_scores, params) and done < total_steps
        if (done % params.save_every == 0 or epoch_end or stopped_early
                or done in (total_steps, stop_after_step)):
            save(state_path, done)
        if done == stop_after_step:
            raise TrainingInterrupted(done)

    chosen, notes = 0, [begun]
    if dev is not None and epoch_scores:
        chosen = _best_epoch(epoch_scores, params)
        if chosen != len(epoch_scores):
            try:
                best = torch.load(best_path, map_location="cpu", weights_only=True)
            except Exception as exc:  # missing, truncated or foreign: many types
                raise PlimsollError(f"the best epoch's weights (epoch {chosen}) cannot be read "
                                    f"({type(exc).__name__})", file=best_path,
                                    fix="delete the work folder to train this run again"
                                    ) from None
            if not isinstance(best, dict) or best.get("epoch") != chosen:
                raise PlimsollError(f"the saved best weights are not those of epoch {chosen}",
                                    file=best_path,
                                    fix="delete the work folder to train this run again")
            model.load_state_dict(best["model"])
        metric = params.selection_metric
        notes.append(f"dev set {dev.name}: {metric} {base_scores.get(metric, 0.0):.3f} before "
                     "training, then by epoch "
                     + ", ".join(f"{s.get(metric, 0.0):.3f}" for s in epoch_scores)
                     + f"; kept epoch {chosen}"
                     + (f" (stopped early after epoch {len(epoch_scores)})"
                        if len(epoch_scores) < params.epochs else ""))
    selection = {"dev_set": dev.name, "dev_set_hash": dev.eval_set_hash,
                 "metric": params.selection_metric, "epoch_scores": epoch_scores,
                 "base_scores": base_scores, "questions": len(dev.questions),
                 "chosen_epoch": chosen} if dev is not None else None
    checkpoint, stored = _write_checkpoint(model, tokenizer, base, checkpoints_dir, fingerprint,
                                           params, precision, selection)
    return TrainingResult(checkpoint=checkpoint, steps=len(losses),
                          resumed_from_step=resumed_from, losses=losses,
                          fingerprint=fingerprint, precision=precision,
                          notes=(*notes, *stored), epoch_scores=tuple(epoch_scores),
                          chosen_epoch=chosen, base_scores=base_scores)


def _dev_scores(model, tokenizer, dev: DevSet, bank: PassageBank | None, device: str,
                params: TrainingParams, precision: str) -> dict[str, float]:
    """The dev set's scores of the model as it is now (the bank holds its passages)."""
    import torch

    from plimsoll.training.validation import score_vectors

    model.eval()
    try:
        with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16,
                                              enabled=precision == "bf16"):
            questions = _encode_many(model, tokenizer, list(dev.questions),
                                     params.query_max_length, device)
            docs = (bank.lookup(list(dev.doc_texts)) if bank is not None else _encode_many(
                model, tokenizer, list(dev.doc_texts), params.max_length, device))
    finally:
        model.train()
    return score_vectors(dev, docs, questions)


def _encode_many(model, tokenizer, texts: list[str], max_length: int, device: str,
                 batch_size: int = 32):
    """Pooled embeddings of many texts without gradients: length-sorted batches of 32."""
    import torch

    lengths = [len(ids) for ids in tokenizer(texts, truncation=True,
                                             max_length=max_length)["input_ids"]]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    output = None
    for first in range(0, len(order), batch_size):
        rows = order[first:first + batch_size]
        part = _encode(model, tokenizer, [texts[i] for i in rows], max_length, device)
        if output is None:
            output = torch.empty(len(texts), part.shape[1], device=device)
        output[torch.tensor(rows, device=device)] = part
    return output


class PassageBank:
    """Every distinct passage of the pairs and dev set, encoded as the model is at epoch start.

    The passages are the positives, the negatives and the dev set's documents.

    Passages are targets without gradients (`passage_gradients=False`), so a step needs
    only their vectors: each is encoded once per epoch instead of once per use (each
    document is the positive of up to three queries and the negative of others), and the
    epoch's end refresh serves the dev score too.
    """

    def __init__(self, pairs: Sequence[Pair], dev: DevSet | None) -> None:
        texts = [p.passage for p in pairs] + [p.negative for p in pairs if p.negative]
        texts += list(dev.doc_texts) if dev is not None else []
        self.rows = {text: row for row, text in enumerate(dict.fromkeys(texts))}
        self.texts = list(self.rows)
        self.vectors = None

    def refresh(self, model, tokenizer, params: TrainingParams, device: str,
                precision: str) -> None:
        """Encode every passage with the model's current weights (eval mode, no gradients)."""
        import torch

        model.eval()
        try:
            with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16,
                                                  enabled=precision == "bf16"):
                self.vectors = _encode_many(model, tokenizer, self.texts, params.max_length,
                                            device)
        finally:
            model.train()

    def restore(self, vectors, device: str) -> None:
        """The bank of a saved state (a resumed run continues with the same targets)."""
        if vectors is None or vectors.shape[0] != len(self.texts):
            raise ValueError("the saved passage bank does not fit these pairs")
        self.vectors = vectors.to(device)

    def lookup(self, texts: Sequence[str]):
        """The vectors of these passages (each must be in the bank)."""
        import torch

        rows = torch.tensor([self.rows[text] for text in texts], device=self.vectors.device)
        return self.vectors[rows]


def _best_epoch(epoch_scores: Sequence[dict[str, float]], params: TrainingParams) -> int:
    """1-based epoch with the best selection score; the earliest among equals."""
    values = [score.get(params.selection_metric, 0.0) for score in epoch_scores]
    return values.index(max(values)) + 1


def _patience_spent(epoch_scores: Sequence[dict[str, float]], params: TrainingParams) -> bool:
    return bool(epoch_scores) and len(epoch_scores) - _best_epoch(epoch_scores,
                                                                  params) >= params.patience


def _false_negatives(batch: Sequence[Pair], negatives: Sequence[Pair], device: str):
    """Where a query's row would push away a passage of its own document: masked out.

    Several queries come from one document, so a batch can hold its passage twice, and a
    mined negative of one query can be another's document. The diagonal stays.
    """
    import torch

    columns = [p.doc_id for p in batch] + [p.negative_doc_id for p in negatives]
    mask = torch.tensor([[bool(q.doc_id) and q.doc_id == doc and i != j
                          for j, doc in enumerate(columns)] for i, q in enumerate(batch)],
                        dtype=torch.bool)
    return mask.to(device)


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
                      fingerprint: str, params: TrainingParams, precision: str,
                      selection: dict | None = None
                      ) -> tuple[EncoderDirectory, tuple[str, ...]]:
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
             "params": params.as_dict(), "precision": precision,
             "selection": selection}, indent=2, sort_keys=True))
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
