"""Screen what comes in: user questions (direct) and retrieved passages (indirect)."""

from __future__ import annotations

import re

from plimsoll.guard.classifier import InjectionClassifier, load_classifier
from plimsoll.guard.findings import CRITICAL, SOFT, Finding, Verdict
from plimsoll.guard.notation import Rule
from plimsoll.guard.rules import RULES
from plimsoll.guard.views import View, decoded_views, normalise

QUOTES = "'\"‘’“”`"
DISCUSSION = re.compile(r"\b(?:attacks?|attackers?|injections?|mitigat\w*|defen[cd]\w*|"
                        r"jailbreaks?|red[- ]team\w*|naive apps?|leaks?|exploit\w*|"
                        r"vulnerab\w*|works surprisingly|guard\w*|filter\w*)\b")
REPORTING = re.compile(r"\b(?:for example|example|such as|like|e\.g\.|telling|tells|asking|"
                       r"asks|by asking|requests? to|phrases?|attempts? to|convinced to|"
                       r"tricked into|made to|attackers?|adversar\w*|malicious)\b")
# In a retrieved passage every instruction aimed at the assistant is an indirect injection.
PASSAGE_CATEGORY = {"prompt_injection": "indirect_injection", "jailbreak": "indirect_injection"}


def screen_input(text: str, *, source: str = "user", rules: tuple[Rule, ...] = RULES,
                 classifier: InjectionClassifier | str | None = "shipped") -> Verdict:
    """Findings for one input; `source="passage"` screens retrieved content.

    Rules and decoders find named patterns; the classifier (plimsoll/guard/classifier.py)
    scores the whole text. A rule finding stands when the classifier gives the text at least
    its `confirm` score, or when it is a payload the decoders had to uncover (the classifier
    reads only the surface); the classifier alone flags at its `threshold`.
    `classifier=None` screens with the rules alone.
    """
    base = normalise(text)
    findings: list[Finding] = []
    fired: set[str] = set()
    expository = source == "passage" and len(set(DISCUSSION.findall(base.text))) >= 2
    for rule in rules:
        if rule.user_only and source == "passage":
            continue
        match = rule.search(base.text)
        if match and (_quoted_mention(base.text, match)
                      or (expository and _reported(base.text, match))):
            continue
        if match:
            fired.add(rule.rule_id)
            start, end = base.original_span(*match.span(), len(text))
            findings.append(Finding(_category(rule.category, source), rule.severity,
                                    rule.rule_id, start, end, match.group()[:120]))
    findings += _obfuscation(text, base)
    for view in decoded_views(text, base):
        findings += _hidden(view, rules, fired)
    if classifier == "shipped":
        classifier = load_classifier()
    # Nothing left to read (only whitespace, controls, invisible characters): the model's
    # prior alone would score it as an attack.
    if classifier is not None and base.text.strip():
        findings = _weigh(findings, classifier.score(base.text), classifier, source, len(text))
    return Verdict(_distinct(findings))


def _weigh(findings: list[Finding], score: float, classifier: InjectionClassifier,
           source: str, length: int) -> list[Finding]:
    """Rule findings the classifier confirms (decoded payloads stand), plus its own."""
    kept = [f for f in findings if score >= classifier.confirm
            or (f.category == "encoded_payload" and f.severity == CRITICAL)]
    if score >= classifier.threshold and not any(f.severity == CRITICAL for f in kept):
        kept.append(Finding(_category("prompt_injection", source), CRITICAL,
                            "learned-classifier", 0, length, f"P(attack)={score:.2f}"))
    return kept


def _distinct(findings: list[Finding]) -> tuple[Finding, ...]:
    """One finding per category and place: rules that agree on a span report it once."""
    kept: list[Finding] = []
    for finding in findings:
        if not any(k.category == finding.category and k.start < finding.end
                   and finding.start < k.end for k in kept):
            kept.append(finding)
    return tuple(kept)


def _quoted_mention(text: str, match) -> bool:
    """An attack phrase quoted in a text about attacks: a mention, not an instruction.

    As in "why 'ignore previous instructions' still works against naive apps".
    """
    before = text[max(0, match.start() - 2):match.start()]
    after = text[match.end():match.end() + 2]
    quoted = any(q in before for q in QUOTES) and any(q in after for q in QUOTES)
    return quoted and bool(DISCUSSION.search(text))


def _reported(text: str, match) -> bool:
    """An attack described in a passage about attacks, not addressed to the reader.

    As in "a hidden line telling the model to ignore ..." or "attackers encode them".
    """
    return bool(REPORTING.search(text[max(0, match.start() - 80):match.start()]))


def _category(category: str, source: str) -> str:
    return PASSAGE_CATEGORY.get(category, category) if source == "passage" else category


def _hidden(view: View, rules: tuple[Rule, ...], fired: set[str]) -> list[Finding]:
    """A rule that reads the decoded text but not the surface: a hidden payload."""
    for rule in rules:
        if rule.rule_id in fired or rule.category == "encoded_payload":
            continue
        match = rule.search(view.text)
        if match:
            fired.add(rule.rule_id)
            return [Finding("encoded_payload", CRITICAL, f"{view.name}:{rule.rule_id}",
                            *view.original_span(*match.span()),
                            f"{view.name} hides: {match.group()[:100]}")]
    return []


def _obfuscation(text: str, base) -> list[Finding]:
    """Characters with no business in a question or a documentation passage."""
    findings = []
    if base.tag_characters:
        findings.append(Finding("encoded_payload", CRITICAL, "unicode-tag-characters",
                                base.tag_characters[0], base.tag_characters[-1] + 1,
                                f"{len(base.tag_characters)} invisible Unicode tag characters"))
    if base.bidi_controls:
        findings.append(Finding("encoded_payload", SOFT, "bidi-controls",
                                base.bidi_controls[0], base.bidi_controls[-1] + 1,
                                "bidirectional control characters reorder what is shown"))
    if base.invisible_in_words:
        findings.append(Finding("encoded_payload", SOFT, "invisible-characters",
                                base.invisible_in_words[0], base.invisible_in_words[-1] + 1,
                                f"{len(base.invisible_in_words)} invisible or control "
                                "characters inside words"))
    for start, end in base.homoglyph_words[:1]:
        findings.append(Finding("encoded_payload", SOFT, "homoglyphs", start, end,
                                f"'{text[start:end]}' mixes Latin with look-alike letters"))
    return findings
