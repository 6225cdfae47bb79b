"""The model card (policies/model_card.md): checked, rendered with a version's numbers, summarised.

The card is versioned like the prompts: front matter (id, version, owner, last_reviewed,
review_every_days) and a Jinja body of `## ` sections. Registration renders it with the
version's numbers and refuses a card that lacks a section, has not been reviewed within
review_every_days, or no longer describes the system it ships with (a slice, a
classification, a fallback or a lever the card does not name).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from plimsoll.common.errors import PlimsollError
from plimsoll.common.hashing import sha256_file

REQUIRED_FIELDS = ("id", "version", "owner", "last_reviewed", "review_every_days")
# Every section a reviewer and a user need, in the order the card gives them.
SECTIONS = ("Intended use", "Users", "Non-goals", "Known failure modes",
            "Data: classification and retention", "Evaluation summary",
            "Fallbacks and levers")
DATA_SECTION, LEVERS_SECTION = SECTIONS[4], SECTIONS[6]
_HEADING = re.compile(r"^## +(.+?)\s*$", re.MULTILINE)


class ModelCardError(PlimsollError):
    """The model card is missing, malformed, incomplete or stale; nothing was registered."""


@dataclass(frozen=True)
class SliceFacts:
    """What the card says about one slice of data."""

    name: str
    classification: str
    ttl_days: int
    expires: str = ""  # ISO date from which the gateway answers in short form, if known


@dataclass(frozen=True)
class ModelCard:
    """A parsed card: its identity, review dates and its (unrendered) sections."""

    path: Path
    card_id: str
    version: str
    owner: str
    last_reviewed: dt.date
    review_every_days: int
    body: str
    content_hash: str

    @property
    def ref(self) -> str:
        """`<id>@<version>#<hash prefix>`, as lineage records it."""
        return f"{self.card_id}@{self.version}#{self.content_hash[:12]}"

    @property
    def sections(self) -> dict[str, str]:
        """Section title → its (unrendered) text."""
        return sections_of(self.body)

    def due(self) -> dt.date:
        """The day after which the card is stale."""
        return self.last_reviewed + dt.timedelta(days=self.review_every_days)


def sections_of(markdown: str) -> dict[str, str]:
    """`## ` headings and the text under each, up to the next one."""
    found = list(_HEADING.finditer(markdown))
    return {match[1]: markdown[match.end():found[i + 1].start() if i + 1 < len(found)
                               else len(markdown)].strip()
            for i, match in enumerate(found)}


def load_model_card(path: Path) -> ModelCard:
    """Parse a card; malformed front matter is an error naming the field and the fix."""
    from plimsoll.common.files import read_text

    path = Path(path)
    if not path.is_file():
        raise ModelCardError("model card not found", file=path,
                             fix="restore policies/model_card.md (or point "
                             "$PLIMSOLL_MODEL_CARD at the card); nothing was registered")
    text = read_text(path, error=ModelCardError, field=None).replace("\r\n", "\n")
    if not text.startswith("---\n") or "\n---\n" not in text[4:]:
        raise ModelCardError("no front matter", file=path, field="front matter",
                             fix="start the card with a --- block holding "
                             + ", ".join(REQUIRED_FIELDS))
    header, body = text[4:].split("\n---\n", 1)
    try:
        meta = yaml.safe_load(header) or {}
    except yaml.YAMLError as exc:
        raise ModelCardError(f"the front matter is not valid YAML ({exc})", file=path,
                             field="front matter", fix="fix the YAML between the --- lines"
                             ) from None
    if not isinstance(meta, dict):
        raise ModelCardError("the front matter must be a YAML mapping", file=path,
                             field="front matter", fix="write one `field: value` per line")
    for name in REQUIRED_FIELDS:
        if meta.get(name) in (None, ""):
            raise ModelCardError("the front matter lacks a field", file=path, field=name,
                                 fix=f"add '{name}:' to the front matter")
    reviewed = meta["last_reviewed"]
    if isinstance(reviewed, str):
        try:
            reviewed = dt.date.fromisoformat(reviewed)
        except ValueError:
            reviewed = None
    if not isinstance(reviewed, dt.date) or isinstance(reviewed, dt.datetime):
        raise ModelCardError(f"last_reviewed is {meta['last_reviewed']!r}, not a date",
                             file=path, field="last_reviewed",
                             fix="write the day of the last review as YYYY-MM-DD")
    every = meta["review_every_days"]
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ModelCardError(f"review_every_days is {every!r}, not a whole number of days "
                             ">= 1", file=path, field="review_every_days",
                             fix="write review_every_days: 180")
    return ModelCard(path=path, card_id=str(meta["id"]), version=str(meta["version"]),
                     owner=str(meta["owner"]), last_reviewed=reviewed,
                     review_every_days=every, body=body, content_hash=sha256_file(path))


def checked_card(card: ModelCard, values: Mapping[str, object], *,
                 slices: Iterable[SliceFacts], fallbacks: Iterable[str],
                 levers: Iterable[str], today: dt.date | None = None) -> str:
    """The card rendered with a version's numbers, once it is fit to ship.

    Refused: a section missing or empty once rendered; a card past its review date; a card
    that describes another system (a slice the version was built from, its classification,
    a fallback of policies/fallbacks.yaml or an on-call flag not named in the section about
    it). One error lists every problem, so one edit fixes them all.
    """
    rendered = render_model_card(card, values)
    today = today or dt.date.today()
    sections = sections_of(rendered)
    problems, fixes = [], []
    missing = [name for name in SECTIONS if not sections.get(name)]
    if missing:
        problems.append("missing or empty section(s): " + ", ".join(f"'## {m}'" for m in missing))
        fixes.append("write the missing sections (policies/model_card.md in the repository "
                     "shows what each holds)")
    if card.due() < today:
        problems.append(f"stale: last reviewed {card.last_reviewed.isoformat()}, and it is "
                        f"reviewed every {card.review_every_days} days (due "
                        f"{card.due().isoformat()})")
        fixes.append("review every section against the model, then set last_reviewed to "
                     "today's date and bump version")
    data, levers_text = sections.get(DATA_SECTION, ""), sections.get(LEVERS_SECTION, "")
    slices = list(slices)
    unnamed = sorted({f"{s.name} ({s.classification})" for s in slices
                      if s.name not in data or s.classification not in data})
    if data and unnamed:
        problems.append(f"stale: section '{DATA_SECTION}' does not name the slice(s) "
                        "this version was built from, with their classification: "
                        + ", ".join(unnamed))
        fixes.append(f"describe each slice's classification and retention under "
                     f"'## {DATA_SECTION}' (or loop over `slices`)")
    unnamed_levers = [name for name in (*fallbacks, *levers) if f"`{name}`" not in levers_text]
    if levers_text and unnamed_levers:
        problems.append(f"stale: section '{LEVERS_SECTION}' does not name "
                        + ", ".join(unnamed_levers))
        fixes.append(f"describe each under '## {LEVERS_SECTION}', written as `name`")
    if problems:
        raise ModelCardError("the model card is not fit to ship: " + "; ".join(problems),
                             file=card.path, field=missing[0] if missing else "sections",
                             fix="; ".join(fixes) + "; nothing was registered")
    return rendered


def render_model_card(card: ModelCard, values: Mapping[str, object]) -> str:
    """The card with a version's numbers in it; a name the card uses and is not given fails."""
    import jinja2

    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False,
                                     keep_trailing_newline=True)
    try:
        return environment.from_string(card.body).render(**values).strip() + "\n"
    except jinja2.TemplateError as exc:
        raise ModelCardError(f"the card cannot be rendered ({type(exc).__name__}: {exc})",
                             file=card.path, field="body",
                             fix="use only the values registration provides: "
                             + ", ".join(sorted(values)) + "; nothing was registered") from None


def summary(rendered: str, *, bullets: int = 3) -> dict[str, object]:
    """What the review card shows of the card: intended use in one line, the first bullets."""
    parts = sections_of(rendered)

    def first_sentence(text: str) -> str:
        flat = " ".join(text.split())
        end = flat.find(". ")
        return flat if end < 0 else flat[:end + 1]

    def items(text: str) -> list[str]:
        found, current = [], None
        for line in text.splitlines():
            if line.startswith("- "):
                current = line[2:].strip()
                found.append(current)
            elif current is not None and line.startswith("  ") and line.strip():
                found[-1] = f"{found[-1]} {line.strip()}"
        return found[:bullets]

    return {"intended_use": first_sentence(parts.get(SECTIONS[0], "")),
            "non_goals": items(parts.get(SECTIONS[2], "")),
            "failure_modes": items(parts.get(SECTIONS[3], ""))}
