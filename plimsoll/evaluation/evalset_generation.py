"""Generate the larger nightly eval set from the reference corpus (deterministic).

`plimsoll evalset generate --out evalsets/python_docs_nightly.jsonl` (or
`python -m plimsoll.evaluation.evalset_generation --out ...`)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from plimsoll.common.settings import Settings

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


def write_nightly_set(manifests: Path, out: Path) -> int:
    """Build the reference slices from their manifests and write the set; the question count."""
    from plimsoll.datasets.manifests import load_manifest
    from plimsoll.datasets.slices import build_slice

    frames = {name: build_slice(load_manifest(manifests / f"{name}.yaml")).frame
              for name in ("stdlib_docstrings", "python_help_topics")}
    rows = generate(frames)
    out.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return len(rows)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `plimsoll evalset generate` and of `python -m` on this module."""
    parser.add_argument("--manifests", type=Path, default=None,
                        help="folder of slice manifests (default: $PLIMSOLL_MANIFESTS, else "
                        "the project's data_manifests/)")
    parser.add_argument("--out", type=Path, required=True, help="the eval set file to write")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Write the set; print how many questions went where."""
    count = write_nightly_set(args.manifests or settings.manifests, args.out)
    print(f"wrote {count} questions to {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Write the nightly set from the manifests in data_manifests/."""
    from plimsoll.common.boundary import debug_requested, run_guarded

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run_guarded("evalset_generation", lambda: run(args, Settings.from_env()),
                       debug=debug_requested(argv))


if __name__ == "__main__":
    sys.exit(main())
