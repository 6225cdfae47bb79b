"""Where a run came from: git commit and container image digest."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def git_commit(repo_root: Path) -> str:
    """$PLIMSOLL_GIT_COMMIT (set in images), else `git rev-parse HEAD`, else 'unknown'."""
    if os.environ.get("PLIMSOLL_GIT_COMMIT"):
        return os.environ["PLIMSOLL_GIT_COMMIT"]
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_root, capture_output=True,
                              text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = done.stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                           cwd=repo_root, capture_output=True, text=True, timeout=10).stdout
    return f"{commit}-dirty" if dirty.strip() else commit


def container_image_digest() -> str:
    """$PLIMSOLL_IMAGE_DIGEST (the image the pod runs), or 'local' outside a container."""
    return os.environ.get("PLIMSOLL_IMAGE_DIGEST", "local")
