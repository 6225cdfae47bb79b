r"""The notation the guard's rules are written in, and the small compiler that reads it.

Rules read a normalised view (lower case, see views.py). In a pattern a space stands for
any run of separators, so "ignore previous" also reads "Ignore -- previous" and
"ignore_previous"; `\w` is a letter or digit and `\W` anything else. Everything else is a
Python regular expression. A rule may add a second pattern that must also match (`also`)
and a veto (`unless`, plain regular expression) for a benign context its vocabulary
shares (Windows "developer mode", logging "filters"). The notation keeps every search
linear in the length of the text (see WORD below). The rules themselves are declared by
intent in plimsoll/guard/rules/.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from plimsoll.guard.findings import CRITICAL

# In a pattern `\w` is a letter or digit and `\W` anything else: "_" separates words, as in
# "system_prompt". Words and separators share no character, and a run of separators is
# taken whole (possessive: never given back), so a text splits into words and separators
# one way only. With `\w` matching "_" as well, "no_no_no_..." split in exponentially many
# ways, and a few hundred characters held a screen for seconds. A space in a pattern is
# followed by a word, so taking the whole run loses no match; where a pattern needs
# punctuation after a space, it writes `[\W_]+` (which gives back) instead. The rest of a
# word before a boundary or a separator (`\w*\b`, `\w+ `) is taken whole the same way.
# tests/test_guard_limits.py times the screens on texts built to defeat this.
WORD = r"[^\W_]"
NON_WORD = r"[\W_]"


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """A pattern in the notation as a regular expression (DOTALL)."""
    out, index = [], 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            escape = pattern[index:index + 2]
            out.append({"\\w": WORD, "\\W": NON_WORD}.get(escape, escape))
            index += 2
            if escape == "\\w" and _ends_word(pattern, index):
                # The rest of a word before a boundary or a separator: all of it.
                out.append(pattern[index] + "+")
                index += 1
        elif char == "[":
            end = _class_end(pattern, index)
            out.append(_word_class(pattern[index:end]))
            index = end
        elif char == " ":
            optional = pattern[index + 1:index + 2] == "?"
            out.append(NON_WORD + ("*+" if optional else "++"))
            index += 2 if optional else 1
        else:
            out.append(char)
            index += 1
    return re.compile("".join(out), re.DOTALL)


def _ends_word(pattern: str, index: int) -> bool:
    """A word-character run at `index` that goes on to a word boundary, a separator or the end."""
    quantifier, follower = pattern[index:index + 1], pattern[index + 1:index + 3]
    if quantifier not in ("*", "+") or follower[:1] in ("?", "+", "{"):
        return False
    return follower in ("", "\\b") or (follower[:1] == " " and follower != " ?")


def _class_end(pattern: str, start: int) -> int:
    """The index just past the character class that opens at `start`."""
    index = start + 1
    if pattern[index:index + 1] == "^":
        index += 1
    if pattern[index:index + 1] == "]":
        index += 1  # a leading "]" is a literal
    while pattern[index] != "]":
        index += 2 if pattern[index] == "\\" else 1
    return index + 1


def _word_class(text: str) -> str:
    """A class that excludes word characters excludes letters and digits, not "_"."""
    if text.startswith("[^") and "\\w" in text:
        return f"(?:{text}|_)"
    return text


def literal_prefixes(pattern: str) -> tuple[str, ...]:
    """Literal stems, one of which starts every match of the pattern.

    Taken from the leading alternation, so a rule can skip texts that hold none of them;
    empty when the pattern has no such group.
    """
    body = pattern.removeprefix(r"\b")
    if not body.startswith("(?:"):
        return ()
    depth, alternatives, current, end = 0, [], [], len(body)
    for index, char in enumerate(body[3:], start=3):
        if char == "(" and body[index - 1] != "\\":
            depth += 1
        elif char == ")" and body[index - 1] != "\\":
            if depth == 0:
                end = index
                break
            depth -= 1
        if char == "|" and depth == 0:
            alternatives.append("".join(current))
            current = []
        else:
            current.append(char)
    alternatives.append("".join(current))
    if _top_level_bar(body[end + 1:]):
        return ()  # "(?:a|b)x|y": a match may start with y
    stems = []
    for alternative in alternatives:
        stem = re.match(r"[a-z0-9'\-]*", alternative).group()
        if len(stem) < 2 or alternative[len(stem):len(stem) + 1] in ("?", "*", "{"):
            return ()
        stems.append(stem.replace("\\", ""))
    return tuple(dict.fromkeys(stems))


def _top_level_bar(pattern: str) -> bool:
    depth, in_class, escaped = 0, False, False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            return True
    return False


@dataclass(frozen=True)
class Rule:
    """One detector: a pattern, optionally a second one that must also match, and a veto."""

    rule_id: str
    category: str
    severity: str
    pattern: re.Pattern[str]
    also: re.Pattern[str] | None = None
    unless: re.Pattern[str] | None = None
    stems: tuple[str, ...] = ()
    user_only: bool = False  # documentation says "your system prompt" to its reader

    def search(self, text: str) -> re.Match[str] | None:
        """The first match, if the rule fires on this text."""
        if self.stems and not any(stem in text for stem in self.stems):
            return None
        match = self.pattern.search(text)
        if match is None:
            return None
        if self.also is not None and not self.also.search(text):
            return None
        if self.unless is not None and self.unless.search(text):
            return None
        return match


def rule(rule_id: str, category: str, pattern: str, *, also: str | None = None,
         unless: str | None = None, severity: str = CRITICAL,
         stems: tuple[str, ...] | None = None, user_only: bool = False) -> Rule:
    """Build a rule from the notation above.

    `stems`: literal strings one of which is in every text the rule can match, so the
    (costlier) pattern runs only when one is there; by default the literal stems of the
    pattern's leading alternation (none when it has no such group). `user_only`: the rule
    does not read retrieved passages.
    """
    return Rule(rule_id, category, severity, compile_pattern(pattern),
                compile_pattern(also) if also else None,
                re.compile(unless) if unless else None,
                literal_prefixes(pattern) if stems is None else stems, user_only)
