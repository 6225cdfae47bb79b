"""Model bundles for the gateway: fetched once per version, checked, cached on disk, opened warm.

A version's files are downloaded into PLIMSOLL_HOME/serving/bundles/<model>/v<N>/ through a
staging folder renamed into place, so a killed download never looks complete, and checked
against the artifact digest registration recorded (the lineage tag `artifacts_digest`), on
download and again on every open: a file that went missing or was edited is refused, not
served. Opening one answers a probe question before it counts as loaded.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from plimsoll.common.errors import PlimsollError
from plimsoll.common.hashing import sha256_json
from plimsoll.release.registry import LINEAGE_PREFIX
from plimsoll.serving.answerer import MODES, Answerer

PROBE_QUESTION = "How do I read a file line by line?"
STALE_STAGING_S = 3600  # a staging folder older than this is a killed download's


class BundleError(PlimsollError):
    """A model bundle cannot be fetched, verified or opened."""


@dataclass(frozen=True)
class LoadedBundle:
    """One version, open and warm: an answerer per mode and what it serves by."""

    model_name: str
    version: str
    directory: Path
    answerers: dict[str, Answerer]
    provenance: dict[str, str]
    slices: dict[str, str]
    built_at: datetime | None
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    load_seconds: float = 0.0
    cache_hit: bool = False  # its files were already in the disk cache, verified

    def answerer(self, mode: str) -> Answerer:
        """The answerer of a mode (answer, facts)."""
        return self.answerers[mode]


def artifacts_digest(model_dir: Path) -> str:
    """The digest registration records over a model directory's artifacts/."""
    from plimsoll.release.registry import artifact_hashes

    return sha256_json(artifact_hashes(Path(model_dir) / "artifacts"))


class BundleCache:
    """Versions of one registered model on local disk, fetched through the registry."""

    def __init__(self, root: Path, tracking_uri: str, model_name: str) -> None:
        self.root = Path(root)
        self.tracking_uri = tracking_uri
        self.model_name = model_name

    def folder(self, version: str) -> Path:
        """Where a version's files live once fetched."""
        return self.root / self.model_name / f"v{version}"

    def open(self, version: str, tags: dict[str, str]) -> LoadedBundle:
        """Fetch (unless cached), verify and open one version; BundleError says what failed."""
        started = time.perf_counter()
        expected = tags.get(LINEAGE_PREFIX + "artifacts_digest")
        if not expected:
            raise BundleError(f"{self.model_name} version {version} has no artifacts_digest "
                              "tag, so its files cannot be checked", field="version",
                              fix="serve a version registered by Plimsoll (make demo)")
        folder = self.folder(version)
        if folder.is_dir() and not _matches(folder, expected):
            # Edited or half-deleted on disk: fetch it again rather than serve it.
            shutil.rmtree(folder, ignore_errors=True)
        hit = folder.is_dir()
        if not hit:
            self._fetch(version, folder, expected)
        bundle = open_model_dir(folder, model_name=self.model_name, version=version, tags=tags,
                                started=started)
        return dataclasses.replace(bundle, cache_hit=hit)

    def _fetch(self, version: str, folder: Path, expected: str) -> None:
        from plimsoll.release.registry import ModelRegistry, RegistryError

        folder.parent.mkdir(parents=True, exist_ok=True)
        _clean_stale_staging(folder.parent)
        staging = folder.parent / f".v{version}.partial-{uuid.uuid4().hex[:8]}"
        try:
            try:
                downloaded, _ = ModelRegistry(self.tracking_uri).download(
                    f"models:/{self.model_name}/{version}", staging)
            except RegistryError as exc:
                raise BundleError(f"could not fetch {self.model_name} version {version} "
                                  f"({exc.problem})", field="--model", fix=exc.fix) from None
            if not _matches(downloaded, expected):
                raise BundleError(f"the files of {self.model_name} version {version} do not "
                                  "match the digest recorded at registration", field="version",
                                  fix="check the artifact store; the version is not served")
            try:
                downloaded.rename(folder)
            except OSError:
                if not (folder.is_dir() and _matches(folder, expected)):
                    raise  # not another replica's finished copy: a real failure
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _clean_stale_staging(parent: Path) -> None:
    """Remove what killed downloads left; a download still running is younger than this."""
    cutoff = time.time() - STALE_STAGING_S
    for leftover in parent.glob(".v*.partial-*"):
        try:
            if leftover.stat().st_mtime < cutoff:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            continue  # another replica removed it first


def _matches(model_dir: Path, expected: str) -> bool:
    try:
        return (Path(model_dir) / "artifacts").is_dir() and \
            artifacts_digest(model_dir) == expected
    except OSError:
        return False


def open_model_dir(model_dir: Path, *, model_name: str = "", version: str = "",
                   tags: dict[str, str] | None = None,
                   started: float | None = None) -> LoadedBundle:
    """Open a downloaded model directory, warm it with one probe answer, and describe it."""
    from plimsoll.serving.bundles import answerer_from_model_dir

    started = time.perf_counter() if started is None else started
    model_dir = Path(model_dir)
    config = _model_config(model_dir)
    model_name = model_name or str(config.get("model_name") or model_dir.name)
    version = version or str(config.get("model_version") or "")
    try:
        base = answerer_from_model_dir(model_dir, abstain_below=float(
            config.get("abstain_below", 0.35)))
        answerers = {mode: base.in_mode(mode) for mode in MODES
                     if mode == "answer" or base.facts_template is not None}
        answerers["answer"].answer(PROBE_QUESTION)  # warm: tokenizer, index, guard
    except PlimsollError as exc:
        raise BundleError(f"{model_name} version {version or '?'} does not open "
                          f"({exc.problem})", file=exc.file or model_dir, field=exc.field,
                          fix=exc.fix or "re-register the bundle") from None
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise BundleError(f"{model_name} version {version or '?'} does not open "
                          f"({type(exc).__name__}: {str(exc)[:200]})", file=model_dir,
                          fix="the bundle's files are damaged: re-fetch or re-register it"
                          ) from None
    snapshot = base.snapshot
    tags = tags or {}
    templates = {mode: answerer.metadata["prompt_template"]
                 for mode, answerer in answerers.items()}
    provenance = {
        "model_name": model_name,
        "model_version": version,
        "run_id": tags.get(LINEAGE_PREFIX + "mlflow_run_id", ""),
        "prompt_template": templates["answer"],
        "prompt_templates": json.dumps(templates, sort_keys=True),
        "index_snapshot_id": snapshot.snapshot_id,
        "guard_policy_digest": tags.get(LINEAGE_PREFIX + "guard_policy_digest", ""),
        "guard_classifier_digest": tags.get(LINEAGE_PREFIX + "guard_classifier_digest", ""),
        "git_commit": tags.get(LINEAGE_PREFIX + "git_commit", ""),
    }
    built = snapshot.manifest.get("built_at")
    return LoadedBundle(model_name=model_name, version=version, directory=model_dir,
                        answerers=answerers, provenance=provenance,
                        slices=dict(snapshot.manifest.get("inputs", {}).get("slices", {})),
                        built_at=datetime.fromisoformat(built) if built else None,
                        load_seconds=time.perf_counter() - started)


def _model_config(model_dir: Path) -> dict[str, object]:
    import yaml

    mlmodel = Path(model_dir) / "MLmodel"
    if not mlmodel.is_file():
        return {}
    try:
        loaded = yaml.safe_load(mlmodel.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return {}
    flavor = (loaded.get("flavors") or {}).get("python_function") or {}
    return dict(flavor.get("config") or loaded.get("model_config") or {})
