"""Views of a text for the input guard: normalised, and with hidden payloads decoded.

Attackers hide instructions from keyword filters with encodings. The base view undoes
invisible and tag characters and homoglyphs, and keeps a map back to the caller's
character offsets; each decoder in DECODERS (at the end) undoes one more trick (rot13,
reversal, leetspeak, spacing, base64, base32, ASCII codes, hex, HTML entities, URL
encoding, binary, Unicode escapes, Caesar shifts, Morse, string splitting), so the same
rules read what a model would read.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import html
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

from unidecode import unidecode

TAG_BLOCK = range(0xE0000, 0xE0080)
ASCII_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1b\x7f]")  # not whitespace
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b",
                      "@": "a", "$": "s", "!": "i", "|": "l", "+": "t", "9": "g", "6": "g"})
LEET_L = str.maketrans({**{chr(k): v for k, v in LEET.items()}, "1": "l"})
BASE64_RUN = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{16,}={0,2}(?![A-Za-z0-9+/=_-])")
HEX_RUN = re.compile(r"(?:(?:0x|\\x)?[0-9A-Fa-f]{2}[\s:,-]?){8,}")
URL_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
SPACED_LETTERS = re.compile(r"\b(?:\w[ ._*-]{1,3}){3,}\w\b")
MORSE_RUN = re.compile(r"(?:[.\-·•−–]{1,7}[ /|]+){4,}[.\-·•−–]{1,7}")
LEET_WORD = re.compile(r"[a-z][0134579@$|+][a-z]|\b[0134579@$][a-z]{2}|[a-z]{2}[0134579]\b")
SPLIT_HINT = re.compile(r"\+|concat|join|combine|together|append|made (?:of|from)|glue|"
                        r"merge", re.I)
BASE32_RUN = re.compile(r"(?<![A-Za-z0-9=])[A-Z2-7]{16,}={0,6}(?![A-Za-z0-9=])")
DECIMAL_RUN = re.compile(r"(?:\b(?:3[2-9]|[4-9]\d|1[01]\d|12[0-6])\b[\s,]+){6,}"
                         r"\b(?:3[2-9]|[4-9]\d|1[01]\d|12[0-6])\b")
WORDS = re.compile(r"[a-z]+")
FUNCTION_WORDS = frozenset((
    "the", "a", "an", "and", "or", "to", "of", "in", "on", "at", "for", "with", "is", "are",
    "was", "be", "you", "your", "me", "my", "i", "it", "this", "that", "all", "any", "now",
    "from", "as", "by", "not", "no", "do", "what", "how", "tell", "say", "print", "show",
    "ignore", "previous", "instructions", "rules", "prompt", "system"))
BINARY_RUN = re.compile(r"(?:[01]{8}[\s,]*){4,}")
UNICODE_ESCAPES = re.compile(r"(?:\\u[0-9a-fA-F]{4}|\\x[0-9a-fA-F]{2}){4,}")
CIPHER_HINT = re.compile(r"caesar|shift(?:ed)? (?:by )?\d|cipher|rot-?\d", re.I)
REVERSE_HINT = re.compile(r"revers|backwards|mirror", re.I)
QUOTED = re.compile(r"""(['"`])([^'"`\n]{1,80})\1""")
LATIN_WORD = re.compile(r"[^\W\d_]+")
MORSE = {".-": "a", "-...": "b", "-.-.": "c", "-..": "d", ".": "e", "..-.": "f", "--.": "g",
         "....": "h", "..": "i", ".---": "j", "-.-": "k", ".-..": "l", "--": "m", "-.": "n",
         "---": "o", ".--.": "p", "--.-": "q", ".-.": "r", "...": "s", "-": "t", "..-": "u",
         "...-": "v", ".--": "w", "-..-": "x", "-.--": "y", "--..": "z"}


@dataclass(frozen=True)
class View:
    """One reading of the text; `span` is where in the original it came from.

    A decoder that finds several payloads (base64 runs, hex runs, spaced-out words) makes
    one view of them all, so a text pays for each decoder once however many runs it holds;
    `pieces` maps each decoded stretch of `text` (start, end) to the span it was read from.
    """

    name: str
    text: str
    span: tuple[int, int]
    pieces: tuple[tuple[int, int, tuple[int, int]], ...] = ()

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The span of the original that the view's text[start:end] was decoded from."""
        spans = [span for first, last, span in self.pieces if first < end and start < last]
        if not spans:
            return self.span
        return (min(span[0] for span in spans), max(span[1] for span in spans))


def _joined(name: str, decoded: list[tuple[str, tuple[int, int]]]) -> list[View]:
    """One view of every payload a decoder found, a line each (none when it found none)."""
    if not decoded:
        return []
    pieces, offset = [], 0
    for text, span in decoded:
        pieces.append((offset, offset + len(text), span))
        offset += len(text) + 1
    return [View(name, "\n".join(text for text, _ in decoded),
                 (decoded[0][1][0], decoded[-1][1][1]), tuple(pieces))]


@dataclass(frozen=True)
class Normalised:
    """NFKC, lower case, invisible characters dropped, mixed-script words folded to ASCII."""

    text: str
    offsets: tuple[int, ...]  # original index of each character of `text`
    invisible_in_words: tuple[int, ...]  # original indices of zero-width characters in words
    tag_characters: tuple[int, ...]
    bidi_controls: tuple[int, ...]
    homoglyph_words: tuple[tuple[int, int], ...]

    def original_span(self, start: int, end: int, length: int) -> tuple[int, int]:
        """Map a span of the normalised text back to the original text."""
        if not self.offsets:
            return (0, length)
        first = self.offsets[min(start, len(self.offsets) - 1)]
        last = self.offsets[min(max(end - 1, 0), len(self.offsets) - 1)] + 1
        return (first, max(last, first + 1))


def normalise(text: str) -> Normalised:
    """The base view; ASCII text without control characters takes a fast path.

    Control characters other than whitespace (NUL, escape, C1) are dropped like zero-width
    ones: a model reads past them, so "ig<NUL>nore" must read "ignore" to the rules too.
    """
    if text.isascii() and not ASCII_CONTROLS.search(text):
        return Normalised(text.lower(), tuple(range(len(text))), (), (), (), ())
    chars: list[str] = []
    offsets: list[int] = []
    invisible, tags, bidi = [], [], []
    for index, char in enumerate(text):
        code = ord(char)
        if code in TAG_BLOCK:
            tags.append(index)
            continue
        if char in BIDI_CONTROLS:
            bidi.append(index)
            continue
        if (unicodedata.category(char) in ("Cf", "Cc") and not char.isspace()) or \
                char in "\u034f\u115f\u1160\u3164\uffa0":
            if 0 < index < len(text) - 1 and text[index - 1].isalnum() and \
                    text[index + 1].isalnum():
                invisible.append(index)
            continue
        for folded in unicodedata.normalize("NFKC", char).lower():
            chars.append(folded)
            offsets.append(index)
    joined = "".join(chars)
    homoglyphs = []
    if not joined.isascii():
        pieces: list[str] = []
        new_offsets: list[int] = []
        cursor = 0
        for match in LATIN_WORD.finditer(joined):
            word = match.group()
            if word.isascii() or not _mixes_latin(word):
                continue
            pieces.append(joined[cursor:match.start()])
            new_offsets += offsets[cursor:match.start()]
            for position, char in enumerate(word, start=match.start()):
                ascii_form = char if char.isascii() else (unidecode(char) or char)
                pieces.append(ascii_form)
                new_offsets += [offsets[position]] * len(ascii_form)
            cursor = match.end()
            homoglyphs.append((offsets[match.start()], offsets[match.end() - 1] + 1))
        if homoglyphs:
            pieces.append(joined[cursor:])
            new_offsets += offsets[cursor:]
            joined, offsets = "".join(pieces).lower(), new_offsets
    return Normalised(joined, tuple(offsets), tuple(invisible), tuple(tags), tuple(bidi),
                      tuple(homoglyphs))


def _mixes_latin(word: str) -> bool:
    """A word with Latin letters and look-alikes from another script (Cyrillic, Greek...)."""
    scripts = set()
    for char in word:
        if char.isascii():
            scripts.add("LATIN")
            continue
        name = unicodedata.name(char, "")
        script = name.split(" ", 1)[0]
        if script == "LATIN":
            scripts.add("LATIN")
        elif script in ("CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE", "COPTIC", "MATHEMATICAL"):
            scripts.add(script)
    return "LATIN" in scripts and len(scripts) > 1


@dataclass(frozen=True)
class Reading:
    """What every decoder may look at: the text, its base view, and how English each reads."""

    text: str
    base: Normalised
    plain: float  # the base view's share of English function words
    hinted: bool  # the text mentions a cipher or reversal

    @property
    def lowered(self) -> str:
        """The base view's text (lower case, invisible characters dropped)."""
        return self.base.text

    @property
    def whole(self) -> tuple[int, int]:
        """The span of the whole original text."""
        return (0, len(self.text))


@dataclass(frozen=True)
class Decoder:
    """One trick undone: the name its views carry, and how it reads them off a text."""

    name: str
    read: Callable[[str, Reading], list[View]]

    def views(self, reading: Reading) -> list[View]:
        """The views this decoder reads off the text (none when the trick is not there)."""
        return self.read(self.name, reading)


def decoded_views(text: str, base: Normalised) -> list[View]:
    """Every hidden reading of the text worth screening again, decoder by decoder.

    At most one view per decoder (and one Caesar shift, the most English), so screening
    the views costs a bounded multiple of screening the text, whatever the text holds.
    """
    reading = Reading(text, base, _englishness(base.text),
                      bool(CIPHER_HINT.search(text) or REVERSE_HINT.search(text)))
    return [view for decoder in DECODERS for view in decoder.views(reading)]


def runs_of(pattern: re.Pattern[str], decode: Callable[[str], str | None]
            ) -> Callable[[str, Reading], list[View]]:
    """Read every run of `pattern` in the text that `decode` reads as text (one view)."""
    return lambda name, reading: _decoded_runs(name, pattern, decode, reading.text)


def if_more_english(transform: Callable[[str], str]) -> Callable[[str, Reading], list[View]]:
    """Read the whole text transformed, when that reads more like English than the text.

    rot13 or reversed English is gibberish, and vice versa; a text that says it is
    ciphered or reversed is read transformed anyway.
    """

    def read(name: str, reading: Reading) -> list[View]:
        candidate = transform(reading.lowered)
        if reading.hinted or _englishness(candidate) > reading.plain:
            return [View(name, candidate, reading.whole)]
        return []
    return read


def _leetspeak(name: str, reading: Reading) -> list[View]:
    lowered = reading.lowered
    leet = lowered.translate(LEET) if LEET_WORD.search(lowered) else lowered
    if leet == lowered:
        return []
    views = [View(name, leet, reading.whole)]
    if "1" in lowered:  # 1 reads as i or as l: "ru13z"
        views.append(View(name, lowered.translate(LEET_L), reading.whole))
    return views


def _unicode_tags(name: str, reading: Reading) -> list[View]:
    tags, text = reading.base.tag_characters, reading.text
    if not tags:
        return []
    hidden = "".join(chr(ord(text[i]) - 0xE0000) for i in tags
                     if 0x20 <= ord(text[i]) - 0xE0000 < 0x7F)
    return [View(name, hidden.lower(), (tags[0], tags[-1] + 1))]


def _html_entities(name: str, reading: Reading) -> list[View]:
    text = reading.text
    if text.count("&#") >= 3 or (text.count("&") >= 3 and ";" in text):
        unescaped = html.unescape(text)
        if unescaped != text:
            return [View(name, unescaped.lower(), reading.whole)]
    return []


def _url_encoding(name: str, reading: Reading) -> list[View]:
    if len(URL_ESCAPE.findall(reading.text)) >= 3:
        return [View(name, unquote(reading.text).lower(), reading.whole)]
    return []


def _caesar(name: str, reading: Reading) -> list[View]:
    """A Caesar cipher has one key: the shift that reads most like English."""
    if not CIPHER_HINT.search(reading.text):
        return []
    lowered = reading.lowered
    score, shift = max((_englishness(_shift(lowered, shift)), shift)
                       for shift in range(1, 26) if shift != 13)
    if score > reading.plain:
        return [View(f"{name}{shift}", _shift(lowered, shift), reading.whole)]
    return []


def _split_strings(name: str, reading: Reading) -> list[View]:
    text = reading.text
    quoted = [m.group(2) for m in QUOTED.finditer(text)] if SPLIT_HINT.search(text) else []
    if len(quoted) >= 2:
        return [View(name, "".join(quoted).lower(), reading.whole)]
    return []


def _decoded_runs(name: str, pattern: re.Pattern[str], decode: Callable[[str], str | None],
                  text: str) -> list[View]:
    """One view of every run of `pattern` in the text that `decode` reads as text."""
    decoded = []
    for match in pattern.finditer(text):
        plain = decode(match.group())
        if plain:
            decoded.append((plain.lower(), match.span()))
    return _joined(name, decoded)


def _spaced_letters(name: str, reading: Reading) -> list[View]:
    """The text with every spaced-out word joined up ("i g n o r e" reads "ignore")."""
    lowered, base, length = reading.lowered, reading.base, len(reading.text)
    parts, pieces, cursor, offset = [], [], 0, 0
    for match in SPACED_LETTERS.finditer(lowered):
        segment = match.group()
        if re.search(r"\w[._*-]\w", segment) and " " in segment:
            # "f.o.r.g.e.t y.o.u.r": the in-word separator differs from the word one.
            joined = re.sub(r"[._*-]", "", segment)
        else:
            # Runs of separators mark word boundaries ("i g n o r e   a l l").
            joined = re.sub(r"[ ._*-]", "", re.sub(r"[ ._*-]{2,}", "\0", segment))
            joined = joined.replace("\0", " ")
        offset += match.start() - cursor
        parts += [lowered[cursor:match.start()], joined]
        pieces.append((offset, offset + len(joined), base.original_span(*match.span(),
                                                                        length)))
        offset += len(joined)
        cursor = match.end()
    if not pieces:
        return []
    parts.append(lowered[cursor:])
    return [View(name, "".join(parts), (pieces[0][2][0], pieces[-1][2][1]),
                 tuple(pieces))]


def _englishness(text: str) -> float:
    """Share of words that are common English function words."""
    words = WORDS.findall(text)
    return sum(word in FUNCTION_WORDS for word in words) / len(words) if words else 0.0


def _shift(text: str, shift: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return text.translate(str.maketrans(letters, letters[shift:] + letters[:shift]))


def _printable(raw: bytes) -> str | None:
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not decoded or sum(c.isprintable() or c.isspace() for c in decoded) < 0.9 * len(decoded):
        return None
    return decoded if sum(c.isalpha() for c in decoded) >= 0.5 * len(decoded) else None


def _base64_text(run: str) -> str | None:
    if run.isalpha() and (run.islower() or run.isupper()):
        return None  # a long plain word, not an encoding
    padded = run + "=" * (-len(run) % 4)
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            text = _printable(decode(padded))
        except (binascii.Error, ValueError):
            continue
        if text:
            return text
    return None


def _base64_payload(run: str) -> str | None:
    decoded = _base64_text(run)
    return (_base64_text(decoded.strip()) or decoded) if decoded else None  # base64 in base64


def _base32_text(run: str) -> str | None:
    try:
        return _printable(base64.b32decode(run + "=" * (-len(run) % 8)))
    except (binascii.Error, ValueError):
        return None


def _decimal_text(run: str) -> str | None:
    return _printable(bytes(int(n) for n in re.findall(r"\d+", run)))


def _binary_text(run: str) -> str | None:
    return _printable(bytes(int(b, 2) for b in re.findall(r"[01]{8}", run)))


def _escaped_text(run: str) -> str | None:
    try:
        return codecs.decode(run, "unicode_escape")
    except UnicodeDecodeError:
        return None


def _hex_text(run: str) -> str | None:
    digits = re.sub(r"0x|\\x|[\s:,-]", "", run)
    if len(digits) % 2:
        digits = digits[:-1]
    try:
        return _printable(bytes.fromhex(digits))
    except ValueError:
        return None


def _morse_text(run: str) -> str | None:
    run = run.translate(str.maketrans("·•−–", "..--"))
    words = re.split(r"\s*[/|]\s*|\s{3,}", run.strip())
    letters = [" ".join(MORSE.get(code, "?") for code in word.split()) for word in words]
    decoded = " ".join("".join(word.split()) for word in letters)
    return decoded if decoded.count("?") <= len(decoded) // 5 else None


# The decoders, in the order their views are screened: the first rule that reads a hidden
# payload names it, and a rule that has fired is not asked again.
DECODERS: tuple[Decoder, ...] = (
    Decoder("rot13", if_more_english(lambda text: codecs.encode(text, "rot13"))),
    Decoder("reversed", if_more_english(lambda text: text[::-1])),
    Decoder("leetspeak", _leetspeak),
    Decoder("unicode_tags", _unicode_tags),
    Decoder("spaced_letters", _spaced_letters),
    Decoder("base64", runs_of(BASE64_RUN, _base64_payload)),
    Decoder("base32", runs_of(BASE32_RUN, _base32_text)),
    Decoder("ascii_codes", runs_of(DECIMAL_RUN, _decimal_text)),
    Decoder("hex", runs_of(HEX_RUN, _hex_text)),
    Decoder("html_entities", _html_entities),
    Decoder("url_encoding", _url_encoding),
    Decoder("binary", runs_of(BINARY_RUN, _binary_text)),
    Decoder("unicode_escapes", runs_of(UNICODE_ESCAPES, _escaped_text)),
    Decoder("caesar", _caesar),  # its view is named by the shift: "caesar3"
    Decoder("morse", runs_of(MORSE_RUN, _morse_text)),
    Decoder("split_strings", _split_strings),
)
