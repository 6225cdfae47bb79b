"""Flags and output checks that several `plimsoll` subcommands share, written once."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from plimsoll.common.errors import PlimsollError

if TYPE_CHECKING:
    from plimsoll.common.settings import Settings

TRACKING_URI_HELP = ("MLflow tracking URI (default: $MLFLOW_TRACKING_URI or the embedded store "
                     "under PLIMSOLL_HOME)")


def add_debug(parser: argparse.ArgumentParser) -> None:
    """--debug on a subcommand, without overriding `plimsoll --debug` given before it."""
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="print the traceback of an unexpected error")


def check_json_destination(path: Path | None) -> None:
    """Refuse a --json file in a folder that does not exist, before any work is done."""
    if path is not None and not path.parent.is_dir():
        raise PlimsollError(f"the folder {path.parent} does not exist", file=path,
                            field="--json", fix="create the folder, or write elsewhere")


def write_json(path: Path, result: dict) -> None:
    """The --json result; a file that cannot be written is an error naming it."""
    try:
        path.write_text(json.dumps(result, indent=2, default=str))
    except OSError as exc:
        raise PlimsollError(f"cannot write the result ({exc.strerror or exc})", file=path,
                            field="--json", fix="write to a writable file") from None


def standalone(argv: list[str] | None, *, prog: str, label: str, description: str,
               add_arguments: Callable[[argparse.ArgumentParser], None],
               run: Callable[[argparse.Namespace, Settings], int]) -> int:
    """A subcommand run on its own (the tools/ shims): parse, run inside the error boundary."""
    from plimsoll.common.boundary import debug_requested, run_guarded
    from plimsoll.common.settings import Settings
    from plimsoll.release.registry import bound_mlflow_calls

    bound_mlflow_calls()  # this process's MLflow HTTP limits (MLflow reads only the env)
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    add_debug(parser)
    args = parser.parse_args(argv)
    return run_guarded(label, lambda: run(args, Settings.from_env(
        home=getattr(args, "home", None), tracking_uri=getattr(args, "tracking_uri", None))),
                       debug=debug_requested(argv))
