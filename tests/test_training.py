import pytest

from plimsoll.common.errors import PlimsollError
from plimsoll.retrieval.encoder import EncoderDirectory
from plimsoll.training.finetune import Pair, TrainingInterrupted, TrainingParams, fine_tune
from plimsoll.training.pairs import pair_from_document

PAIRS = [Pair(q, p) for q, p in [
    ("Split a string on a regular expression.", "re.split returns the pieces between matches."),
    ("Remove common leading whitespace.", "textwrap.dedent removes indentation from lines."),
    ("Serialize an object to JSON text.", "json.dumps turns Python objects into a JSON str."),
    ("Quote a string for a shell command.", "shlex.quote escapes a string for the shell."),
    ("Sort items of an iterable.", "sorted returns a new list with the items in order."),
    ("Delete a directory tree.", "shutil.rmtree removes a directory and its contents."),
    ("Make a temporary directory.", "tempfile.mkdtemp creates a unique temporary folder."),
    ("Measure elapsed time precisely.", "time.perf_counter is a clock for benchmarking."),
]]
TINY = TrainingParams(batch_size=4, epochs=1, save_every=1, frozen_layers=4)


def test_pair_from_document_uses_the_lead_sentence():
    pair = pair_from_document("textwrap.dedent", "Remove any common leading whitespace from "
                              "every line in text. This can be used to make triple-quoted "
                              "strings line up with the left edge of the display.")
    assert pair.query == "Remove any common leading whitespace from every line in text."
    assert pair.passage.startswith("textwrap.dedent\nThis can be used")
    assert pair_from_document("t", "Too short.") is None
    heading = pair_from_document("t", "Title\n*****\n\nThe real first sentence is here now. "
                                 "And then the passage goes on for a number of words.")
    assert heading.query == "The real first sentence is here now."


def test_training_is_deterministic_and_resumes(tmp_path):
    base = EncoderDirectory.open(None)
    first = fine_tune(base, PAIRS, TINY, tmp_path / "w1", tmp_path / "c1")
    again = fine_tune(base, PAIRS, TINY, tmp_path / "w2", tmp_path / "c2")
    assert first.checkpoint.digest == again.checkpoint.digest  # same seed, same CPU: same bits
    assert first.checkpoint.digest != base.digest
    assert (first.checkpoint.path / "model.safetensors").is_file()
    assert (first.checkpoint.path / "tokenizer.json").is_file()
    assert first.checkpoint.path.name == first.checkpoint.digest  # content-addressed

    with pytest.raises(TrainingInterrupted):
        fine_tune(base, PAIRS, TINY, tmp_path / "w3", tmp_path / "c3", stop_after_step=1)
    resumed = fine_tune(base, PAIRS, TINY, tmp_path / "w3", tmp_path / "c3")
    assert resumed.resumed_from_step == 1
    assert resumed.checkpoint.digest == first.checkpoint.digest
    assert resumed.losses == first.losses


def test_too_few_pairs(tmp_path):
    with pytest.raises(PlimsollError, match="in-batch negatives need at least 2"):
        fine_tune(EncoderDirectory.open(None), PAIRS[:1], TINY, tmp_path, tmp_path)


def test_checkpoint_digest_does_not_depend_on_tokenizer_call_state(tmp_path):
    """A tokenizer used with different padding must not change the saved checkpoint."""
    from transformers import AutoTokenizer

    base = EncoderDirectory.open(None)
    first = fine_tune(base, PAIRS, TINY, tmp_path / "w1", tmp_path / "c1")
    tokenizer = AutoTokenizer.from_pretrained(base.path)
    tokenizer(["x"], padding="max_length", max_length=64)  # leaves state on the instance
    again = fine_tune(base, PAIRS, TINY, tmp_path / "w2", tmp_path / "c2")
    assert first.checkpoint.digest == again.checkpoint.digest
    import json

    saved = json.loads((first.checkpoint.path / "tokenizer.json").read_text())
    shipped = json.loads((base.path / "tokenizer.json").read_text())
    assert saved["padding"] == shipped["padding"]  # as shipped, not as last used


def test_the_passage_bank_holds_the_padded_batch_encodings_without_gradients():
    """The fast path (one encoding per passage per epoch, length-sorted batches, eval mode,
    no graph) changes no passage vector against encoding each batch padded."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from plimsoll.training.finetune import PassageBank, _encode

    base = EncoderDirectory.open(None)
    tokenizer = AutoTokenizer.from_pretrained(base.path)
    model = AutoModel.from_pretrained(base.path).train()
    pairs = [*PAIRS, Pair("q", "A much longer passage about the json module. " * 20)]
    bank = PassageBank(pairs, None)
    bank.refresh(model, tokenizer, TrainingParams(), "cpu", "fp32")
    assert model.training  # handed back in training mode for the query side
    texts = [p.passage for p in pairs]
    model.eval()
    with torch.no_grad():
        padded = _encode(model, tokenizer, texts, 128, "cpu")
    looked_up = bank.lookup(texts)
    assert not looked_up.requires_grad
    torch.testing.assert_close(looked_up, padded, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="does not fit"):
        bank.restore(looked_up[:2], "cpu")


def test_passage_gradients_is_a_training_choice(tmp_path):
    base = EncoderDirectory.open(None)
    fast = fine_tune(base, PAIRS, TINY, tmp_path / "w1", tmp_path / "c1")
    both = fine_tune(base, PAIRS, TrainingParams(**{**TINY.as_dict(), "passage_gradients": True}),
                     tmp_path / "w2", tmp_path / "c2")
    assert fast.fingerprint != both.fingerprint
    assert fast.checkpoint.digest not in (both.checkpoint.digest, base.digest)


def test_precision_is_checked_and_resolved(monkeypatch):
    import torch

    from plimsoll.training.finetune import resolve_precision

    with pytest.raises(PlimsollError, match="unknown precision 'fp8'") as caught:
        resolve_precision("fp8", "cpu")
    assert caught.value.field == "precision"
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("bf16", "cuda") == "bf16"
    assert resolve_precision("auto", "cuda") == "fp32"  # launch-bound at batch 16: fp32 wins
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert resolve_precision("auto", "cpu") == "fp32"  # emulated bf16 would be slower
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16"


def test_bf16_forward_passes_train_fp32_weights(tmp_path):
    """bf16 autocast is a training choice: its own fingerprint, fp32 weights, recorded."""
    import json

    from safetensors.torch import load_file

    base = EncoderDirectory.open(None)
    bf16 = fine_tune(base, PAIRS, TrainingParams(**{**TINY.as_dict(), "precision": "bf16"}),
                     tmp_path / "w1", tmp_path / "c1")
    fp32 = fine_tune(base, PAIRS, TrainingParams(**{**TINY.as_dict(), "precision": "fp32"}),
                     tmp_path / "w2", tmp_path / "c2")
    assert (bf16.precision, fp32.precision) == ("bf16", "fp32")
    assert bf16.fingerprint != fp32.fingerprint
    assert bf16.checkpoint.digest not in (fp32.checkpoint.digest, base.digest)
    assert all(abs(a - b) < 0.05 for a, b in zip(bf16.losses, fp32.losses, strict=True))
    weights = load_file(bf16.checkpoint.path / "model.safetensors")
    assert {str(tensor.dtype) for tensor in weights.values()} == {"torch.float32"}
    recorded = json.loads((bf16.checkpoint.path / "plimsoll_training.json").read_text())
    assert recorded["precision"] == "bf16"
    assert recorded["params"]["precision"] == "bf16"
