"""Texts to screen, read strictly from a file or stdin: one per line, or JSONL rows.

Lines are read as bytes and decoded one by one, so an encoding error names its line
instead of ending the run in a traceback. UTF-8 only: a UTF-8 byte-order mark is dropped,
any other byte-order mark or a byte that is not UTF-8 (a binary file) is an error naming
the file, the line and the byte. NUL and other control characters are text like any other,
for the guard to judge (views.py drops them from what the rules read).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from plimsoll.common.errors import PlimsollError
from plimsoll.common.files import json_line
from plimsoll.guard.admission import SURROGATE

# Far beyond any guard policy's limits (a longer text is refused unread), but a file with
# no line breaks must not be read whole into memory.
MAX_LINE_BYTES = 64 << 20
UTF8_BOM = b"\xef\xbb\xbf"
FOREIGN_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
                (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16"))


def open_texts(path: Path | None) -> contextlib.AbstractContextManager[BinaryIO]:
    """The file (or stdin when None) as bytes; a file that cannot be opened is an error."""
    if path is None:
        return contextlib.nullcontext(sys.stdin.buffer)
    try:
        return Path(path).open("rb")
    except OSError as exc:
        raise PlimsollError(f"cannot read the input ({exc.strerror})", file=path,
                            fix="name a readable text or JSONL file, or pipe text on stdin"
                            ) from None


def read_texts(stream: BinaryIO, name: str) -> Iterator[tuple[int, str, dict[str, object]]]:
    """(line number, text, the row's `id` if any) for each non-blank line."""
    number = 0
    while raw := stream.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(raw) > MAX_LINE_BYTES:
            raise PlimsollError(f"the line is over {MAX_LINE_BYTES >> 20} MiB; is it a binary "
                                "file?", file=f"{name}:{number}",
                                fix="screen text, one input per line")
        if number == 1:
            raw = _without_bom(raw, name)
        text, extra = parse_line(raw, name, number)
        if text is not None:
            yield number, text, extra


def parse_line(raw: bytes, name: str, number: int) -> tuple[str | None, dict[str, object]]:
    """A JSONL row's `text` (and `id`), or the line itself; None for a blank line.

    A line that starts with "{" is a JSON object, read as every JSON Lines file is
    (plimsoll.common.files: no key given twice, no NaN).
    """
    where = f"{name}:{number}"
    try:
        line = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise PlimsollError(f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at byte "
                            f"{exc.start + 1} of the line); is it a binary file?", file=where,
                            fix="screen UTF-8 text, one input per line (convert other "
                            "encodings with iconv -t UTF-8)") from None
    if not line.strip():
        return None, {}
    if not line.lstrip().startswith("{"):
        return line, {}
    try:
        row = json_line(name, number, line)
    except PlimsollError as exc:  # a row that does not parse may have been meant as text
        raise PlimsollError(exc.problem, file=name, line=number, field=exc.field,
                            fix=exc.fix if exc.field else f"{exc.fix}, or plain text that "
                            "does not start with '{'") from None
    if not isinstance(row.get("text"), str):
        found = f"it is {_json_type(row['text'])}" if "text" in row else "there is none"
        raise PlimsollError(f"JSON row has no string `text` ({found})", file=where,
                            field="text", fix='write {"text": "..."}')
    if "id" not in row:
        return row["text"], {}
    row_id = row["id"]
    if isinstance(row_id, bool) or not isinstance(row_id, (str, int)):
        raise PlimsollError(f"`id` is {_json_type(row_id)}", file=where, field="id",
                            fix="give the row's id as a string or a whole number")
    if isinstance(row_id, str):
        row_id = SURROGATE.sub("\ufffd", row_id)  # echoed on stdout, which needs valid text
    return row["text"], {"id": row_id}


def _without_bom(raw: bytes, name: str) -> bytes:
    for bom, encoding in FOREIGN_BOMS:
        if raw.startswith(bom):
            raise PlimsollError(f"the input is {encoding} (it starts with a {encoding} "
                                "byte-order mark); the guard reads UTF-8", file=name,
                                fix=f"convert it: iconv -f {encoding} -t UTF-8")
    return raw.removeprefix(UTF8_BOM)


def _json_type(value: object) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string",
             list: "a list", dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)
