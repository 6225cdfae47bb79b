"""The input guard's rules, declared by intent: injection, jailbreaks, extraction, exfiltration.

One module per intent (the finding's category), each a list of declared rules in the
notation of plimsoll/guard/notation.py: injection (direct, LLM01), jailbreak (LLM01),
extraction (the system prompt, LLM07), indirect (instructions planted in passages),
exfiltration (LLM02, LLM05), encoded (follow what you decode). Each rule names the intent
it detects, not one phrasing.
"""

from __future__ import annotations

from plimsoll.guard.notation import Rule
from plimsoll.guard.rules import encoded, exfiltration, extraction, indirect, injection, jailbreak

__all__ = ["DECLARED", "INTENTS", "RULES", "SCREENING_ORDER"]

INTENTS = (injection, jailbreak, extraction, indirect, exfiltration, encoded)


def _declared() -> dict[str, Rule]:
    """Every rule of every intent module, by id; an id declared twice is a mistake."""
    declared: dict[str, Rule] = {}
    for module in INTENTS:
        for rule in module.RULES:
            if rule.rule_id in declared:
                raise ValueError(f"rule {rule.rule_id!r} is declared twice ({module.__name__})")
            declared[rule.rule_id] = rule
    return declared


DECLARED = _declared()

# The order rules are screened in. Where several rules find the same span of one category
# (and in a passage every injection and jailbreak is an indirect injection), the first
# names the finding; the first rule that reads a decoded payload names the hidden one. This
# is the order the rules were tuned in on the red-team corpora; a new rule goes at the end
# unless it should name findings that an older one names now.
SCREENING_ORDER: tuple[str, ...] = (
    "override-instructions", "override-own-rules", "override-everything", "override-now",
    "new-instructions", "task-reassign", "prior-text-void", "stop-being", "role-markers",
    "end-of-input", "canary-phrase", "say-exactly", "output-only", "completion-priming",
    "authority-claim", "override-multilingual", "override-cjk", "new-identity-multilingual",
    "extract-multilingual", "persona-now", "act-as", "pretend", "rule-free", "named-jailbreak",
    "enter-mode", "stay-in-character", "refusal-suppression", "without-caveats", "dual-response",
    "grandma", "bedtime-story", "fiction-frame", "opposite-answer", "extract-system-prompt",
    "extract-your-rules", "what-were-you-told", "text-above", "repeat-from-start", "starting-with",
    "first-line-of", "secret-value", "spell-out", "prompt-in-format", "how-configured",
    "note-to-ai", "if-you-are-ai", "ai-reading-this", "any-ai-must", "when-asked-instead",
    "hide-from-user", "covert-action", "when-user-asks", "vocative-order", "hidden-markup",
    "markdown-image", "url-with-data", "send-to-destination", "dump-secrets", "secrets-you-hold",
    "other-users-data", "harvest-pii", "put-pii-in-answer", "decode-and-follow", "decode-then-obey",
    "encoded-instruction", "rules-void", "override-received", "completion-attack", "from-now-on",
    "sole-instruction", "authorised-instruction", "new-instructions-multilingual", "persona-load",
    "safety-off", "harmful-request", "adversarial-suffix", "rules-operating-under",
    "your-system-prompt", "verbatim-instructions", "text-before-user", "secret-letters",
    "configured-with-secret", "read-sensitive-files", "environ-out", "link-followed-by-secret",
    "harvest-secrets", "dump-knowledge", "address-the-ai", "meant-for-ai", "agentic-no-confirm",
    "cleared-to-skip", "supersedes-everything", "replacement-instructions", "keys-in-your-config",
    "session-tokens", "run-in-your-sandbox", "uploaded-by-others", "drop-persona",
    "hereby-reconfigured", "at-the-ai", "do-what-it-says", "changing-your-rules", "treat-as-test",
    "everything-they-told-you", "obliged-to-help", "wrote-your-prompt", "beginning-of-memory",
    "extract-cjk", "others-asked", "look-up-person", "no-longer-have-to", "pretext",
    "harmful-request-2", "rules-you-must-follow", "secret-length", "comply-with-all",
    "hiding-instructions", "verbatim-multilingual", "jailbreak-cjk", "other-customer-chatted",
    "dns-exfiltration", "todo-for-ai", "harmful-request-3",
)
if sorted(SCREENING_ORDER) != sorted(DECLARED):
    raise ValueError("SCREENING_ORDER must list every declared rule once; unlisted: "
                     f"{sorted(set(DECLARED) - set(SCREENING_ORDER))}, undeclared: "
                     f"{sorted(set(SCREENING_ORDER) - set(DECLARED))}")
RULES: tuple[Rule, ...] = tuple(DECLARED[rule_id] for rule_id in SCREENING_ORDER)
