import pytest

from plimsoll.encoder import EncoderDirectory
from plimsoll.errors import PlimsollError
from plimsoll.training import Pair, TrainingInterrupted, TrainingParams, fine_tune
from plimsoll.training_pairs import pair_from_document

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
