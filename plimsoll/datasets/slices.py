"""Build a dataset slice: load, normalise, hash, and write it as Parquet."""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from plimsoll.common.errors import SliceDataError
from plimsoll.common.files import json_type
from plimsoll.common.hashing import canonical_json, sha256_text
from plimsoll.datasets.manifests import SliceManifest
from plimsoll.datasets.sources import read_records

if TYPE_CHECKING:
    import pandas as pd

SLICE_COLUMNS = ("id", "title", "text", "slice", "classification")

_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def normalise_text(value: object) -> str | None:
    """Unicode NFC, Unix newlines, single spaces, at most one blank line; blank is None."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = unicodedata.normalize("NFC", str(value)).replace("\r\n", "\n").replace("\r", "\n")
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip() or None


def normalise_id(value: object) -> str | None:
    """Ids are NFC strings without surrounding whitespace; a blank id counts as missing."""
    return normalise_text(value)


@dataclass(frozen=True)
class SliceTable:
    """A normalised slice in memory, with its content hash."""

    manifest: SliceManifest
    frame: pd.DataFrame
    content_hash: str

    @property
    def row_count(self) -> int:
        """Number of rows."""
        return len(self.frame)


def build_slice(manifest: SliceManifest) -> SliceTable:
    """Load a slice's source and normalise it; refuse sources that cannot make a slice."""
    import pandas as pd

    file = manifest.source_path or manifest.manifest_path
    rows = []
    for where, record in read_records(manifest):
        for field_name, setting in ((manifest.text_field, "text_field"),
                                    (manifest.id_field, "id_field")):
            if field_name not in record:
                raise SliceDataError(
                    f"{where} has no '{field_name}' key (keys: {sorted(record)})", file=file,
                    field=setting, fix=f"set {setting} in the manifest to the column that holds "
                    + ("the text" if setting == "text_field" else "stable ids"))
        rows.append({
            "id": normalise_id(_checked(record, manifest.id_field, where, file, ids=True)),
            "title": normalise_text(_checked(record, "title", where, file)) or "",
            "text": normalise_text(_checked(record, manifest.text_field, where, file)),
            "slice": manifest.name,
            "classification": manifest.classification.value,
        })
    if not rows:
        raise SliceDataError("the source has no rows: an empty slice", file=file,
                             field="source", fix="add rows to the source, or remove the "
                             f"manifest {manifest.manifest_path} if the slice is retired")
    frame = pd.DataFrame(rows, columns=list(SLICE_COLUMNS)).astype("string")
    frame = frame.sort_values(["id", "text"], na_position="first", kind="stable")
    frame = frame.reset_index(drop=True)
    return SliceTable(manifest=manifest, frame=frame, content_hash=content_hash(frame))


def _checked(record: dict, key: str, where: str, file: object, *, ids: bool = False) -> object:
    """A text (or id) value as given; a number, boolean, list or object there is an error.

    Null stays null: the slice's checks count and name those rows. Whole numbers are fine
    as ids (42 is unambiguously "42"); any other non-text value would become some text by
    a guess (1.0 or 1? "True"? a list's repr?), so it is refused.
    """
    value = record.get(key)
    if value is None or isinstance(value, str):
        return value
    if ids and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    kind = json_type(value)
    if isinstance(value, float) and value != value:
        kind = "NaN"
    article = "an" if kind[0] in "aeiou" else "a"
    raise SliceDataError(
        f"{where}: '{key}' is {article} {kind} ({_preview(value)}), not text", file=file,
        field=key,
        fix=f"write '{key}' as a string (in quotes) on every row, or null where there is none")


def _preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def content_hash(frame: pd.DataFrame) -> str:
    """Hash of the rows' values in order, independent of how Parquet encodes them."""
    import pandas as pd

    lines = (canonical_json([None if pd.isna(v) else v for v in row])
             for row in frame[list(SLICE_COLUMNS)].itertuples(index=False, name=None))
    return sha256_text("\n".join(lines))


def write_parquet(frame: pd.DataFrame, destination: Path) -> Path:
    """Write atomically: a reader sees the old file or the whole new one, never half."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(dir=destination.parent, suffix=".parquet.tmp")
    os.close(handle)
    try:
        frame.to_parquet(staging, index=False, engine="pyarrow")
        os.replace(staging, destination)
    finally:
        if os.path.exists(staging):
            os.unlink(staging)
    return destination


def read_slice(path: Path) -> pd.DataFrame:
    """Read a slice's Parquet file."""
    import pandas as pd

    return pd.read_parquet(path, engine="pyarrow").astype("string")
