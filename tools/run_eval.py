#!/usr/bin/env python
"""`plimsoll eval` under the path CI and the README call: tools/run_eval.py --help for flags."""

import sys

from plimsoll.cli import evaluate


def main(argv: list[str] | None = None) -> int:
    """Run `plimsoll eval` with this file's name in usage and messages."""
    return evaluate.main(argv, prog="tools/run_eval.py", label="run_eval")


if __name__ == "__main__":
    sys.exit(main())
