#!/usr/bin/env python
"""Lint prompt templates (prompts/*.md): exit 1 on findings, each with rule id and file:line.

Rules: PL001 front matter, PL002 undeclared variable, PL003 unused variable, PL004 trailing
whitespace, PL005 tab, PL006 CRLF, PL007 invisible character, PL008 confusable, PL009 line
length, PL010 secret (detect-secrets), PL011 personal data, PL012 renders with samples.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from plimsoll.serving.promptlint import RULES, lint_paths


def main(argv: list[str] | None = None) -> int:
    """Lint the given files or folders."""
    parser = argparse.ArgumentParser(prog="tools/promptlint.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", type=Path, help="template files or folders")
    parser.add_argument("--max-line-length", type=int, default=100)
    parser.add_argument("--json", type=Path, default=None, help="also write findings here")
    args = parser.parse_args(argv)
    try:
        files, findings = lint_paths(args.paths, args.max_line_length)
    except FileNotFoundError as missing:
        print(f"promptlint: {missing}: no such file or folder", file=sys.stderr)
        return 2
    for finding in findings:
        print(finding)
    if args.json:
        args.json.write_text(json.dumps({"files": [str(f) for f in files],
                                         "rules": RULES,
                                         "findings": [f.as_dict() for f in findings]},
                                        indent=2))
    verdict = "clean" if not findings else f"{len(findings)} finding(s)"
    print(f"promptlint: {len(files)} template(s), {verdict}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
