"""Read a slice's raw records from its declared source (CPython docs or a file)."""

from __future__ import annotations

import csv
import inspect
import io
import json
import warnings
from collections.abc import Iterator
from importlib import import_module
from pathlib import Path

from plimsoll.errors import SliceDataError
from plimsoll.manifests import SliceManifest

# Modules read by the stdlib_docstrings source when a manifest names none: widely used,
# import without side effects, and present in every CPython 3.11 build.
DEFAULT_STDLIB_MODULES: tuple[str, ...] = (
    "abc", "argparse", "array", "ast", "asyncio", "base64", "bisect", "calendar", "codecs",
    "collections", "concurrent.futures", "configparser", "contextlib", "copy", "csv",
    "dataclasses", "datetime", "decimal", "difflib", "enum", "fnmatch", "fractions",
    "functools", "glob", "gzip", "hashlib", "heapq", "hmac", "html", "http.client", "io",
    "ipaddress", "itertools", "json", "logging", "math", "mimetypes", "operator", "os",
    "pathlib", "pickle", "pprint", "queue", "random", "re", "secrets", "shlex", "shutil",
    "socket", "sqlite3", "statistics", "string", "struct", "subprocess", "tempfile",
    "textwrap", "threading", "time", "tomllib", "typing", "unicodedata", "urllib.parse",
    "uuid", "warnings", "weakref", "zipfile", "zoneinfo",
)

Record = dict[str, object]


def read_records(manifest: SliceManifest) -> Iterator[Record]:
    """Raw records with the manifest's id and text fields, before normalisation."""
    kind = manifest.source.kind
    if kind == "pydoc_topics":
        yield from _pydoc_topics()
    elif kind == "stdlib_docstrings":
        yield from _stdlib_docstrings(manifest.source.modules or DEFAULT_STDLIB_MODULES)
    else:
        path = manifest.source_path
        assert path is not None  # guaranteed by the manifest validator
        text = _read_utf8(path) if kind in ("jsonl", "csv") else None
        if kind == "jsonl":
            yield from _jsonl(path, text or "")
        elif kind == "csv":
            yield from csv.DictReader(io.StringIO(text or "", newline=""))
        else:
            yield from _parquet(path)


def _pydoc_topics() -> Iterator[Record]:
    from pydoc_data.topics import topics

    for key in sorted(topics):
        yield {"id": f"pydoc:{key}", "title": key, "text": topics[key]}


def _stdlib_docstrings(modules: tuple[str, ...]) -> Iterator[Record]:
    for module_name in modules:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = import_module(module_name)
        except ImportError as exc:
            raise SliceDataError(f"cannot import stdlib module '{module_name}' ({exc})",
                                 field="source.modules",
                                 fix="remove it from the manifest's module list") from None
        doc = inspect.getdoc(module)
        if doc:
            yield {"id": f"stdlib:{module_name}", "title": module_name, "text": doc}
        public = getattr(module, "__all__", None) or [
            name for name in dir(module) if not name.startswith("_")]
        for name in sorted(set(public)):
            member = getattr(module, name, None)
            if not (inspect.isfunction(member) or inspect.isclass(member)
                    or inspect.isbuiltin(member)):
                continue
            if getattr(member, "__module__", module_name) != module_name:
                continue  # re-exports belong to the module that defines them
            member_doc = inspect.getdoc(member)
            if member_doc:
                qualname = f"{module_name}.{name}"
                yield {"id": f"stdlib:{qualname}", "title": qualname, "text": member_doc}


def _read_utf8(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SliceDataError(
            f"not valid UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start} (line {line})",
            file=path, field="source.path",
            fix="re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None


def _jsonl(path: Path, text: str) -> Iterator[Record]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SliceDataError(f"line {number} is not valid JSON ({exc.msg})", file=path,
                                 fix="make every line one JSON object") from None
        if not isinstance(record, dict):
            raise SliceDataError(f"line {number} is a JSON {type(record).__name__}, not an "
                                 "object", file=path, fix="make every line one JSON object")
        yield record


def _parquet(path: Path) -> Iterator[Record]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise SliceDataError(f"not a readable Parquet file ({exc})", file=path,
                             field="source.path", fix="point at a Parquet file") from None
    for batch in parquet.iter_batches(batch_size=4096):
        yield from batch.to_pylist()
