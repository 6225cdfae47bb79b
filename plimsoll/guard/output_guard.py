"""Screen what goes out: secrets, personal data, egress URLs and the system prompt.

Secrets come from detect-secrets' detectors (plus one for key formats it predates),
phone numbers from Google's libphonenumber, identifiers and their checksums (cards with
Luhn, IBANs, national ids) from python-stdnum; only the glue lives here.
"""

from __future__ import annotations

import ipaddress
import re
from functools import cache
from urllib.parse import urlsplit

from detect_secrets.plugins.base import RegexBasedDetector

from plimsoll.guard.findings import CRITICAL, SOFT, Finding, Verdict

URL = re.compile(r"(?:https?|ftp)://[^\s<>\"'`)\]]+|\bwww\.[a-z0-9-]+\.[^\s<>\"'`)\]]+", re.I)
# The alt text stops at "[" (as Markdown's own), runs are taken whole (possessive) and
# the title is bounded: each search from a "![" then reads a bounded stretch of text.
MARKDOWN_IMAGE = re.compile(r"!\[[^\[\]\n]*+\]\(\s*+<?([^)\s>]++)(?:[^)\n]{0,300}\))?")
# The attributes before src stop at "<": a search from each "<img" of "<img <img <img ..."
# would otherwise read to the end of the text. (A link in a value holding "<" is still a link.)
HTML_IMAGE = re.compile(r"<img\b[^<>]*?\bsrc\s*=\s*[\"']?([^\"'\s>]+)", re.I)
EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@((?:[a-z0-9-]+\.)+[a-z]{2,})\b", re.I)
CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
IPV6 = re.compile(r"(?<![\w:])(?:[0-9a-f]{1,4}:){2,7}[0-9a-f]{0,4}(?![\w:])", re.I)
SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
NINO = re.compile(r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b")
AADHAAR = re.compile(r"(?<![\d-])(?<!\d )[2-9]\d{3}[ -]\d{4}[ -]\d{4}(?![ -]?\d)")
DNI = re.compile(r"\b\d{8}-?[A-Z]\b")
CODICE_FISCALE = re.compile(r"\b[A-Z]{6}\d{2}[A-Z]\d{2}[A-Z]\d{3}[A-Z]\b")
WORDS = re.compile(r"[a-z0-9]+")
SHINGLE = 8  # words in a row shared with the system prompt that count as a leak
SECRET_WINDOW, SECRET_OVERLAP = 1000, 300  # characters (see _windows)
QUERY_DATA = re.compile(r"[?&#][^=&#?]{1,100}=[^&#]{24,}|[{}$<>]|%7b|%24", re.I)


class ApiKeyDetector(RegexBasedDetector):
    """Key formats newer than detect-secrets 1.5's detectors (OpenAI project keys and more)."""

    secret_type = "API key"
    denylist = (
        re.compile(r"\bsk-(?:proj|svcacct|admin|ant-api\d\d|ant)-[A-Za-z0-9_-]{20,}"),
        re.compile(r"\bsk-[A-Za-z0-9]{32,}\b"),
        re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
        re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"),
        re.compile(r"\bgithub_pat_[A-Za-z0-9_]{40,}\b"),
        re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}\b"),
        re.compile(r"\b(?:xox[abposr]|xapp)-[A-Za-z0-9-]{10,}\b"),
        re.compile(r"\bdop_v1_[a-f0-9]{64}\b"),
    )


@cache
def _secret_detectors() -> tuple:
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    # High-entropy detectors flag ordinary prose and hashes; IPs are judged below.
    skipped = ("HighEntropy", "IPPublicDetector")
    return (*(cls() for cls in get_mapping_from_secret_type_to_class().values()
              if not any(s in cls.__name__ for s in skipped)), ApiKeyDetector())


def host_allowed(host: str, allowlist: tuple[str, ...]) -> bool:
    """`docs.python.org` matches `docs.python.org` and `*.python.org`."""
    host = host.lower().rstrip(".")
    for entry in allowlist:
        entry = entry.lower()
        if entry.startswith("*."):
            if host == entry[2:] or host.endswith(entry[1:]):
                return True
        elif host == entry:
            return True
    return False


def scan_secrets(text: str) -> list[Finding]:
    """API keys, tokens, private keys, passwords in assignments."""
    findings, seen = [], set()
    offset = 0
    for line in text.split("\n"):
        for start, piece in _windows(line) if line.strip() else ():
            for detector in _secret_detectors():
                for secret in detector.analyze_line(filename="output", line=piece,
                                                    line_number=1):
                    value = secret.secret_value or ""
                    at = piece.find(value) if value else -1
                    first = offset + start + (at if at >= 0 else 0)
                    last = first + (len(value) if at >= 0 else len(piece))
                    if (secret.type, first, last) not in seen:  # found again in an overlap
                        seen.add((secret.type, first, last))
                        findings.append(Finding("secret", CRITICAL, f"secret:{secret.type}",
                                                first, last, secret.type))
        offset += len(line) + 1
    return findings


def _windows(line: str):
    """(start, piece) covering the line: itself, or overlapping windows of a long one.

    Some detect-secrets patterns backtrack quadratically (NpmDetector over a run of "/",
    OpenAIDetector over "sk-sk-..."); windows bound what one search can cost. A secret up
    to SECRET_OVERLAP characters long lies whole in some window.
    """
    if len(line) <= SECRET_WINDOW:
        yield 0, line
        return
    for start in range(0, len(line) - SECRET_OVERLAP, SECRET_WINDOW - SECRET_OVERLAP):
        yield start, line[start:start + SECRET_WINDOW]


