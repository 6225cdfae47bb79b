"""Where the project's own files are (policies, manifests, eval sets, prompts), from anywhere."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

PROJECT_ENV = "PLIMSOLL_PROJECT_DIR"
# A folder is a Plimsoll project when it holds the promotion policy.
MARKER = Path("policies") / "slos.yaml"


def project_dir(env: Mapping[str, str] | None = None) -> Path:
    """The project folder: $PLIMSOLL_PROJECT_DIR, else found from here.

    Else the nearest folder up from the working directory that holds policies/slos.yaml,
    else the checkout this package was installed from, else the working directory. So
    `plimsoll rollback` finds the same policy from any working directory, and an installed
    (non-editable) package finds the project files when pointed at them.
    """
    configured = (os.environ if env is None else env).get(PROJECT_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / MARKER).is_file():
            return folder
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / MARKER).is_file():
        return checkout
    return here


def project_path(relative: str | os.PathLike[str], env: Mapping[str, str] | None = None
                 ) -> Path:
    """A project file: absolute paths stay as given, relative ones resolve in project_dir()."""
    path = Path(relative).expanduser()
    return path if path.is_absolute() else project_dir(env) / path
