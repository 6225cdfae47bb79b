"""Hashed n-gram counts exactly as scikit-learn's HashingVectorizer makes them, with numpy alone.

The injection classifier was trained on scikit-learn's features; scoring needs only the
same counts at the same indices. Importing scikit-learn to make them costs about a second,
more than everything else a guard does at start-up, so this module reproduces them:
lower-casing, the `char_wb` and `word` analyzers, MurmurHash3 (x86, 32-bit, seed 0) of each
n-gram's UTF-8 bytes, the index `abs(hash) % n_features`, and counts summed per index with
the indices sorted (what `sum_duplicates` leaves). tests/test_guard_classifier.py checks the
counts against scikit-learn's on the eval and red-team sets and on generated texts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

# scikit-learn's defaults (feature_extraction/text.py): the token pattern, and the runs of
# whitespace that the character analyzers collapse to one space.
TOKEN = re.compile(r"(?u)\b\w\w+\b")
WHITE_SPACES = re.compile(r"\s\s+")
# n-grams longer than this are hashed one by one in Python (a word of thousands of
# characters); the rest together, one column of four bytes at a time.
WIDEST_VECTORISED = 64
_C1, _C2 = np.uint32(0xCC9E2D51), np.uint32(0x1B873593)
# The bytes of a four-byte block that belong to a key with 0, 1, 2, 3 or 4 bytes left.
_TAIL_MASKS = np.array([0, 0xFF, 0xFFFF, 0xFFFFFF, 0xFFFFFFFF], dtype=np.uint32)


@dataclass(frozen=True)
class NgramHasher:
    """One feature block: an analyzer ("char_wb" or "word"), its n-gram range, its width."""

    analyzer: str
    ngram_range: tuple[int, int]
    n_features: int

    def __post_init__(self) -> None:
        if self.analyzer not in ("char_wb", "word"):
            raise ValueError(f"analyzer {self.analyzer!r} is not 'char_wb' or 'word'")

    def spans(self, lowered: str) -> tuple[bytes, np.ndarray, np.ndarray]:
        """The UTF-8 bytes of a lower-cased text's n-grams, and each n-gram's (start, length)."""
        if self.analyzer == "char_wb":
            return _char_wb_spans(lowered, *self.ngram_range)
        return _word_spans(lowered, *self.ngram_range)


def hashed_counts(text: str, hashers: tuple[NgramHasher, ...]
                  ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(sorted feature indices, their counts as float64) of each block, for one text.

    Every block's n-grams are hashed in one pass (the cost is mostly per call, not per
    n-gram), then counted per block.
    """
    lowered = text.lower()
    buffers, starts, lengths, offset = [], [], [], 0
    for hasher in hashers:
        buffer, first, length = hasher.spans(lowered)
        buffers.append(buffer)
        starts.append(first + offset)
        lengths.append(length)
        offset += len(buffer)
    hashes = murmurhash3_32(b"".join(buffers), np.concatenate(starts),
                            np.concatenate(lengths)).astype(np.int64)
    counted, cut = [], 0
    for hasher, length in zip(hashers, lengths, strict=True):
        # In 64 bits abs(-2**31) is defined: the index scikit-learn defines for it.
        unique, counts = np.unique(np.abs(hashes[cut:cut + len(length)]) % hasher.n_features,
                                   return_counts=True)
        cut += len(length)
        counted.append((unique.astype(np.int32), counts.astype(np.float64)))
    return counted


def _char_wb_spans(text: str, min_n: int, max_n: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    """Each word padded with a space either side; every n-gram inside it, a short word once."""
    words = WHITE_SPACES.sub(" ", text).split()
    padded = "".join(f" {word} " for word in words)
    widths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))[:, None] + 2
    sizes = np.arange(min_n, max_n + 1)
    # A word longer than n gives every n-gram; the first n it is not longer than gives
    # the whole word once, and no larger n gives anything.
    whole = (widths <= sizes) & ((widths > sizes - 1) | (sizes == min_n))
    counts = (np.where(widths > sizes, widths - sizes + 1, 0) + whole).ravel()
    firsts = np.broadcast_to(np.cumsum(widths) [:, None] - widths, whole.shape).ravel()
    lengths = np.repeat(np.minimum(widths, sizes).ravel(), counts)
    return _utf8_spans(padded, _ranges(firsts, counts), lengths)


