#!/usr/bin/env python
"""`plimsoll promptlint` under the path CI and the README call: tools/promptlint.py --help."""

import sys

from plimsoll.cli import promptlint


def main(argv: list[str] | None = None) -> int:
    """Run `plimsoll promptlint` with this file's name in usage."""
    return promptlint.main(argv, prog="tools/promptlint.py")


if __name__ == "__main__":
    sys.exit(main())
