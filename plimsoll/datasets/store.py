"""Versioned slice storage through DVC: publish, fetch, and pin exact versions."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from plimsoll.common.errors import StorageError
from plimsoll.datasets.slices import SliceTable, content_hash, read_slice, write_parquet

REMOTE_NAME = "plimsoll"
POINTER_SUFFIX = ".parquet.dvc"
PREVIOUS_SUFFIX = ".parquet.previous"
LOCK_TIMEOUT_S = 600
log = logging.getLogger(__name__)


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
    remote is content-addressed, so an earlier version is never overwritten. DVC is driven
    through its Python API, which sends no usage analytics (only the `dvc` command does);
    the repository's own config (core.analytics = false) turns them off for anyone who runs
    `dvc` in the workspace, so the store leaves the process environment alone.
    """

    def __init__(self, workspace: Path, remote_url: str) -> None:
        self.workspace = Path(workspace)
        self.remote_url = remote_url

    @property
    def slices_dir(self) -> Path:
        """Where published slice files live in the workspace."""
        return self.workspace / "slices"

    @contextmanager
    def _lock(self) -> Iterator[None]:
        from filelock import FileLock

        self.workspace.mkdir(parents=True, exist_ok=True)
        # DVC's own lock fails instead of waiting; runs of other partitions wait here, and
        # readers wait for a publish to finish rather than see its file before its pointer.
        with FileLock(str(self.workspace / ".plimsoll.lock"), timeout=LOCK_TIMEOUT_S):
            yield

    @contextmanager
    def _repo(self) -> Iterator[object]:
        with self._lock():
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
            self._finish_interrupted(table.manifest.name)
            for stale in self.slices_dir.glob("*.parquet.tmp"):
                stale.unlink(missing_ok=True)  # a killed write's; writers hold the lock
            previous = target.with_suffix(PREVIOUS_SUFFIX)
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
        """The slice version currently published under a name, checked against its pointer."""
        path = self.slices_dir / f"{name}.parquet"
        pointer = self.slices_dir / f"{name}{POINTER_SUFFIX}"
        if not pointer.is_file() or not path.is_file():
            raise StorageError(f"slice '{name}' has not been published yet", file=pointer,
                               fix=f"materialize dataset_slice partition '{name}' first")
        with self._lock():
            self._finish_interrupted(name)
            dvc_md5 = _pointer_md5(pointer)
            if _md5(path) != dvc_md5:
                raise StorageError(
                    "the slice file differs from the version its DVC pointer records (edited "
                    "by hand, or written by a publish that did not finish)", file=path,
                    field="md5", fix=f"re-materialize dataset_slice partition '{name}', or run "
                    f"`dvc checkout` in {self.workspace}")
            try:
                frame = read_slice(path)
            except Exception as exc:  # pyarrow raises several types for a damaged file
                raise StorageError(f"the published slice cannot be read ({exc})", file=path,
                                   fix=f"re-materialize dataset_slice partition '{name}'"
                                   ) from None
        return PublishedSlice(name=name, path=path, pointer=pointer, dvc_md5=dvc_md5,
                              content_hash=content_hash(frame), row_count=len(frame))

    def _finish_interrupted(self, name: str) -> None:
        """Put back the published file a killed publish replaced before DVC recorded it.

        Called with the lock held. The copy a publish keeps is the version the pointer
        records, so restoring it leaves exactly what DVC has; any other leftover is dropped.
        """
        path = self.slices_dir / f"{name}.parquet"
        previous = path.with_suffix(PREVIOUS_SUFFIX)
        pointer = self.slices_dir / f"{name}{POINTER_SUFFIX}"
        if not previous.is_file():
            return
        recorded = _pointer_md5(pointer) if pointer.is_file() else None
        if recorded and path.is_file() and _md5(path) != recorded and _md5(previous) == recorded:
            os.replace(previous, path)
            log.warning("restored the published version of slice '%s': a publish was "
                        "interrupted after writing %s", name, path)
        else:
            previous.unlink(missing_ok=True)

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
    try:
        document = yaml.safe_load(pointer.read_text(encoding="utf-8"))
        md5 = document["outs"][0]["md5"]
    except (OSError, UnicodeDecodeError, yaml.YAMLError, TypeError, KeyError, IndexError):
        md5 = None
    if not isinstance(md5, str) or not md5:
        raise StorageError("not a DVC pointer with an md5 (damaged or edited)", file=pointer,
                           field="outs.md5", fix="re-materialize the slice's dataset_slice "
                           "partition, which writes the pointer again")
    return md5


def _md5(path: Path) -> str:
    """DVC's identity of a file: the md5 of its bytes (not a security hash)."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
