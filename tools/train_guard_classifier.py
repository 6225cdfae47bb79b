#!/usr/bin/env python
"""Train the guard's injection classifier (plimsoll/guard/injection_model.npz).

Attacks: every attack of the red-team set (its planted passages too) and of the guard
corpora. Benign: the red-team benign controls, the corpora's benign questions and
passages, every documentation chunk of the reference slices, and every eval question.
The decision threshold is chosen on out-of-fold scores (5-fold cross-validation) as the
lowest that flags at most --max-benign-flagged of the benign examples; the model card
(injection_model.json) records it with the cross-validated catch rate, the training data
digest and the library versions. Deterministic: the same data gives the same model.

Usage: python tools/train_guard_classifier.py [--corpus DIR ...] [--out PATH]
Exit 2 on a malformed corpus row (file:line named).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DOC_SLICES = ("example_faq", "python_help_topics", "stdlib_docstrings")
EVALSETS = ("python_docs_ci.jsonl", "python_docs_nightly.jsonl")


def main(argv: list[str] | None = None) -> int:
    """Train, choose the threshold, write the model and its card."""
    from plimsoll.guard.classifier import MODEL_PATH

    parser = argparse.ArgumentParser(prog="tools/train_guard_classifier.py",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, action="append", default=None,
                        help="a guard corpus folder with attacks.jsonl and benign.jsonl "
                        "(repeatable; default: evalsets/guard_corpus)")
    parser.add_argument("--redteam", type=Path, default=REPO / "evalsets" / "redteam.jsonl")
    parser.add_argument("--max-benign-flagged", type=float, default=0.01,
                        help="share of benign examples the threshold may flag out of fold "
                        "(default: %(default)s)")
    parser.add_argument("--confirm", type=float, default=0.4,
                        help="score a rule finding needs from the classifier to stand "
                        "(default: %(default)s, chosen on a corpus the model had not seen)")
    parser.add_argument("--out", type=Path, default=MODEL_PATH,
                        help="model path; the card is written beside it as .json")
    args = parser.parse_args(argv)

    from plimsoll.common.errors import PlimsollError

    try:
        examples = _examples(args.corpus or [REPO / "evalsets" / "guard_corpus"], args.redteam)
    except PlimsollError as exc:
        print(f"train_guard_classifier: {exc.describe()}", file=sys.stderr)
        return 2
    card = train_and_save(examples, args.max_benign_flagged, args.confirm, args.out)
    print(f"trained on {card['attacks']} attacks and {card['benign']} benign examples "
          f"(data {card['data_digest'][:12]})")
    print(f"threshold {card['threshold']:.3f}: out of fold, {card['cv_attacks_caught']:.1%} of "
          f"attacks caught, {card['cv_benign_flagged']:.2%} of benign flagged")
    print(f"wrote {args.out} and {args.out.with_suffix('.json').name}")
    return 0


def sklearn_scorer(model):  # -> Callable[[str], float]; model: a loaded InjectionClassifier
    """The classifier's score through scikit-learn's own hashing: the reference it must equal.

    The shipped scorer reproduces HashingVectorizer in numpy (plimsoll/guard/hashed_ngrams.py)
    so that serving never imports scikit-learn; the tests and the guard benchmark compare the
    two with this.
    """
    import numpy as np
    from sklearn.feature_extraction.text import HashingVectorizer

    from plimsoll.guard.classifier import HASHING

    vectorisers = [(HashingVectorizer(analyzer=hasher.analyzer, n_features=hasher.n_features,
                                      ngram_range=hasher.ngram_range, **HASHING), idf)
                   for hasher, idf in model.blocks]

    def score(text: str) -> float:
        total, offset = model.intercept, 0
        for vectoriser, idf in vectorisers:
            counts = vectoriser.transform([text])
            if counts.nnz:
                weights = (np.log(counts.data) + 1.0) * idf[counts.indices]
                weights /= np.sqrt(np.dot(weights, weights))
                total += float(np.dot(weights, model.coef[offset + counts.indices]))
            offset += vectoriser.n_features
        return float(1.0 / (1.0 + np.exp(-total)))

    return score


def train_and_save(examples: list[tuple[str, int, str]], max_benign_flagged: float,
                   confirm: float, out: Path) -> dict:
    """Cross-validate for the threshold, fit on everything, save model and card."""
    import numpy as np
    import sklearn
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from plimsoll.common.hashing import sha256_json
    from plimsoll.guard.classifier import build_pipeline, save_classifier

    texts = [text for text, _, _ in examples]
    labels = np.array([label for _, label, _ in examples])
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=42)
    out_of_fold = cross_val_predict(build_pipeline(), texts, labels, cv=folds,
                                    method="predict_proba")[:, 1]
    benign_scores = np.sort(out_of_fold[labels == 0])
    allowed = int(max_benign_flagged * len(benign_scores))
    threshold = float(max(0.5, benign_scores[-(allowed + 1)] + 1e-6))
    pipeline = build_pipeline().fit(texts, labels)
    card = {
        "threshold": round(threshold, 6),
        "confirm": confirm,
        "attacks": int(labels.sum()),
        "benign": int((labels == 0).sum()),
        "sources": _counts(examples),
        "data_digest": sha256_json(sorted([text, label] for text, label, _ in examples)),
        "cv_attacks_caught": round(float((out_of_fold[labels == 1] >= threshold).mean()), 4),
        "cv_benign_flagged": round(float((out_of_fold[labels == 0] >= threshold).mean()), 4),
        "max_benign_flagged": max_benign_flagged,
        "scikit_learn": sklearn.__version__,
        "trained_by": "tools/train_guard_classifier.py",
    }
    save_classifier(pipeline, card, out)
    return card


def _counts(examples: list[tuple[str, int, str]]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for _, label, source in examples:
        entry = counts.setdefault(source, {"attacks": 0, "benign": 0})
        entry["attacks" if label else "benign"] += 1
    return counts


def _examples(corpora: list[Path], redteam: Path) -> list[tuple[str, int, str]]:
    from plimsoll.evaluation.redteam import load_redteam
    from plimsoll.guard.classifier import read_corpus

    examples = []
    for case in load_redteam(redteam).cases:
        attack = case.category != "benign"
        if case.passage:
            examples.append((case.passage, int(attack), "redteam"))
            examples.append((case.input, 0, "redteam"))
        else:
            examples.append((case.input, int(attack), "redteam"))
    for corpus in corpora:
        examples += [(text, label, corpus.name) for text, label in read_corpus(corpus)]
    examples += [(text, 0, "documentation") for text in _documentation_chunks()]
    examples += [(text, 0, "eval_questions") for text in _eval_questions()]
    seen, unique = set(), []
    for example in examples:
        if example[0] not in seen:
            seen.add(example[0])
            unique.append(example)
    return unique


def _documentation_chunks() -> list[str]:
    from plimsoll.datasets.manifests import load_manifest
    from plimsoll.datasets.slices import build_slice
    from plimsoll.retrieval.chunking import ChunkingParams, chunk_document

    chunks = []
    for name in DOC_SLICES:
        frame = build_slice(load_manifest(REPO / "data_manifests" / f"{name}.yaml")).frame
        for row in frame.to_dict("records"):
            if row["id"] is not None and row["text"]:
                chunks += [chunk.text for chunk in chunk_document(
                    row["id"], row["title"] or "", row["text"], name, ChunkingParams())]
    return chunks


def _eval_questions() -> list[str]:
    from plimsoll.evaluation.evalsets import load_evalset

    return [question.question for name in EVALSETS
            for question in load_evalset(REPO / "evalsets" / name).questions]


if __name__ == "__main__":
    sys.exit(main())
