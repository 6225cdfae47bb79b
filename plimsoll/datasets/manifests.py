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

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError, model_validator

from plimsoll.common.errors import ManifestError, PlimsollError
from plimsoll.common.hashing import sha256_file
from plimsoll.datasets.sources import json_type, read_text

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


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        lines: dict[object, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults` may be overridden by design
            key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
            try:
                if key in lines:
                    raise _DuplicateKey(key, lines[key], line)
                lines[key] = line
            except TypeError:
                continue  # an unhashable key: the base constructor reports it
        return super().construct_mapping(node, deep=deep)


class _DuplicateKey(Exception):
    """A mapping key seen twice, with the lines of both."""

    def __init__(self, key: object, first: int, again: int) -> None:
        super().__init__(key)
        self.key, self.first, self.again = key, first, again


def read_yaml(path: Path, error: type[PlimsollError]) -> object:
    """A YAML file read strictly: UTF-8 (a BOM is fine), safe types, no key given twice."""
    text = read_text(path, error=error, field=None)
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no arbitrary objects
    except _DuplicateKey as exc:
        raise error(f"key '{exc.key}' is given twice (lines {exc.first} and "
                    f"{exc.again}); YAML would silently keep the last", file=path,
                    field=str(exc.key), fix="keep one of the two") from None
    except yaml.YAMLError as exc:
        raise error(f"not valid YAML ({exc})", file=path, fix="fix the YAML syntax") from None


def load_manifest(path: Path) -> SliceManifest:
    """Read and validate one manifest; every problem names the file, field and fix."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError("manifest file not found", file=path,
                            fix="check the path, or list data_manifests/")
    raw = read_yaml(path, ManifestError)
    if raw is None:
        raise ManifestError("the manifest is empty", file=path,
                            fix="see data_manifests/python_help_topics.yaml for an example")
    if not isinstance(raw, dict):
        raise ManifestError("a manifest must be a YAML mapping of fields", file=path,
                            fix="see data_manifests/python_help_topics.yaml for an example")
    try:
        manifest = SliceManifest.model_validate({**raw, "manifest_path": path.resolve()})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        fix = _FIXES.get(first["type"], "correct the value")
        problem = first["msg"].removeprefix("Value error, ").replace("a valid tuple", "a list")
        if first["type"].endswith("_type") and "input" in first:
            given = first["input"]
            shown = str(given) if _yaml_type(given) == "date" else repr(given)
            problem += f", got a {_yaml_type(given)} ({shown[:60]})"
        raise ManifestError(problem, file=path, field=field, fix=fix) from None
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


def _yaml_type(value: object) -> str:
    import datetime

    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, datetime.date):
        return "date"
    if isinstance(value, int | float):
        return "whole number" if isinstance(value, int) else "decimal number"
    return {"array": "list", "object": "mapping"}.get(json_type(value), json_type(value))


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
