"""`plimsoll promptlint` (and tools/promptlint.py): lint prompt templates, findings at file:line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DESCRIPTION = """\
Lint prompt templates (prompts/*.md): exit 1 on findings, each with rule id and file:line.

Rules: PL001 front matter, PL002 undeclared variable, PL003 unused variable, PL004 trailing
whitespace, PL005 tab, PL006 CRLF, PL007 invisible character, PL008 confusable, PL009 line
length, PL010 secret (detect-secrets), PL011 personal data, PL012 renders with samples.
"""
HELP = "lint prompt templates (rules PL001-PL012)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `plimsoll promptlint`, as tools/promptlint.py has them."""
    parser.add_argument("paths", nargs="+", type=Path, help="template files or folders")
    parser.add_argument("--max-line-length", type=int, default=100)
    parser.add_argument("--json", type=Path, default=None, help="also write findings here")


def main(argv: list[str] | None = None, prog: str = "plimsoll promptlint") -> int:
    """The command on its own (tools/promptlint.py)."""
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Lint the given files or folders: 0 clean, 1 findings, 2 a path that does not exist."""
    from plimsoll.serving.promptlint import RULES, lint_paths

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
