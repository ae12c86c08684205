"""Incremental UTF-8 validation for the fuzzing client and the case files.

Input: byte chunks of one text message (or one test vector), in order.
Output: after each chunk, whether the bytes so far can still be the start of
well-formed UTF-8 (RFC 3629 section 4) and whether they end on a code point
boundary. The fuzzing client (`fuzzer.py`) uses it to fail fast on invalid
text from the server; case 6.x's vectors use it, under the name the case
files import (`Utf8Validator`), to decide which strings are valid.

CPython's incremental decoder does the work at C speed (case 9.x moves
megabytes); it checks every complete sequence, and the second byte of an
unfinished one except after 0xED, which it keeps open for its surrogate
error handlers. `_tail_is_possible` closes that gap so a lone surrogate's
prefix fails as soon as its second byte arrives.
"""

import codecs

# RFC 3629 section 4: the lead bytes whose second byte has a narrower range
# than 0x80..0xBF (overlongs, surrogates, code points above U+10FFFF).
_SECOND_BYTE = {0xE0: (0xA0, 0xBF), 0xED: (0x80, 0x9F), 0xF0: (0x90, 0xBF), 0xF4: (0x80, 0x8F)}


def _tail_is_possible(tail):
    """Whether an unfinished sequence can still become a code point."""
    if len(tail) < 2:
        return True
    low, high = _SECOND_BYTE.get(tail[0], (0x80, 0xBF))
    return low <= tail[1] <= high


class Utf8Validator:
    """Validates UTF-8 fed in chunks; `validate` answers after each chunk
    with `(valid, ends_on_code_point, octets_in_chunk, octets_in_total)`,
    the tuple the case files expect."""

    def __init__(self):
        self.reset()

    def reset(self):
        """Starts a new message."""
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._valid = True
        self._total = 0

    def validate(self, chunk):
        """Feeds `chunk` (bytes, or a str of code points below 256 that
        stands for bytes, as the case files write them)."""
        if isinstance(chunk, str):
            chunk = chunk.encode("latin-1")
        if self._valid:
            try:
                self._decoder.decode(chunk, False)
                self._valid = _tail_is_possible(self._decoder.getstate()[0])
            except UnicodeDecodeError:
                self._valid = False
        self._total += len(chunk)
        ends = self._valid and not self._decoder.getstate()[0]
        return (self._valid, ends, len(chunk), self._total)
