"""Read a slice's raw records from its declared source: CPython's docs or a file, read strictly.

Strict means nothing is guessed. A file in another encoding, a CSV row with more or fewer
fields than its header, a key given twice, NaN in JSON: each is an error naming the file, the
line and the fix, never a silently cut or merged row. Eval sets and manifests are read with
the same text and JSON Lines readers.
"""

from __future__ import annotations

import csv
import inspect
import io
import warnings
from collections.abc import Iterator
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

from plimsoll.common.errors import SliceDataError
from plimsoll.common.files import json_lines, read_text

if TYPE_CHECKING:
    from plimsoll.datasets.manifests import SliceManifest

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
# A record and where it is in its source ("line 3", "row 12"), for errors that point at it.
Located = tuple[str, Record]

# csv's default limit (128 KiB a field) is below a slice's default max_text_chars; a longer
# document is a length check's business (text_length_bounds), not a parse error.
_CSV_FIELD_LIMIT = 64 << 20


def read_records(manifest: SliceManifest) -> Iterator[Located]:
    """Raw records with where each one is, before normalisation."""
    kind = manifest.source.kind
    if kind == "pydoc_topics":
        yield from _pydoc_topics()
    elif kind == "stdlib_docstrings":
        yield from _stdlib_docstrings(manifest.source.modules or DEFAULT_STDLIB_MODULES)
    else:
        path = manifest.source_path
        assert path is not None  # guaranteed by the manifest validator
        if kind == "jsonl":
            text = read_text(path, error=SliceDataError, field="source.path")
            for number, record in json_lines(path, text, error=SliceDataError):
                yield f"line {number}", record
        elif kind == "csv":
            yield from _csv(path, read_text(path, error=SliceDataError, field="source.path"))
        else:
            yield from _parquet(path)


def _csv(path: Path, text: str) -> Iterator[Located]:
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    # strict: a quote in the wrong place or one never closed is an error, not merged text.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    header_line = start = 1
    try:
        for row in reader:
            line, start = start, reader.line_num + 1
            if not row:
                continue  # a blank line
            if header is None:
                header, header_line = _csv_header(path, row, line), line
                continue
            if len(row) != len(header):
                raise SliceDataError(
                    f"line {line} has {len(row)} fields but the header (line {header_line}) has "
                    f"{len(header)}: an unquoted comma, or a missing field", file=path,
                    fix='quote the field that holds a comma ("like, this"), and give every row '
                    "exactly the header's columns")
            yield f"line {line}", dict(zip(header, row, strict=True))
    except csv.Error as exc:
        raise SliceDataError(f"line {start} is not valid CSV ({exc})", file=path,
                             fix='close every quoted field, and double a quote inside one ("")'
                             ) from None


def _csv_header(path: Path, names: list[str], line: int) -> list[str]:
    if len(names) == 1 and any(mark in names[0] for mark in (";", "\t", "|")):
        raise SliceDataError(f"the header (line {line}) is one column '{names[0][:80]}': the "
                             "file looks delimited by something other than ','", file=path,
                             fix="write the file comma-separated (Plimsoll reads CSV with ',')")
    seen: dict[str, int] = {}
    for column, name in enumerate(names, start=1):
        if not name.strip():
            raise SliceDataError(f"column {column} of the header (line {line}) has no name",
                                 file=path, fix="name every column, or delete the empty one")
        if name in seen:
            raise SliceDataError(f"column '{name}' appears twice in the header (columns "
                                 f"{seen[name]} and {column})", file=path, field=name,
                                 fix="rename or drop one of the two columns")
        seen[name] = column
    return names


def _pydoc_topics() -> Iterator[Located]:
    from pydoc_data.topics import topics

    for key in sorted(topics):
        yield f"topic '{key}'", {"id": f"pydoc:{key}", "title": key, "text": topics[key]}


def _stdlib_docstrings(modules: tuple[str, ...]) -> Iterator[Located]:
    for module_name in modules:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = import_module(module_name)
        except Exception as exc:  # importing runs the module's code: any failure is the manifest's
            raise SliceDataError(f"cannot import stdlib module '{module_name}' ({exc})",
                                 field="source.modules",
                                 fix="remove it from the manifest's module list") from None
        doc = inspect.getdoc(module)
        if doc:
            yield f"module {module_name}", {"id": f"stdlib:{module_name}", "title": module_name,
                                            "text": doc}
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
                yield qualname, {"id": f"stdlib:{qualname}", "title": qualname,
                                 "text": member_doc}


def _parquet(path: Path) -> Iterator[Located]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise SliceDataError(f"not a readable Parquet file ({exc})", file=path,
                             field="source.path", fix="point source.path at a Parquet file, or "
                             "set source.kind to what the file is (csv, jsonl)") from None
    names = parquet.schema_arrow.names
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise SliceDataError(f"columns {repeated} appear more than once", file=path,
                             field=repeated[0], fix="rename or drop the repeated columns")
    row = 0
    try:
        for batch in parquet.iter_batches(batch_size=4096):
            for record in batch.to_pylist():
                row += 1
                yield f"row {row}", record
    except (OSError, ValueError) as exc:  # pyarrow's errors for a truncated or corrupt chunk
        raise SliceDataError(f"cannot read past row {row} ({exc})", file=path,
                             field="source.path", fix="rewrite the Parquet file") from None
