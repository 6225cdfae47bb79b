"""Prompt templates as code: front matter (id, version, owner, variables) plus a Jinja body."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from plimsoll.common.errors import PlimsollError
from plimsoll.common.hashing import sha256_file

if TYPE_CHECKING:
    import jinja2

REQUIRED = ("id", "version", "owner", "variables")


@dataclass(frozen=True)
class PromptTemplate:
    """A versioned template; its content hash is its identity in lineage and answers."""

    path: Path
    template_id: str
    version: str
    owner: str
    variables: tuple[str, ...]
    body: str
    content_hash: str

    @property
    def ref(self) -> str:
        """`<id>@<version>#<hash prefix>`: what answers and lineage record."""
        return f"{self.template_id}@{self.version}#{self.content_hash[:12]}"

    def render(self, **values: object) -> str:
        """Render with exactly the declared variables."""
        given, declared = set(values), set(self.variables)
        if given != declared:
            raise PlimsollError(f"template {self.template_id} declares {sorted(declared)} but "
                                f"was given {sorted(given)}", file=self.path,
                                field="variables", fix="pass exactly the declared variables")
        return _compiled(self.body).render(**values).strip()


@cache
def _environment() -> jinja2.Environment:
    """The one Jinja environment templates compile in (it holds no per-answer state)."""
    import jinja2

    return jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False,
                              autoescape=False)


@lru_cache(maxsize=256)
def _compiled(body: str) -> jinja2.Template:
    """A template body compiled once, not on every answer; the body is its whole identity."""
    return _environment().from_string(body)


def load_template(path: Path) -> PromptTemplate:
    """Parse a template file; malformed front matter is an error naming the field."""
    from plimsoll.common.files import read_text

    path = Path(path)
    if not path.is_file():
        raise PlimsollError("prompt template not found", file=path,
                            fix="check the path (the templates live in prompts/)")
    text = read_text(path, error=PlimsollError, field=None).replace("\r\n", "\n")
    if not text.startswith("---\n") or "\n---\n" not in text[4:]:
        raise PlimsollError("no front matter", file=path, field="front matter",
                            fix="start the file with a --- block holding id, version, owner, "
                            "variables")
    header, body = text[4:].split("\n---\n", 1)
    try:
        meta = yaml.safe_load(header) or {}
    except yaml.YAMLError as exc:
        raise PlimsollError(f"the front matter is not valid YAML ({exc})", file=path,
                            field="front matter", fix="fix the YAML between the --- lines"
                            ) from None
    if not isinstance(meta, dict):
        raise PlimsollError("the front matter must be a YAML mapping", file=path,
                            field="front matter", fix="write id:, version:, owner:, "
                            "variables: lines")
    for field in REQUIRED:
        if field not in meta:
            raise PlimsollError("front matter lacks a field", file=path, field=field,
                                fix=f"add '{field}:' to the front matter")
    if not isinstance(meta["variables"], list | None) or not all(
            isinstance(v, str) for v in meta["variables"] or ()):
        raise PlimsollError("variables must be a list of names", file=path, field="variables",
                            fix="write variables: [question, passages]")
    return PromptTemplate(path=path, template_id=str(meta["id"]), version=str(meta["version"]),
                          owner=str(meta["owner"]), variables=tuple(meta["variables"] or ()),
                          body=body, content_hash=sha256_file(path))
