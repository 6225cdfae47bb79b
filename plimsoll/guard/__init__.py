"""The guard: screens inputs, retrieved passages and answers at query time (OWASP LLM Top 10).

`Guard.screen_input` (LLM01 injection and jailbreaks, LLM07 prompt extraction, encoded
payloads), `Guard.screen_passage` (indirect injection in retrieved content) and
`Guard.screen_output` (LLM02 secrets and personal data, LLM05 egress URLs, LLM07 system
prompt echo). Each returns a Verdict of Findings with category, OWASP id, severity and span.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from plimsoll.errors import PlimsollError
from plimsoll.guard.classifier import InjectionClassifier, load_classifier
from plimsoll.guard.findings import CRITICAL, OWASP, SOFT, Finding, Verdict
from plimsoll.guard.input_guard import screen_input
from plimsoll.guard.output_guard import SystemPromptLeak, redact, screen_output

__all__ = ["CRITICAL", "OWASP", "SOFT", "Finding", "Guard", "GuardPolicy", "Verdict",
           "load_guard_policy", "redact"]

DEFAULT_ALLOWLIST = ("docs.python.org", "*.python.org", "python.org", "pypi.org",
                     "example.com", "*.example.com", "example.org", "example.net",
                     "localhost")


class GuardPolicy(BaseModel):
    """policies/guard.yaml: where answers may link to, whose addresses are not personal."""

    model_config = ConfigDict(extra="forbid")
    version: int = 1
    egress_allowlist: list[str] = Field(default_factory=lambda: list(DEFAULT_ALLOWLIST))
    email_allowlist: list[str] = Field(default_factory=lambda: ["*.python.org", "python.org",
                                                               "example.com", "example.org"])


def load_guard_policy(path: Path) -> GuardPolicy:
    """Read the guard policy; a wrong key or type names the field and the fix."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return GuardPolicy.model_validate(raw)
    except FileNotFoundError:
        raise PlimsollError("guard policy not found", file=path,
                            fix="create it (see policies/guard.yaml)") from None
    except yaml.YAMLError as exc:
        raise PlimsollError(f"not valid YAML ({exc})", file=path, fix="fix the syntax") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        raise PlimsollError(first["msg"], file=path,
                            field=".".join(str(p) for p in first["loc"]),
                            fix="egress_allowlist and email_allowlist are lists of host "
                            "names ('*.example.org' matches subdomains)") from None


class Guard:
    """The three screens with one policy and one system prompt."""

    def __init__(self, policy: GuardPolicy | None = None, system_prompt: str = "",
                 classifier: InjectionClassifier | str | None = "shipped") -> None:
        """`classifier`: the shipped injection model, another one, or None (rules alone)."""
        self.policy = policy or GuardPolicy()
        self.classifier = load_classifier() if classifier == "shipped" else classifier
        self._egress = tuple(self.policy.egress_allowlist)
        self._emails = tuple(self.policy.email_allowlist)
        self.system_prompt_text = system_prompt
        self._system_prompt = SystemPromptLeak(system_prompt) if system_prompt else None

    def screen_input(self, text: str) -> Verdict:
        """A user's question: direct injection, jailbreaks, extraction, exfiltration."""
        return screen_input(text, source="user", classifier=self.classifier)

    def screen_passage(self, text: str) -> Verdict:
        """A retrieved passage: instructions in it are indirect injections."""
        return screen_input(text, source="passage", classifier=self.classifier)

    def screen_output(self, text: str) -> Verdict:
        """An answer: secrets, personal data, off-allowlist links, the system prompt."""
        return screen_output(text, egress_allowlist=self._egress,
                             email_allowlist=self._emails, system_prompt=self._system_prompt)
