"""Lint prompt templates: front matter, variables, hard-to-diff characters, secrets, rendering.

Every finding has a rule id and a file:line, so CI output points at the fix.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

RULES = {
    "PL001": "front matter present and valid (id, semantic version, owner, variables)",
    "PL002": "every variable the template uses is declared",
    "PL003": "every declared variable is used",
    "PL004": "no trailing whitespace",
    "PL005": "no tab characters",
    "PL006": "no CRLF line endings",
    "PL007": "no zero-width, bidi or other invisible characters",
    "PL008": "no confusable (homoglyph) characters",
    "PL009": "lines within the length bound",
    "PL010": "no secrets",
    "PL011": "no personal data (emails, phone numbers, card numbers)",
    "PL012": "the template renders with sample values",
}
SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
WORD = re.compile(r"\w+", re.UNICODE)
OWNER_DOMAINS = ("@plimsoll",)  # owners are team addresses, not personal data


@dataclass(frozen=True)
class Finding:
    """One problem, where it is, and what rule it breaks."""

    rule: str
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.rule} {self.message}"

    def as_dict(self) -> dict[str, object]:
        """For --json."""
        return asdict(self)


class _Sample:
    """A stand-in value: any attribute, any index, iterable once, prints as 'sample'."""

    def __getattr__(self, _name: str) -> _Sample:
        return _Sample()

    def __getitem__(self, _key: object) -> _Sample:
        return _Sample()

    def __iter__(self):
        yield _Sample()

    def __bool__(self) -> bool:
        return True

    def __str__(self) -> str:
        return "sample"


def lint_file(path: Path, max_line_length: int = 100) -> list[Finding]:
    """All findings for one template file."""
    raw = path.read_bytes()
    file = str(path)
    findings: list[Finding] = []
    text = raw.decode("utf-8", errors="replace")
    for number, line in enumerate(text.split("\n"), start=1):
        findings += _line_findings(file, number, line, max_line_length)
    if not text.startswith("---\n") and not text.startswith("---\r\n"):
        return [Finding("PL001", file, 1, "no front matter: start with a --- block holding "
                        "id, version, owner, variables"), *findings]
    normalized = text.replace("\r\n", "\n")
    end = normalized.find("\n---\n", 4)
    if end == -1:
        return [Finding("PL001", file, 1, "front matter is not closed by a --- line"),
                *findings]
    header, body = normalized[4:end], normalized[end + 5:]
    body_offset = normalized[:end + 5].count("\n")
    try:
        meta = yaml.safe_load(header) or {}
    except yaml.YAMLError as exc:
        return [Finding("PL001", file, 2, f"front matter is not valid YAML ({exc})"),
                *findings]
    findings += _front_matter_findings(file, meta)
    declared = set(meta.get("variables") or []) if isinstance(meta, dict) else set()
    findings += _template_findings(file, body, body_offset, declared)
    return sorted(findings, key=lambda f: (f.line, f.rule))


def _front_matter_findings(file: str, meta: object) -> list[Finding]:
    if not isinstance(meta, dict):
        return [Finding("PL001", file, 2, "front matter must be a mapping")]
    findings = []
    for field in ("id", "version", "owner", "variables"):
        if field not in meta:
            findings.append(Finding("PL001", file, 2, f"front matter lacks '{field}'"))
    if "version" in meta and not SEMVER.match(str(meta["version"])):
        findings.append(Finding("PL001", file, 2, f"version '{meta['version']}' is not a "
                                "semantic version (MAJOR.MINOR.PATCH)"))
    variables = meta.get("variables")
    if "variables" in meta and (not isinstance(variables, list) or not all(
            isinstance(v, str) and IDENTIFIER.match(v) for v in variables)):
        findings.append(Finding("PL001", file, 2, "variables must be a list of identifiers"))
    return findings


def _line_findings(file: str, number: int, line: str, max_length: int) -> list[Finding]:
    findings = []
    if line.endswith("\r"):
        findings.append(Finding("PL006", file, number, "CRLF line ending: save with LF"))
        line = line[:-1]
    if line != line.rstrip(" \t"):
        findings.append(Finding("PL004", file, number, "trailing whitespace"))
    if "\t" in line:
        findings.append(Finding("PL005", file, number, "tab character: use spaces"))
    for char in line:
        if unicodedata.category(char) in ("Cf", "Co", "Cn") or 0xE0000 <= ord(char) <= 0xE007F:
            findings.append(Finding("PL007", file, number, f"invisible character "
                                    f"U+{ord(char):04X} ({unicodedata.name(char, 'unnamed')})"))
            break
    findings += _confusables(file, number, line)
    if len(line) > max_length:
        findings.append(Finding("PL009", file, number,
                                f"line is {len(line)} characters (limit {max_length})"))
    findings += _secrets(file, number, line)
    findings += _personal_data(file, number, line)
    return findings


def _confusables(file: str, number: int, line: str) -> list[Finding]:
    from confusable_homoglyphs import confusables

    for word in WORD.findall(line):
        if not word.isascii() and confusables.is_dangerous(word):
            return [Finding("PL008", file, number, f"'{word}' mixes scripts with look-alike "
                            "characters")]
    return []


def _secrets(file: str, number: int, line: str) -> list[Finding]:
    from plimsoll.guard.output_guard import scan_secrets

    kinds = sorted({finding.detail for finding in scan_secrets(line)})
    return [Finding("PL010", file, number, f"possible secret ({kind}): remove it")
            for kind in kinds]


def _personal_data(file: str, number: int, line: str) -> list[Finding]:
    """The output guard's personal-data scan (emails, phones, cards with Luhn, IBANs...)."""
    from plimsoll.guard.output_guard import scan_personal_data

    findings = []
    for found in scan_personal_data(line):
        value = line[found.start:found.end]
        if found.rule == "pii:email" and value.endswith(OWNER_DOMAINS):
            continue
        shown = f" {value}" if found.severity == "soft" else ""  # never echo a card number
        findings.append(Finding("PL011", file, number, f"{found.detail}{shown}"))
    return findings


def _template_findings(file: str, body: str, offset: int, declared: set[str]) -> list[Finding]:
    import jinja2
    from jinja2 import meta as jinja_meta

    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    try:
        used = jinja_meta.find_undeclared_variables(environment.parse(body))
    except jinja2.TemplateSyntaxError as exc:
        return [Finding("PL012", file, offset + (exc.lineno or 1), f"does not parse: {exc}")]
    findings = []
    for name in sorted(used - declared):
        findings.append(Finding("PL002", file, offset + _first_line(body, name),
                                f"variable '{name}' is used but not declared in variables"))
    for name in sorted(declared - used):
        findings.append(Finding("PL003", file, 2, f"variable '{name}' is declared but unused"))
    if not used - declared:
        try:
            environment.from_string(body).render(**{name: _Sample() for name in declared})
        except Exception as exc:  # filters and tests can raise anything while rendering
            findings.append(Finding("PL012", file, offset + 1,
                                    f"does not render: {type(exc).__name__}: {exc}"))
    return findings


def _first_line(body: str, name: str) -> int:
    pattern = re.compile(rf"\b{re.escape(name)}\b")
    for number, line in enumerate(body.split("\n"), start=1):
        if pattern.search(line):
            return number
    return 1


def lint_paths(paths: list[Path], max_line_length: int = 100) -> tuple[list[Path], list[Finding]]:
    """Templates found (*.md under directories, or files as given) and their findings."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(path.rglob("*.md"))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(path)
    findings = [f for file in files for f in lint_file(file, max_line_length)]
    return files, findings
