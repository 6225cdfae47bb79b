"""What the guard lets in to be screened: a string, within the policy's length, in valid Unicode.

It runs before any rule reads the text, so what a screen costs is bounded by the guard policy,
not by whoever sends the text. A text that is not a string or is over its stage's limit is
not read at all: one critical finding says why. An unpaired UTF-16 surrogate (a lone
surrogate escape is legal JSON, but no UTF-8 can carry it, so the encoder, the logs and
every response would fail on it) becomes U+FFFD, one for one so spans stay put, with a
soft finding.
"""

from __future__ import annotations

import re

from plimsoll.guard.findings import CRITICAL, SOFT, Finding, Verdict

SURROGATE = re.compile("[\ud800-\udfff]")


def admit(text: object, *, limit: int, field: str) -> tuple[str | None, Verdict]:
    """The text to screen (None: refuse it unread) and what admitting it found.

    `field` is the guard policy field that sets `limit`, named in the finding.
    """
    if not isinstance(text, str):
        kind = type(text).__name__
        return None, Verdict((Finding("malformed_input", CRITICAL, "not-a-string", 0, 0,
                                      f"the text is {kind}, not a string"),))
    if len(text) > limit:
        return None, Verdict((Finding(
            "input_too_long", CRITICAL, "length-limit", 0, len(text),
            f"{len(text):,} characters, over the guard policy's {field} ({limit:,}); "
            "nothing in it was screened"),))
    if text.isascii():
        return text, Verdict()
    surrogates = [match.start() for match in SURROGATE.finditer(text)]
    if not surrogates:
        return text, Verdict()
    return SURROGATE.sub("\ufffd", text), Verdict((Finding(
        "malformed_input", SOFT, "unpaired-surrogates", surrogates[0], surrogates[-1] + 1,
        f"{len(surrogates)} unpaired UTF-16 surrogate(s), not valid Unicode: read as "
        "U+FFFD"),))
