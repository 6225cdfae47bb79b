"""What the guard reports: findings with category, OWASP id, severity and span."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

CRITICAL = "critical"
SOFT = "soft"

# OWASP Top 10 for LLM Applications 2025.
OWASP = {
    "prompt_injection": "LLM01",
    "indirect_injection": "LLM01",
    "jailbreak": "LLM01",
    "encoded_payload": "LLM01",
    "data_exfiltration": "LLM02",
    "secret": "LLM02",
    "pii": "LLM02",
    "egress_url": "LLM05",
    "system_prompt_extraction": "LLM07",
    "system_prompt_leak": "LLM07",
    # Inputs refused before screening (too long, not a string, not valid Unicode): LLM10,
    # Unbounded Consumption, whose first mitigation is validating input size and form.
    "input_too_long": "LLM10",
    "malformed_input": "LLM10",
}


@dataclass(frozen=True)
class Finding:
    """One thing the guard saw: what, how bad, where (character span in the screened text)."""

    category: str
    severity: str
    rule: str
    start: int
    end: int
    detail: str = ""

    @property
    def owasp(self) -> str:
        """The OWASP LLM Top 10 (2025) id of the category."""
        return OWASP[self.category]

    def as_dict(self) -> dict[str, object]:
        """JSON shape: category, owasp, severity, rule, span, detail."""
        data = asdict(self)
        start, end = data.pop("start"), data.pop("end")
        return {"category": self.category, "owasp": self.owasp, **{
            k: v for k, v in data.items() if k != "category"}, "span": [start, end]}


@dataclass(frozen=True)
class Verdict:
    """All findings for one text; `blocked` when any is critical."""

    findings: tuple[Finding, ...] = field(default_factory=tuple)

    @property
    def flagged(self) -> bool:
        """Any finding at all."""
        return bool(self.findings)

    @property
    def blocked(self) -> bool:
        """A critical finding: the text must not pass."""
        return any(f.severity == CRITICAL for f in self.findings)

    @property
    def severity(self) -> str | None:
        """The worst severity, or None when clean."""
        if self.blocked:
            return CRITICAL
        return SOFT if self.findings else None

    def categories(self) -> list[str]:
        """Distinct categories, in order of first finding."""
        return list(dict.fromkeys(f.category for f in self.findings))

    def as_dict(self) -> dict[str, object]:
        """JSON shape for `plimsoll guard` and answer metadata."""
        return {"flagged": self.flagged, "blocked": self.blocked, "severity": self.severity,
                "findings": [f.as_dict() for f in self.findings]}

    def __add__(self, other: Verdict) -> Verdict:
        return Verdict(self.findings + other.findings)
