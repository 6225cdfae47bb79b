"""Dataset slice manifests: data_manifests/<slice>.yaml, parsed strictly.

Strictly: a key given twice is an error (YAML keeps the last silently), and text, numbers
and lists must be written as such. YAML reads `no`, `0123` and `2024-01-01` as a boolean,
a number and a date; quietly turning those back into text is a guess, so it is refused.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, model_validator

from plimsoll.common.errors import ManifestError
from plimsoll.common.files import load_yaml_model
from plimsoll.common.hashing import sha256_file

SLICE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
MANIFEST_SUFFIX = ".yaml"


class Classification(StrEnum):
    """How sensitive a slice is; drives who may read it and where it may run."""

    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    RESTRICTED = "restricted"


FILE_KINDS = frozenset({"jsonl", "csv", "parquet"})


class SliceSource(BaseModel):
    """Where a slice's rows come from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["pydoc_topics", "stdlib_docstrings", "jsonl", "csv", "parquet"]
    path: Annotated[str, Field(min_length=1, strict=True)] | None = Field(
        default=None, description="File path, relative to the manifest.")
    modules: tuple[StrictStr, ...] | None = Field(
        default=None, description="stdlib_docstrings only: the modules to read (default: all)."
    )

    @model_validator(mode="after")
    def _path_matches_kind(self) -> SliceSource:
        if self.kind in FILE_KINDS and not self.path:
            raise ValueError(f"source kind '{self.kind}' needs a 'path' to the file")
        if self.kind not in FILE_KINDS and self.path:
            raise ValueError(f"source kind '{self.kind}' reads from CPython and takes no 'path'")
        if self.modules is not None and self.kind != "stdlib_docstrings":
            raise ValueError("'modules' applies only to source kind 'stdlib_docstrings'")
        return self


class SliceManifest(BaseModel):
    """One dataset slice: what it is, who owns it, where it comes from, how long it lives."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=SLICE_NAME.pattern, strict=True)]
    description: Annotated[str, Field(min_length=1, strict=True)]
    owner: Annotated[str, Field(min_length=1, strict=True)]
    source: SliceSource
    schema_version: Annotated[int, Field(ge=1, strict=True)]
    classification: Classification
    ttl_days: Annotated[int, Field(ge=1, strict=True)]
    text_field: Annotated[str, Field(min_length=1, strict=True)] = "text"
    id_field: Annotated[str, Field(min_length=1, strict=True)] = "id"
    min_rows: Annotated[int, Field(ge=1, strict=True)] = 1
    min_text_chars: Annotated[int, Field(ge=1, strict=True)] = 1
    max_text_chars: Annotated[int, Field(ge=1, strict=True)] = 200_000

    # Set by the loader, not by the YAML.
    manifest_path: Path | None = Field(default=None, exclude=True)

    @property
    def source_path(self) -> Path | None:
        """The source file, resolved against the manifest's folder."""
        if self.source.path is None:
            return None
        base = self.manifest_path.parent if self.manifest_path else Path.cwd()
        return (base / self.source.path).resolve()


_FIXES = {
    "extra_forbidden": "remove the key, or check its spelling against the manifest fields in "
    "README.md (Dataset slices)",
    "missing": "add the field",
    "enum": "use one of: public, internal, confidential, restricted",
    "literal_error": "use one of the listed values",
    "string_pattern_mismatch": "use lowercase letters, digits and '_' (1-63 chars, "
    "starting with a letter)",
    "string_type": "write it as text, in quotes if YAML would read it otherwise (yes, no, "
    "on, off, numbers and dates)",
    "int_type": "write a whole number, without quotes",
    "tuple_type": "write a YAML list, e.g. [json, re]",
}


def load_manifest(path: Path) -> SliceManifest:
    """Read and validate one manifest; every problem names the file, field and fix."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError("manifest file not found", file=path,
                            fix="check the path, or list data_manifests/")
    manifest = load_yaml_model(
        path, SliceManifest, error=ManifestError, what="the manifest", fixes=_FIXES,
        fix="see data_manifests/python_help_topics.yaml for an example",
        extra={"manifest_path": path.resolve()}, allow_empty=False)
    if manifest.text_field == manifest.id_field:
        raise ManifestError(f"text_field and id_field are both '{manifest.text_field}'",
                            file=path, field="id_field",
                            fix="point id_field at the column of stable ids, text_field at the "
                            "text")
    if manifest.min_text_chars > manifest.max_text_chars:
        raise ManifestError(f"min_text_chars ({manifest.min_text_chars}) is above "
                            f"max_text_chars ({manifest.max_text_chars})", file=path,
                            field="max_text_chars", fix="swap them, or widen the bounds")
    if manifest.name != path.stem:
        raise ManifestError(
            f"name '{manifest.name}' differs from the file name '{path.stem}'", file=path,
            field="name", fix=f"rename the file to {manifest.name}.yaml or set name: {path.stem}")
    source_path = manifest.source_path
    if source_path is not None and not source_path.is_file():
        raise ManifestError(f"source file {source_path} does not exist", file=path,
                            field="source.path",
                            fix="give a path relative to the manifest's folder")
    return manifest


def manifest_paths(directory: Path) -> list[Path]:
    """The manifests in a directory, sorted by slice name."""
    return sorted(Path(directory).glob(f"*{MANIFEST_SUFFIX}"))


def slice_names(directory: Path) -> list[str]:
    """Slice names from manifest file names alone: cheap enough for definitions load."""
    return [path.stem for path in manifest_paths(directory)]


def manifest_digest(manifest: SliceManifest) -> str:
    """Content hash of the manifest file itself (what a commit pins)."""
    if manifest.manifest_path is None:
        raise ValueError("manifest was not loaded from a file")
    return sha256_file(manifest.manifest_path)
