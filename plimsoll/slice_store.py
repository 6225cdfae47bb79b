"""Versioned slice storage through DVC: publish, fetch, and pin exact versions."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from plimsoll.errors import StorageError
from plimsoll.slices import SliceTable, content_hash, read_slice, write_parquet

REMOTE_NAME = "plimsoll"
POINTER_SUFFIX = ".parquet.dvc"


@dataclass(frozen=True)
class PublishedSlice:
    """A slice version held by DVC: where it is, its DVC md5 and its content hash."""

    name: str
    path: Path
    pointer: Path
    dvc_md5: str
    content_hash: str
    row_count: int


class SliceStore:
    """A DVC repository (no git) whose outputs are the published slices.

    Publishing adds the slice's Parquet file to DVC and pushes it to the remote; the
    remote is content-addressed, so an earlier version is never overwritten.
    """

    def __init__(self, workspace: Path, remote_url: str) -> None:
        self.workspace = Path(workspace)
        self.remote_url = remote_url
        os.environ.setdefault("DVC_NO_ANALYTICS", "1")

    @property
    def slices_dir(self) -> Path:
        """Where published slice files live in the workspace."""
        return self.workspace / "slices"

    @contextmanager
    def _repo(self) -> Iterator[object]:
        from filelock import FileLock

        self.workspace.mkdir(parents=True, exist_ok=True)
        # DVC's own lock fails instead of waiting; runs of other partitions wait here.
        with FileLock(str(self.workspace / ".plimsoll.lock"), timeout=600):
            from dvc.repo import Repo

            if not (self.workspace / ".dvc").is_dir():
                init_logger = logging.getLogger("dvc.repo.init")
                level = init_logger.level
                init_logger.setLevel(logging.WARNING)  # DVC's "Initialized" banner
                try:
                    Repo.init(str(self.workspace), no_scm=True)
                finally:
                    init_logger.setLevel(level)
            repo = Repo(str(self.workspace))
            try:
                with repo.config.edit() as config:
                    config["core"]["remote"] = REMOTE_NAME
                    config["core"]["analytics"] = False
                    config["remote"][REMOTE_NAME] = {"url": self.remote_url}
                yield repo
            finally:
                repo.close()

    def publish(self, table: SliceTable) -> PublishedSlice:
        """Store a validated slice: write Parquet, `dvc add`, `dvc push`."""
        from dvc.exceptions import DvcException

        target = self.slices_dir / f"{table.manifest.name}.parquet"
        with self._repo() as repo:
            previous = target.with_suffix(".parquet.previous")
            if target.exists():
                shutil.copy2(target, previous)
            try:
                write_parquet(table.frame, target)
                repo.add([str(target)])
                repo.push(targets=[str(target)], remote=REMOTE_NAME)
            except (DvcException, OSError) as exc:
                if previous.exists():
                    os.replace(previous, target)
                    repo.add([str(target)])
                raise StorageError(f"DVC could not store the slice ({exc})",
                                   file=target, field="remote_url",
                                   fix=f"check that the DVC remote {self.remote_url} is "
                                   "reachable and writable") from exc
            finally:
                previous.unlink(missing_ok=True)
        return self.published(table.manifest.name)

    def published(self, name: str) -> PublishedSlice:
        """The slice version currently published under a name."""
        path = self.slices_dir / f"{name}.parquet"
        pointer = self.slices_dir / f"{name}{POINTER_SUFFIX}"
        if not pointer.is_file() or not path.is_file():
            raise StorageError(f"slice '{name}' has not been published yet", file=pointer,
                               fix=f"materialize dataset_slice partition '{name}' first")
        frame = read_slice(path)
        return PublishedSlice(name=name, path=path, pointer=pointer,
                              dvc_md5=_pointer_md5(pointer), content_hash=content_hash(frame),
                              row_count=len(frame))

    def pin(self, names: list[str], manifests_dir: Path) -> list[Path]:
        """Copy the DVC pointer files of the published versions next to the manifests."""
        written = []
        for name in names:
            published = self.published(name)
            destination = Path(manifests_dir) / published.pointer.name
            shutil.copyfile(published.pointer, destination)
            written.append(destination)
        return written


def _pointer_md5(pointer: Path) -> str:
    outs = (yaml.safe_load(pointer.read_text()) or {}).get("outs") or [{}]
    return str(outs[0].get("md5", ""))