def _word_spans(text: str, min_n: int, max_n: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    """Tokens of two or more word characters, and runs of n of them joined by a space."""
    tokens = TOKEN.findall(text)
    grams = list(tokens) if min_n == 1 else []
    for n in range(max(min_n, 2), min(max_n + 1, len(tokens) + 1)):
        grams += [" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    lengths = np.fromiter(map(len, grams), dtype=np.int64, count=len(grams))
    return _utf8_spans("".join(grams), np.cumsum(lengths) - lengths, lengths)


def _ranges(firsts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """first, first+1, ..., first+count-1 for each pair, concatenated."""
    return np.repeat(firsts - (np.cumsum(counts) - counts), counts) + np.arange(counts.sum())


def _utf8_spans(text: str, starts: np.ndarray, lengths: np.ndarray
                ) -> tuple[bytes, np.ndarray, np.ndarray]:
    """The text's UTF-8 bytes and the byte spans of the given character spans.

    A lone surrogate cannot be encoded: UnicodeEncodeError, as scikit-learn raises.
    """
    buffer = text.encode("utf-8")
    if len(buffer) == len(text):
        return buffer, starts, lengths
    points = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
    sizes = 1 + (points >= 0x80) + (points >= 0x800) + (points >= 0x10000)
    offsets = np.concatenate(([0], np.cumsum(sizes, dtype=np.int64)))
    return buffer, offsets[starts], offsets[starts + lengths] - offsets[starts]


def murmurhash3_32(buffer: bytes, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Signed MurmurHash3_x86_32 (seed 0) of each buffer[start:start+length], as int32."""
    hashes = np.zeros(len(starts), dtype=np.uint32)
    short = lengths <= WIDEST_VECTORISED
    if short.any():
        hashes[short] = _murmur_vectorised(buffer, starts[short], lengths[short])
    for position in np.flatnonzero(~short):
        start, length = int(starts[position]), int(lengths[position])
        hashes[position] = _murmur_one(buffer[start:start + length])
    return hashes.view(np.int32)


def _murmur_vectorised(buffer: bytes, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    # Keys by length, so the keys that still have a block to mix are a tail of the rows.
    order = np.argsort(lengths, kind="stable")
    starts, lengths = starts[order], lengths[order]
    count = -(-int(lengths[-1]) // 4)
    # The little-endian four bytes from each offset of the buffer; a key's block j is the
    # one at start + 4j, its bytes past the key's end masked off (its tail, zero-padded).
    data = np.frombuffer(buffer + bytes(4), dtype=np.uint8).astype(np.uint32)
    quads = data[:-3] | (data[1:-2] << 8) | (data[2:-1] << 16) | (data[3:] << 24)
    offsets = np.arange(count) * 4
    masks = _TAIL_MASKS[np.clip(lengths[:, None] - offsets, 0, 4)]
    blocks = quads[np.minimum(starts[:, None] + offsets, len(quads) - 1)] & masks
    blocks *= _C1
    blocks = ((blocks << np.uint32(15)) | (blocks >> np.uint32(17))) * _C2
    column_index = np.arange(count)
    with_block = np.searchsorted((lengths + 3) // 4, column_index, side="right")
    with_whole_block = np.searchsorted(lengths // 4, column_index, side="right")
    hashes = np.zeros(len(starts), dtype=np.uint32)
    for index, (first, first_whole) in enumerate(zip(with_block, with_whole_block,
                                                     strict=True)):
        hashes[first:] ^= blocks[first:, index]
        whole = hashes[first_whole:]
        hashes[first_whole:] = ((whole << np.uint32(13)) | (whole >> np.uint32(19))) \
            * np.uint32(5) + np.uint32(0xE6546B64)
    hashes ^= lengths.astype(np.uint32)
    unsorted = np.empty_like(hashes)
    unsorted[order] = _finalise(hashes)
    return unsorted


def _finalise(hashes: np.ndarray) -> np.ndarray:
    hashes ^= hashes >> np.uint32(16)
    hashes *= np.uint32(0x85EBCA6B)
    hashes ^= hashes >> np.uint32(13)
    hashes *= np.uint32(0xC2B2AE35)
    hashes ^= hashes >> np.uint32(16)
    return hashes


def _murmur_one(key: bytes) -> int:
    """The same hash of one key, in plain integers (for keys too long to vectorise)."""
    mask, state = 0xFFFFFFFF, 0
    whole = len(key) - len(key) % 4
    for offset in range(0, whole, 4):
        block = int.from_bytes(key[offset:offset + 4], "little")
        block = _rotl_int((block * 0xCC9E2D51) & mask, 15) * 0x1B873593 & mask
        state = (_rotl_int(state ^ block, 13) * 5 + 0xE6546B64) & mask
    if whole < len(key):
        block = int.from_bytes(key[whole:], "little")
        state ^= _rotl_int((block * 0xCC9E2D51) & mask, 15) * 0x1B873593 & mask
    state ^= len(key)
    state ^= state >> 16
    state = (state * 0x85EBCA6B) & mask
    state ^= state >> 13
    state = (state * 0xC2B2AE35) & mask
    return state ^ (state >> 16)


def _rotl_int(value: int, shift: int) -> int:
    return ((value << shift) | (value >> (32 - shift))) & 0xFFFFFFFF
