"""The guard: screens inputs, retrieved passages and answers at query time (OWASP LLM Top 10).

`Guard.screen_input` (LLM01 injection and jailbreaks, LLM07 prompt extraction, encoded
payloads), `Guard.screen_passage` (indirect injection in retrieved content) and
`Guard.screen_output` (LLM02 secrets and personal data, LLM05 egress URLs, LLM07 system
prompt echo). Each returns a Verdict of Findings with category, OWASP id, severity and span.
Each screen first admits its text (admission.py): over its stage's length limit or not a
string, it is refused unread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from plimsoll.common.errors import PlimsollError
from plimsoll.common.files import load_yaml_model
from plimsoll.guard.admission import admit
from plimsoll.guard.classifier import InjectionClassifier, load_classifier
from plimsoll.guard.findings import CRITICAL, OWASP, SOFT, Finding, Verdict
from plimsoll.guard.input_guard import screen_input
from plimsoll.guard.output_guard import SystemPromptLeak, redact, screen_output

__all__ = ["CRITICAL", "OWASP", "SOFT", "Finding", "Guard", "GuardPolicy", "Verdict",
           "load_guard_policy", "redact"]

# A count of characters, written as a number ("4000" in quotes is a typo, not a limit).
CharacterLimit = Annotated[StrictInt, Field(gt=0)]
DEFAULT_ALLOWLIST = ("docs.python.org", "*.python.org", "python.org", "pypi.org",
                     "example.com", "*.example.com", "example.org", "example.net",
                     "localhost")


class GuardPolicy(BaseModel):
    """policies/guard.yaml: allowed links and addresses, and the longest text each screen reads.

    A text over its stage's limit is refused unread, so no input can make a screen slow.
    """

    model_config = ConfigDict(extra="forbid")
    version: int = 1
    egress_allowlist: list[str] = Field(default_factory=lambda: list(DEFAULT_ALLOWLIST))
    email_allowlist: list[str] = Field(default_factory=lambda: ["*.python.org", "python.org",
                                                               "example.com", "example.org"])
    # The longest question in the eval and red-team sets is under 1,000 characters, an index
    # chunk (160 words) of the Python docs under 4,000, and an answer quotes one sentence of
    # each of two passages: each limit leaves ample room, and bounds what a screen costs.
    max_input_chars: CharacterLimit = 4000
    max_passage_chars: CharacterLimit = 20000
    max_output_chars: CharacterLimit = 20000


LIMIT_FIELDS = {"input": "max_input_chars", "passage": "max_passage_chars",
                "output": "max_output_chars"}


LIMIT_FIX = "a positive whole number of characters, e.g. max_input_chars: 4000"
HOSTS_FIX = ("egress_allowlist and email_allowlist are lists of host names ('*.example.org' "
             "matches subdomains)")
# The fix for each kind of mistake pydantic reports (the field is named with it).
POLICY_FIXES = {
    "int_type": LIMIT_FIX, "greater_than": LIMIT_FIX,
    "list_type": HOSTS_FIX, "string_type": HOSTS_FIX,
    "int_parsing": "version is a whole number: version: 1",
    "int_from_float": "version is a whole number: version: 1",
    "extra_forbidden": "remove the key or correct its spelling: the fields are "
                       + ", ".join(GuardPolicy.model_fields),
}


def load_guard_policy(path: Path) -> GuardPolicy:
    """Read the guard policy; a wrong key or type names the file, line, field and fix."""
    path = Path(path)
    if not path.exists():
        raise PlimsollError("guard policy not found", file=path,
                            fix="create it (see policies/guard.yaml)")
    if not path.is_file():
        raise PlimsollError("cannot read the guard policy (it is not a file)", file=path,
                            fix="point at a readable YAML file")
    return load_yaml_model(path, GuardPolicy, error=PlimsollError, what="the guard policy",
                           fixes=POLICY_FIXES, fix="see policies/guard.yaml for each field")


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

    def admit(self, text: object, stage: str = "input") -> tuple[str | None, Verdict]:
        """The text a screen of `stage` reads (None: refused unread) and what that found."""
        field = LIMIT_FIELDS[stage]
        return admit(text, limit=getattr(self.policy, field), field=field)

    def screen_input(self, text: object) -> Verdict:
        """A user's question: direct injection, jailbreaks, extraction, exfiltration."""
        admitted, verdict = self.admit(text, "input")
        if admitted is None:
            return verdict
        return verdict + screen_input(admitted, source="user", classifier=self.classifier)

    def screen_passage(self, text: object) -> Verdict:
        """A retrieved passage: instructions in it are indirect injections."""
        admitted, verdict = self.admit(text, "passage")
        if admitted is None:
            return verdict
        return verdict + screen_input(admitted, source="passage", classifier=self.classifier)

    def screen_output(self, text: object) -> Verdict:
        """An answer: secrets, personal data, off-allowlist links, the system prompt."""
        admitted, verdict = self.admit(text, "output")
        if admitted is None:
            return verdict
        return verdict + screen_output(admitted, egress_allowlist=self._egress,
                                       email_allowlist=self._emails,
                                       system_prompt=self._system_prompt)