def scan_personal_data(text: str, email_allowlist: tuple[str, ...] = ()) -> list[Finding]:
    """Emails, phones, IPs (soft); cards, IBANs, national ids (critical)."""
    import phonenumbers
    from stdnum import iban, luhn
    from stdnum.es import dni
    from stdnum.in_ import aadhaar
    from stdnum.it import codicefiscale
    from stdnum.us import ssn

    findings: list[Finding] = []
    taken: list[tuple[int, int]] = []

    def add(category: str, severity: str, rule: str, span: tuple[int, int], detail: str):
        if any(a < span[1] and span[0] < b for a, b in taken):
            return
        taken.append(span)
        findings.append(Finding(category, severity, rule, *span, detail))

    for match in IBAN.finditer(text):
        if iban.is_valid(match.group()):
            add("pii", CRITICAL, "pii:iban", match.span(), "IBAN (valid checksum)")
    for pattern, validator, label in ((SSN, ssn.is_valid, "US social security number"),
                                      (AADHAAR, aadhaar.is_valid, "Aadhaar number"),
                                      (DNI, dni.is_valid, "Spanish DNI"),
                                      (CODICE_FISCALE, codicefiscale.is_valid,
                                       "Italian codice fiscale")):
        for match in pattern.finditer(text):
            if validator(match.group()):
                add("pii", CRITICAL, "pii:national-id", match.span(), label)
    for match in NINO.finditer(text):
        add("pii", CRITICAL, "pii:national-id", match.span(), "UK National Insurance number")
    for match in CARD.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if 13 <= len(digits) <= 19 and luhn.is_valid(digits) and len(set(digits)) > 1:
            add("pii", CRITICAL, "pii:card-number", match.span(), "card number (passes Luhn)")
    for match in EMAIL.finditer(text):
        if not _domain_allowed(match.group(1), email_allowlist):
            add("pii", SOFT, "pii:email", match.span(), "email address")
    if sum(c.isdigit() for c in text) >= 7:
        for number in phonenumbers.PhoneNumberMatcher(text, "US"):
            if number.raw_string.isdigit():
                continue  # a bare digit run in documentation is a number, not a phone
            add("pii", SOFT, "pii:phone", (number.start, number.end), "phone number")
    for pattern in (IPV4, IPV6):
        for match in pattern.finditer(text):
            try:
                address = ipaddress.ip_address(match.group())
            except ValueError:
                continue
            if address.is_global:
                add("pii", SOFT, "pii:ip-address", match.span(), "public IP address")
    return findings


def _domain_allowed(domain: str, allowlist: tuple[str, ...]) -> bool:
    return host_allowed(domain, allowlist)


def scan_egress(text: str, allowlist: tuple[str, ...]) -> list[Finding]:
    """Links and images pointing at hosts not on the egress allowlist."""
    findings = []
    images = [(m.span(), m.group(1)) for m in MARKDOWN_IMAGE.finditer(text)]
    images += [(m.span(), m.group(1)) for m in HTML_IMAGE.finditer(text)]
    for span, target in images:
        host = _host(target)
        if host is None or not host_allowed(host, allowlist):
            findings.append(Finding("egress_url", CRITICAL, "egress:image", *span,
                                    f"image from {host or target[:60]} (not on the allowlist)"))
    image_spans = [span for span, _ in images]
    for match in URL.finditer(text):
        if any(a <= match.start() < b for a, b in image_spans):
            continue
        host = _host(match.group())
        if host is not None and host_allowed(host, allowlist):
            continue
        carries_data = bool(QUERY_DATA.search(match.group()))
        findings.append(Finding(
            "egress_url", CRITICAL if carries_data else SOFT,
            "egress:url-with-data" if carries_data else "egress:link", *match.span(),
            f"link to {host or '?'} (not on the allowlist)"))
    return findings


def _host(target: str) -> str | None:
    if target.startswith("//"):
        target = "http:" + target
    elif target.lower().startswith("www."):
        target = "http://" + target
    try:
        return urlsplit(target).hostname
    except ValueError:
        return None


class SystemPromptLeak:
    """Runs of words shared with the system prompt."""

    def __init__(self, system_prompt: str) -> None:
        words = WORDS.findall(system_prompt.lower())
        self.shingles = {tuple(words[i:i + SHINGLE]) for i in range(len(words) - SHINGLE + 1)}

    def scan(self, text: str) -> list[Finding]:
        """One finding at the first shared run."""
        if not self.shingles:
            return []
        matches = list(WORDS.finditer(text.lower()))
        words = [m.group() for m in matches]
        for i in range(len(words) - SHINGLE + 1):
            if tuple(words[i:i + SHINGLE]) in self.shingles:
                return [Finding("system_prompt_leak", CRITICAL, "system-prompt-echo",
                                matches[i].start(), matches[i + SHINGLE - 1].end(),
                                f"{SHINGLE}+ words of the system prompt")]
        return []


def screen_output(text: str, *, egress_allowlist: tuple[str, ...] = (),
                  email_allowlist: tuple[str, ...] = (),
                  system_prompt: SystemPromptLeak | None = None) -> Verdict:
    """All findings for one answer."""
    findings = scan_secrets(text)
    findings += scan_egress(text, egress_allowlist)
    findings += scan_personal_data(text, email_allowlist)
    if system_prompt is not None:
        findings += system_prompt.scan(text)
    return Verdict(tuple(sorted(findings, key=lambda f: (f.start, f.end))))


def redact(text: str, verdict: Verdict) -> str:
    """The text with every finding's span replaced by a marker naming what was removed."""
    pieces, cursor = [], 0
    for finding in sorted(verdict.findings, key=lambda f: f.start):
        if finding.start < cursor:
            continue
        pieces += [text[cursor:finding.start], f"[removed: {finding.category}]"]
        cursor = finding.end
    pieces.append(text[cursor:])
    return "".join(pieces)
