"""The one error boundary of every command: exit codes and messages a person can act on.

Exit 0: done. Exit 1: a check ran and failed (a gate, a verification, a guard finding).
Exit 2: bad input or an unreachable store; the message names the file, field and fix.
Exit 3: an unexpected error; the message says what was being done and how to see the
traceback (`--debug` or PLIMSOLL_DEBUG=1).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import traceback
from collections.abc import Callable, Iterator

from plimsoll.common.errors import PlimsollError

EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT, EXIT_UNEXPECTED = 0, 1, 2, 3


@contextlib.contextmanager
def doing(activity: str) -> Iterator[None]:
    """Name what the command is doing, so an unexpected error can say so (innermost wins)."""
    try:
        yield
    except Exception as exc:
        if not hasattr(exc, "plimsoll_doing"):
            with contextlib.suppress(AttributeError):
                exc.plimsoll_doing = activity
        raise


def debug_requested(argv: list[str] | None) -> bool:
    """--debug on the command line, or PLIMSOLL_DEBUG=1."""
    args = sys.argv[1:] if argv is None else argv
    return "--debug" in args or os.environ.get("PLIMSOLL_DEBUG", "") not in ("", "0")


def run_guarded(prog: str, body: Callable[[], int], *, debug: bool = False) -> int:
    """Run a command body; turn every failure into one message and the right exit code."""
    try:
        return body()
    except PlimsollError as exc:
        if debug:
            traceback.print_exc()
        print(f"{prog}: {exc.describe()}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`); nothing left to say to it.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return EXIT_OK
    except OSError as exc:
        if exc.filename is None or exc.errno not in _FIXABLE:
            return _unexpected(prog, exc, debug)
        if debug:
            traceback.print_exc()
        print(f"{prog}: {exc.filename}: {exc.strerror}\n  fix: {_FIXABLE[exc.errno]}",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # the boundary: anything else is a bug or an environment fault
        return _unexpected(prog, exc, debug)


# Faults of the machine a person fixes there, not bugs: said plainly, exit 2.
_FIXABLE = {
    errno.EACCES: "make it readable and writable for this user, or point PLIMSOLL_HOME "
                  "(--home) elsewhere",
    errno.EPERM: "make it writable for this user, or point PLIMSOLL_HOME (--home) elsewhere",
    errno.EROFS: "the file system is read-only: point PLIMSOLL_HOME (--home) at a writable "
                 "folder",
    errno.ENOSPC: "free some disk space and rerun",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder: check the path",
    errno.EISDIR: "the path is a folder: pass a file",
}


def _unexpected(prog: str, exc: BaseException, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    activity = getattr(exc, "plimsoll_doing", "running the command")
    first = (str(exc).splitlines() or [""])[0][:300]
    hint = ("the traceback is above" if debug else
            "rerun with --debug (or PLIMSOLL_DEBUG=1) for the traceback")
    print(f"{prog}: unexpected error while {activity}: {type(exc).__name__}: {first}\n"
          f"  fix: {hint}", file=sys.stderr)
    return EXIT_UNEXPECTED
