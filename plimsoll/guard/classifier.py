"""A learned second opinion on injection: character and word n-grams, logistic regression.

The rules (rules.py) say exactly what they caught, but miss phrasings nobody wrote a rule
for. The classifier scores the whole text instead: TF-IDF over character n-grams (robust
to typos and inflection) and word n-grams, then a logistic regression. It is trained by
`tools/train_guard_classifier.py` on the red-team set and the guard corpora (attacks) and
benign questions, passages and documentation chunks, and stored with skops (no pickle: only
the scikit-learn types listed in TRUSTED_TYPES can load). The model card beside it says what
it was trained on, with which libraries, and how it scored on corpora it did not see.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from plimsoll.errors import PlimsollError

MODEL_PATH = Path(__file__).with_name("injection_model.skops")
CARD_PATH = MODEL_PATH.with_suffix(".json")
TRUSTED_TYPES = (
    "collections.defaultdict",
    "numpy.dtype",
    "numpy.float64",
    "numpy.ndarray",
    "scipy.sparse._csr.csr_matrix",
    "sklearn.feature_extraction.text.TfidfTransformer",
    "sklearn.feature_extraction.text.TfidfVectorizer",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.pipeline.FeatureUnion",
    "sklearn.pipeline.Pipeline",
)


def build_pipeline():
    """The untrained model. Hashed n-grams: no vocabulary to store, a few MB on disk."""
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline

    def hashed(**options):
        return Pipeline([
            ("hash", HashingVectorizer(n_features=2**17, alternate_sign=False, norm=None,
                                       **options)),
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

    pipeline: object
    threshold: float
    confirm: float

    def score(self, text: str) -> float:
        """P(attack) for one text: the pipeline's arithmetic without its per-call overhead."""
        import numpy as np

        features = self.pipeline.named_steps["features"]
        model = self.pipeline.named_steps["model"]
        coef = model.coef_[0]
        total, offset = float(model.intercept_[0]), 0
        for _, block in features.transformer_list:
            hasher, tfidf = block.named_steps["hash"], block.named_steps["tfidf"]
            counts = hasher.transform([text])
            if counts.nnz:
                weights = (np.log(counts.data) + 1.0) * tfidf.idf_[counts.indices]
                weights /= np.sqrt(np.dot(weights, weights))
                total += float(np.dot(weights, coef[offset + counts.indices]))
            offset += hasher.n_features
        return 1.0 / (1.0 + np.exp(-total))

    def scores(self, texts: list[str]) -> list[float]:
        """P(attack) for many texts at once (the pipeline itself)."""
        return [float(p) for p in self.pipeline.predict_proba(texts)[:, 1]] if texts else []


def save_classifier(pipeline, card: dict, path: Path = MODEL_PATH) -> None:
    """Write the model with skops and its card as JSON, refusing types it could not load."""
    import skops.io as sio

    path = Path(path)
    staging = path.with_suffix(".skops.tmp")
    sio.dump(pipeline, staging)
    untrusted = set(sio.get_untrusted_types(file=staging)) - set(TRUSTED_TYPES)
    if untrusted:
        staging.unlink()
        raise PlimsollError(f"the model holds types the loader does not trust: "
                            f"{sorted(untrusted)}", file=path,
                            fix="add them to TRUSTED_TYPES in plimsoll/guard/classifier.py "
                            "after checking they are plain scikit-learn/numpy types")
    staging.replace(path)
    path.with_suffix(".json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n",
                                         encoding="utf-8")


@lru_cache(maxsize=4)
def load_classifier(path: Path = MODEL_PATH) -> InjectionClassifier:
    """Load the shipped model (once per process); a missing or foreign file is a clear error."""
    import skops.io as sio

    path = Path(path)
    card_path = path.with_suffix(".json")
    if not path.is_file() or not card_path.is_file():
        raise PlimsollError("the guard's injection classifier is missing", file=path,
                            fix="run `python tools/train_guard_classifier.py` to train it")
    untrusted = set(sio.get_untrusted_types(file=path)) - set(TRUSTED_TYPES)
    if untrusted:
        raise PlimsollError(f"the classifier file holds untrusted types {sorted(untrusted)}",
                            file=path, fix="retrain it with tools/train_guard_classifier.py")
    card = json.loads(card_path.read_text(encoding="utf-8"))
    return InjectionClassifier(sio.load(path, trusted=list(TRUSTED_TYPES)),
                               float(card["threshold"]), float(card["confirm"]))


def read_corpus(folder: Path) -> list[tuple[str, int]]:
    """(text, 1 for attack / 0 for benign) from a corpus folder's attacks/benign.jsonl."""
    rows = []
    for name, label in (("attacks.jsonl", 1), ("benign.jsonl", 0)):
        path = Path(folder) / name
        if not path.is_file():
            raise PlimsollError("corpus file not found", file=path,
                                fix="a guard corpus folder holds attacks.jsonl and benign.jsonl")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                text = json.loads(line)["text"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise PlimsollError("not a JSON object with a 'text' field",
                                    file=f"{path}:{number}",
                                    fix='write one {"text": ..., "category": ...} per line'
                                    ) from None
            if not isinstance(text, str) or not text.strip():
                raise PlimsollError("'text' is empty or not a string", file=f"{path}:{number}",
                                    field="text", fix="give the example's text")
            rows.append((text, label))
    return rows
