#!/usr/bin/env python
"""`plimsoll redteam` under the path CI and the README call: tools/threat_checks.py --help."""

import sys

from plimsoll.cli import redteam


def main(argv: list[str] | None = None) -> int:
    """Run `plimsoll redteam` with this file's name in usage and messages."""
    return redteam.main(argv, prog="tools/threat_checks.py", label="threat_checks")


if __name__ == "__main__":
    sys.exit(main())
