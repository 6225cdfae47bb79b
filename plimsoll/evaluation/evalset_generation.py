"""Generate the larger nightly eval set from the reference corpus (deterministic).

`python -m plimsoll.evaluation.evalset_generation --out evalsets/python_docs_nightly.jsonl`
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

TEMPLATES = ("What does {name} do?", "How do I use {name}?", "Explain {name} in Python.",
             "When should I call {name}?")
UNANSWERABLE = (
    "How do I center a div with CSS grid?", "What is the capital of Australia?",
    "How many grams of flour go into a baguette?", "Who won the 2018 football World Cup?",
    "How do I train a dog to sit?", "What is the best JavaScript bundler?",
    "How do I install numpy on Windows?", "What does pandas.DataFrame.merge do?",
    "How do I configure a Django middleware?", "What is the exchange rate of yen to euro?",
    "How do I replace a car tyre?", "Which React hook fetches data?",
    "How tall is Mount Everest?", "What is a good sourdough starter ratio?",
    "How do I set up Kubernetes ingress with nginx?", "What is the PyTorch DataLoader for?",
    "How do I write a Rust trait?", "Who painted the Mona Lisa?",
    "How do I deploy a FastAPI app?", "What is TensorFlow's Keras API?",
)


def generate(frames: dict[str, object], per_template_every: int = 3) -> list[dict[str, object]]:
    """Questions naming a function, class or topic, with that document as the gold answer."""
    questions: list[dict[str, object]] = []
    stdlib = frames["stdlib_docstrings"]
    names = sorted(i for i in stdlib["id"] if i.count(".") >= 1)
    for index, doc_id in enumerate(names[::per_template_every]):
        name = doc_id.removeprefix("stdlib:")
        questions.append({"question": TEMPLATES[index % len(TEMPLATES)].format(name=name),
                          "answerable": True, "gold_doc_ids": [doc_id]})
    for doc_id in sorted(frames["python_help_topics"]["id"]):
        topic = doc_id.removeprefix("pydoc:").replace("-", " ")
        questions.append({"question": f"What does the Python reference say about {topic}?",
                          "answerable": True, "gold_doc_ids": [doc_id]})
    for question in UNANSWERABLE:
        questions.append({"question": question, "answerable": False, "gold_doc_ids": []})
    return [{"qid": f"n{number:04d}", **q, "answer_hint": ""}
            for number, q in enumerate(questions, start=1)]


def main(argv: list[str] | None = None) -> int:
    """Write the nightly set from the manifests in data_manifests/."""
    from plimsoll.datasets.manifests import load_manifest
    from plimsoll.datasets.slices import build_slice

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifests", type=Path, default=Path("data_manifests"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    frames = {name: build_slice(load_manifest(args.manifests / f"{name}.yaml")).frame
              for name in ("stdlib_docstrings", "python_help_topics")}
    rows = generate(frames)
    args.out.write_text("".join(json.dumps(row) + "\n" for row in rows))
    print(f"wrote {len(rows)} questions to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
