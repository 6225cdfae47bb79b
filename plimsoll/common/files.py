"""The one way to read a project file: text, JSON Lines and YAML, strictly, errors at file:line.

Strict means nothing is guessed. A file in another encoding, a key given twice, NaN in JSON,
a YAML value of the wrong type: each is an error naming the file, the line, the field and
the fix. Slices, eval sets, red-team sets, manifests, policies and the guard read through it.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from plimsoll.common.errors import PlimsollError

Model = TypeVar("Model", bound=BaseModel)

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

def read_text(path: Path, *, error: type[PlimsollError] = PlimsollError,
              field: str | None = None) -> str:
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


def json_lines(path: Path, text: str, *, error: type[PlimsollError] = PlimsollError
               ) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line: one JSON object per line, nothing else.

    Lines end at newline only: a JSON string may hold U+2028 and other characters that
    str.splitlines() would break a line at.
    """
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if line.strip():
            yield number, json_line(path, number, line, error=error)


def json_line(path: Path | str, number: int, line: str, *,
              error: type[PlimsollError] = PlimsollError) -> dict:
    """Line `number` of a JSON Lines file or stream as one object, read strictly (path:line)."""
    one_object = "make every line one JSON object: {\"key\": value, ...}"
    try:
        record = json.loads(line, object_pairs_hook=_unique_keys,
                            parse_constant=_no_constant, parse_float=_finite)
    except json.JSONDecodeError as exc:
        raise error(f"line {number} is not valid JSON ({exc.msg} at column {exc.colno})",
                    file=path, line=number, fix=one_object) from None
    except _Ambiguous as exc:
        raise error(f"line {number}: {exc}", file=path, line=number, field=exc.key,
                    fix=exc.fix) from None
    except (ValueError, RecursionError) as exc:  # an integer too long, or deep nesting
        reason = str(exc) if isinstance(exc, ValueError) else "nested too deeply"
        raise error(f"line {number}: {reason}", file=path, line=number,
                    fix="write plain values: strings, arrays of strings, small numbers"
                    ) from None
    if not isinstance(record, dict):
        raise error(f"line {number} is a JSON {json_type(record)}, not an object",
                    file=path, line=number, fix=one_object)
    return record


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


def read_jsonl(path: Path, *, error: type[PlimsollError] = PlimsollError,
               field: str | None = None) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line of a JSON Lines file, read strictly."""
    return json_lines(path, read_text(path, error=error, field=field), error=error)


def load_yaml_model(path: Path, model: type[Model], *, error: type[PlimsollError],
                    what: str, fixes: dict[str, str] | None = None, fix: str = "correct the value",
                    extra: dict[str, object] | None = None, allow_empty: bool = True) -> Model:
    """A YAML mapping validated into a pydantic model; the first problem names file:line and field.

    `what` names the file for people ("the policy"); `fixes` maps a pydantic error type to
    the fix to print; `extra` adds fields that are not in the file (its own path).
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} file not found" if not path.exists() else f"{what} is not a file",
                    file=path, fix="check the path")
    raw = read_yaml(path, error)
    if raw is None and not allow_empty:
        raise error(f"{what} is empty", file=path, fix=fix)
    if raw is not None and not isinstance(raw, dict):
        raise error(f"{what} must be a YAML mapping of fields, not a {_yaml_type(raw)}",
                    file=path, fix=fix)
    try:
        return model.model_validate({**(raw or {}), **(extra or {})})
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [part for part in first["loc"] if part != "__root__"]
        field = ".".join(str(part) for part in loc) or None
        problem = first["msg"].removeprefix("Value error, ")
        if first["type"].endswith("_type") and "input" in first:
            given = first["input"]
            shown = str(given) if _yaml_type(given) == "date" else repr(given)
            problem += f", got a {_yaml_type(given)} ({shown[:60]})"
        raise error(problem, file=path, field=field, line=yaml_line(path, loc),
                    fix=(fixes or {}).get(first["type"], fix)) from None


def yaml_line(path: Path, loc: list) -> int | None:
    """The line of a key path in a YAML file (the deepest part that exists), or None."""
    try:
        node = yaml.compose(Path(path).read_text(encoding="utf-8-sig"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if str(k.value) == str(part)]
            if not match:
                break
            key, node = match[0]
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and \
                part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _yaml_type(value: object) -> str:
    import datetime

    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, datetime.date):
        return "date"
    if isinstance(value, int | float):
        return "whole number" if isinstance(value, int) else "decimal number"
    return {"array": "list", "object": "mapping"}.get(json_type(value), json_type(value))
