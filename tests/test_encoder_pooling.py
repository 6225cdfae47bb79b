"""One definition of pooling and device choice (plimsoll.retrieval.encoder), used by the
encoder that serves and by fine-tuning, so a model embeds the same way in both."""

import numpy as np
import pytest

from plimsoll.retrieval import encoder as encoder_module
from plimsoll.training import finetune

torch = pytest.importorskip("torch")


def test_fine_tuning_uses_the_encoders_pooling_and_device_choice():
    assert finetune.pool is encoder_module.pool
    assert finetune.pick_device is encoder_module.pick_device


def test_mean_pooling_ignores_padding_and_cls_takes_the_first_token():
    hidden = torch.tensor([[[1.0, 0.0], [3.0, 0.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    mean = encoder_module.pool(hidden, mask)
    assert torch.allclose(mean, torch.tensor([[1.0, 0.0]]))  # (2, 0), unit length
    cls = encoder_module.pool(torch.tensor([[[0.0, 2.0], [5.0, 5.0]]]), torch.tensor([[1, 1]]),
                              "cls")
    assert torch.allclose(cls, torch.tensor([[0.0, 1.0]]))
    # bf16 token states (autocast in fine-tuning) are pooled in fp32.
    assert encoder_module.pool(hidden.bfloat16(), mask).dtype == torch.float32


def test_pick_device_is_cuda_only_when_present(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert encoder_module.pick_device() == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert encoder_module.pick_device() == "cuda"


def test_training_and_serving_embed_a_text_alike(encoder):
    texts = ["How do I split a string on a regex?", "Roll back the champion.",
             "A much longer passage about textwrap.dedent, which removes common leading "
             "whitespace from every line of a block of text."]
    served = encoder.embed(texts)
    with torch.no_grad():
        trained = finetune._encode(encoder.model, encoder.tokenizer, texts,
                                   encoder.directory.max_length, encoder.device, group=2)
    np.testing.assert_allclose(served, trained.cpu().numpy(), atol=1e-5)


def test_an_encoder_is_named_by_its_model_card_title_else_its_folder(tmp_path):
    from plimsoll.retrieval.encoder import default_encoder_path, encoder_name

    assert encoder_name(default_encoder_path()) == "all-MiniLM-L6-v2"  # not "model"
    (tmp_path / "plain").mkdir()
    assert encoder_name(tmp_path / "plain") == "plain"  # no README
    carded = tmp_path / "carded"
    carded.mkdir()
    (carded / "README.md").write_text("---\ntags:\n- x\n# not a title: front matter\n---\n"
                                      "Intro.\n\n# my-encoder-v3\n")
    assert encoder_name(carded) == "my-encoder-v3"
    (carded / "README.md").write_bytes(b"\xff\xfe no title")
    assert encoder_name(carded) == "carded"
