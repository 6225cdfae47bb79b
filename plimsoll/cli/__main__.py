"""`python -m plimsoll.cli` runs the `plimsoll` command."""

from plimsoll.cli.main import main

raise SystemExit(main())
