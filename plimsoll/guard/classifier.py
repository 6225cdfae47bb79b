"""A learned second opinion on injection: character and word n-grams, logistic regression.

The rules (rules/) say exactly what they caught, but miss phrasings nobody wrote a rule
for. The classifier scores the whole text instead: TF-IDF over character n-grams (robust
to typos and inflection) and word n-grams, then a logistic regression. It is trained by
`tools/train_guard_classifier.py` on the red-team set and the guard corpora (attacks) and
benign questions, passages and documentation chunks. What it learned is plain arrays (the
IDF weights and coefficients; hashing needs no vocabulary) in an .npz loaded without pickle,
so loading takes milliseconds and runs no stored code. Scoring needs numpy alone:
hashed_ngrams.py makes scikit-learn's hashed features without importing it (a second at
start-up); training (build_pipeline, save_classifier) uses scikit-learn itself. The model
card beside it says how the features are hashed, what it was trained on, and how it scored
out of fold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from plimsoll.common.errors import PlimsollError
from plimsoll.common.files import read_jsonl
from plimsoll.common.hashing import sha256_files

MODEL_PATH = Path(__file__).with_name("injection_model.npz")
CARD_PATH = MODEL_PATH.with_suffix(".json")
BLOCKS = ("chars", "words")
# Raw counts for the TF-IDF step (the card records analyzer, n-gram range and width).
# Scoring makes these features without scikit-learn (hashed_ngrams.py reproduces exactly
# these options and the defaults: lower case, the default token pattern, no accent
# stripping); change one here and it must change there.
HASHING = {"alternate_sign": False, "norm": None}


def build_pipeline():
    """The untrained model. Hashed n-grams: no vocabulary to store, a few MB on disk."""
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline

    def hashed(**options):
        return Pipeline([
            ("hash", HashingVectorizer(n_features=2**17, **HASHING, **options)),
            ("tfidf", TfidfTransformer(sublinear_tf=True))])

    features = FeatureUnion([("chars", hashed(analyzer="char_wb", ngram_range=(2, 5))),
                             ("words", hashed(ngram_range=(1, 2)))])
    model = LogisticRegression(C=10.0, solver="liblinear", class_weight="balanced")
    return Pipeline([("features", features), ("model", model)])


@dataclass(frozen=True)
class InjectionClassifier:
    """Probability that a text is an injection or exfiltration attempt.

    `threshold` flags on the classifier alone; `confirm` is the lower score a rule finding
    needs from the classifier to stand (a rule firing on a text the model finds plainly
    benign, such as documentation about attacks, is a mention, not an attack).
    """

    blocks: tuple  # (NgramHasher, idf weights) per feature block, in coef order
    coef: object
    intercept: float
    threshold: float
    confirm: float

    def score(self, text: str) -> float:
        """P(attack): sublinear TF-IDF per block, L2-normalised, then the logistic model."""
        import numpy as np

        from plimsoll.guard.hashed_ngrams import hashed_counts

        total, offset = self.intercept, 0
        hashers = tuple(hasher for hasher, _ in self.blocks)
        for (hasher, idf), (indices, counts) in zip(self.blocks, hashed_counts(text, hashers),
                                                    strict=True):
            if len(indices):
                weights = (np.log(counts) + 1.0) * idf[indices]
                weights /= np.sqrt(np.dot(weights, weights))
                total += float(np.dot(weights, self.coef[offset + indices]))
            offset += hasher.n_features
        return float(1.0 / (1.0 + np.exp(-total)))

    def scores(self, texts: list[str]) -> list[float]:
        """P(attack) for many texts."""
        return [self.score(text) for text in texts]


def save_classifier(pipeline, card: dict, path: Path = MODEL_PATH) -> None:
    """Write the fitted pipeline's arrays (.npz) and its card (.json, with the hashing)."""
    import numpy as np

    path = Path(path)
    features = dict(pipeline.named_steps["features"].transformer_list)
    model = pipeline.named_steps["model"]
    arrays = {"coef": model.coef_[0], "intercept": model.intercept_}
    hashing = {}
    for name in BLOCKS:
        hasher = features[name].named_steps["hash"]
        arrays[f"idf_{name}"] = features[name].named_steps["tfidf"].idf_
        hashing[name] = {"analyzer": hasher.analyzer, "ngram_range": list(hasher.ngram_range),
                         "n_features": hasher.n_features}
    staging = path.with_name(path.stem + ".tmp.npz")
    np.savez_compressed(staging, **arrays)
    staging.replace(path)
    path.with_suffix(".json").write_text(json.dumps({**card, "hashing": hashing}, indent=2,
                                                    sort_keys=True) + "\n", encoding="utf-8")


def classifier_digest(path: Path = MODEL_PATH) -> str:
    """One digest over the model's arrays and its card (recorded in each version's lineage)."""
    path = Path(path)
    return sha256_files(path.parent, [path.name, path.with_suffix(".json").name])


@lru_cache(maxsize=4)
def load_classifier(path: Path = MODEL_PATH) -> InjectionClassifier:
    """Load the shipped model (once per process); a missing or broken file is a clear error."""
    import numpy as np

    from plimsoll.guard.hashed_ngrams import NgramHasher

    path = Path(path)
    card_path = path.with_suffix(".json")
    if not path.is_file() or not card_path.is_file():
        raise PlimsollError("the guard's injection classifier is missing", file=path,
                            fix="run `python tools/train_guard_classifier.py` to train it")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
        with np.load(path, allow_pickle=False) as arrays:
            blocks = tuple(
                (NgramHasher(analyzer=card["hashing"][name]["analyzer"],
                             ngram_range=tuple(card["hashing"][name]["ngram_range"]),
                             n_features=int(card["hashing"][name]["n_features"])),
                 arrays[f"idf_{name}"].copy()) for name in BLOCKS)
            coef, intercept = arrays["coef"].copy(), float(arrays["intercept"][0])
        threshold, confirm = float(card["threshold"]), float(card["confirm"])
    except (KeyError, ValueError, OSError, json.JSONDecodeError) as exc:
        raise PlimsollError(f"the classifier or its card is unreadable ({exc})", file=path,
                            fix="retrain it with tools/train_guard_classifier.py") from None
    if coef.shape[0] != sum(hasher.n_features for hasher, _ in blocks):
        raise PlimsollError("the classifier's coefficients do not match its hashing",
                            file=path, fix="retrain it with tools/train_guard_classifier.py")
    return InjectionClassifier(blocks, coef, intercept, threshold, confirm)


def read_corpus(folder: Path) -> list[tuple[str, int]]:
    """(text, 1 for attack / 0 for benign) from a corpus folder's attacks/benign.jsonl."""
    rows = []
    for name, label in (("attacks.jsonl", 1), ("benign.jsonl", 0)):
        path = Path(folder) / name
        if not path.is_file():
            raise PlimsollError("corpus file not found", file=path,
                                fix="a guard corpus folder holds attacks.jsonl and benign.jsonl")
        for number, row in read_jsonl(path):
            text = row.get("text")
            if not isinstance(text, str) or not text.strip():
                raise PlimsollError("'text' is missing, empty or not a string", file=path,
                                    line=number, field="text",
                                    fix='write one {"text": ..., "category": ...} per line')
            rows.append((text, label))
    return rows
