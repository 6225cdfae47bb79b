"""Read a slice's raw records from its declared source: CPython's docs or a file, read strictly.

Strict means nothing is guessed. A file in another encoding, a CSV row with more or fewer
fields than its header, a key given twice, NaN in JSON: each is an error naming the file, the
line and the fix, never a silently cut or merged row. Eval sets and manifests are read with
the same text and JSON Lines readers.
"""

from __future__ import annotations

import codecs
import csv
import inspect
import io
import json
import warnings
from collections.abc import Iterator
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

from plimsoll.common.errors import PlimsollError, SliceDataError

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

# A UTF-8 byte-order mark is dropped (Excel and Notepad write one; it carries no meaning).
# Any other byte-order mark means the text is not UTF-8 at all, and decoding it as UTF-8
# would turn every character into garbage or NUL bytes.
_FOREIGN_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32-LE"), (codecs.BOM_UTF32_BE, "UTF-32-BE"),
                 (codecs.BOM_UTF16_LE, "UTF-16-LE"), (codecs.BOM_UTF16_BE, "UTF-16-BE"))
# Files that are something else under a text file's name.
_MAGIC = ((b"PAR1", "a Parquet file", "set source.kind: parquet"),
          (b"\x1f\x8b", "gzip-compressed", "decompress it (gunzip) first"),
          (b"PK\x03\x04", "a ZIP archive (an .xlsx workbook is one)",
           "export the sheet as 'CSV UTF-8', or unzip it"),
          (b"SQLite format 3\x00", "an SQLite database", "export the table as CSV or JSONL"))
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
            for number, record in json_lines(path, read_text(path)):
                yield f"line {number}", record
        elif kind == "csv":
            yield from _csv(path, read_text(path))
        else:
            yield from _parquet(path)


def read_text(path: Path, *, error: type[PlimsollError] = SliceDataError,
              field: str | None = "source.path") -> str:
    """A text file as UTF-8, with a UTF-8 byte-order mark dropped.

    Other encodings (a UTF-16/32 byte-order mark, invalid UTF-8), NUL bytes and files that
    are archives or Parquet are errors that name the encoding or byte, its line, and a fix.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise error(f"cannot read the file ({exc.strerror or exc})", file=path, field=field,
                    fix="check the path and that the file is readable") from None
    for magic, what, fix in _MAGIC:
        if data.startswith(magic):
            raise error(f"this is {what}, not UTF-8 text", file=path, field=field, fix=fix)
    for bom, encoding in _FOREIGN_BOMS:
        if data.startswith(bom):
            raise error(f"the file is {encoding} text (it starts with a {encoding} byte-order "
                        "mark), not UTF-8", file=path, field=field,
                        fix=f"re-encode it as UTF-8 (e.g. iconv -f {encoding} -t UTF-8)")
    data = data.removeprefix(codecs.BOM_UTF8)
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data[:nul].count(b"\n") + 1
        raise error(f"a NUL byte at offset {nul} (line {line}): the file is binary, or "
                    "UTF-16/32 text without a byte-order mark", file=path,
                    field=field, fix="save it as UTF-8 text (e.g. iconv -f UTF-16 -t UTF-8)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise error(
            f"not valid UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start} (line {line})",
            file=path, field=field,
            fix="re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None


class _Ambiguous(ValueError):
    """JSON that parses but means more than one thing (a repeated key, NaN)."""

    def __init__(self, problem: str, fix: str, key: str | None = None) -> None:
        super().__init__(problem)
        self.fix, self.key = fix, key


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    record: dict[str, object] = {}
    for key, value in pairs:
        if key in record:
            raise _Ambiguous(f"key '{key}' appears twice in one object (JSON readers differ on "
                             "which value wins)", f"keep one '{key}' in that object", key)
        record[key] = value
    return record


def _no_constant(name: str) -> float:
    raise _Ambiguous(f"{name} is not a JSON number", "write null, or a finite number")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _Ambiguous(f"{text} overflows to infinity", "write null, or a finite number")
    return value


def json_type(value: object) -> str:
    """A value's type in JSON's words, for messages."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object", type(None): "null"}.get(
        type(value), type(value).__name__)


def json_lines(path: Path, text: str, *, error: type[PlimsollError] = SliceDataError
               ) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line: one JSON object per line, nothing else.

    Lines end at newline only: a JSON string may hold U+2028 and other characters that
    str.splitlines() would break a line at.
    """
    one_object = "make every line one JSON object: {\"key\": value, ...}"
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        try:
            record = json.loads(line, object_pairs_hook=_unique_keys,
                                parse_constant=_no_constant, parse_float=_finite)
        except json.JSONDecodeError as exc:
            raise error(f"line {number} is not valid JSON ({exc.msg} at column {exc.colno})",
                        file=path, fix=one_object) from None
        except _Ambiguous as exc:
            raise error(f"line {number}: {exc}", file=path, field=exc.key, fix=exc.fix) from None
        except (ValueError, RecursionError) as exc:  # an integer too long, or deep nesting
            reason = str(exc) if isinstance(exc, ValueError) else "nested too deeply"
            raise error(f"line {number}: {reason}", file=path,
                        fix="write plain values: strings, arrays of strings, small numbers"
                        ) from None
        if not isinstance(record, dict):
            raise error(f"line {number} is a JSON {json_type(record)}, not an object",
                        file=path, fix=one_object)
        yield number, record


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
