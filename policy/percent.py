"""Percent-decoding in one C pass, for hostile input.

`urllib.parse.unquote` loops in Python over every escape (~0.35 us each), and `re.sub` with a function
calls it once a match: 64 KiB of `%25` or `%u0041` took ~9 ms a pass, and a request's value is decoded up
to three times by the detectors and again by CRS's pipelines (27-36 ms a request). Here each valid `%HH`
becomes `\\xHH` and `%uHHHH` `\\uHHHH` (every backslash, and a `%` that starts no escape, made literal
first) and the C codec `unicode_escape` decodes the whole text at once.

`unquote(text)` is `urllib.parse.unquote(text, encoding="latin-1")` (`unquote_plus` with `plus`),
property-tested against it; `uni` adds `%uHHHH`. A `%` that starts no escape makes the codec fail: the
text is then rewritten by two regex substitutions of a constant (C, no Python call a match) that turn only
the escapes' `%` into the codec's, and decoded once. 64 KiB of `%41%` costs ~1.8 ms, not the ~3.9 ms of a
split at every escape.
"""

from __future__ import annotations

import array
import codecs
import functools
import sys

from policy.linear import bounded

_VALID = bounded(r"%(?=[0-9a-fA-F]{2})")  # a `%` that starts an escape
_VALID_UNI = bounded(r"%[uU](?=[0-9a-fA-F]{4})")
_FULL_WIDTH = bounded("[\uff01-\uff5e]")
_WIDE_AS_UCS4 = array.array("u").itemsize == 4 and sys.byteorder == "little"  # wchar_t: so on Linux x86
SHORT = 256  # a text this short is encoded, not copied into an array (cheaper, whatever it holds)


# A long text is decoded once while it is among the last few: a query's 64 KiB value is decoded for its
# parameter (`policy.fields`) and again as a piece of the query (CRS's QUERY_STRING, REQUEST_LINE...).
LONG = 4096
LONGEST = 1 << 17  # what the cache holds stays bounded


def unquote(text: str, plus: bool = False, uni: bool = False) -> str:
    """`%HH` decoded to U+00HH (the byte, as latin-1), with `uni` `%uHHHH` (either case) to U+HHHH; with
    `plus`, `+` becomes a space first (so `%2B` stays `+`)."""
    if LONG <= len(text) <= LONGEST:
        return _unquote_long(text, plus, uni)
    return _unquote(text, plus, uni)


def _unquote(text: str, plus: bool, uni: bool) -> str:
    if plus and "+" in text:
        text = text.replace("+", " ")
    if "%" not in text:
        return text
    literal = text.replace("\\", "\\\\")
    try:  # every `%` starts an escape (most text): str.replace only
        if uni:
            return decode_escaped(literal.replace("%u", "\\u").replace("%U", "\\u").replace("%", "\\x"))
        return decode_escaped(literal.replace("%", "\\x"))
    except UnicodeDecodeError:  # "truncated \xXX (or \uXXXX) escape": a `%` that starts none
        pass
    # Only the `%` that start an escape become the codec's; a lone one stays, literal to the codec. A
    # substitution by a constant runs in C, with no Python call a match.
    if uni:
        literal = _VALID_UNI.sub(r"\\u", literal)
    return decode_escaped(_VALID.sub(r"\\x", literal))


_unquote_long = functools.lru_cache(maxsize=4)(_unquote)


def decode_escaped(escaped: str) -> str:
    """`escaped` with the escapes of Python's `unicode_escape` codec decoded (one C pass)."""
    # raw_unicode_escape: characters up to U+00FF as their byte, others as \uHHHH (decoded back as they were)
    decoded: str = codecs.unicode_escape_decode(escaped.encode("raw_unicode_escape"))[0]
    return decoded


def low_bytes(text: str) -> str:
    """Each character above U+00FF as ModSecurity keeps a decoded `%uHHHH`: a full-width form
    (U+FF01..U+FF5E) its ASCII twin, anything else its low byte."""
    if text.isascii():
        return text
    if _WIDE_AS_UCS4 and len(text) > SHORT:  # 4 bytes a character, low byte first, surrogates too
        wide = array.array("u", text).tobytes()
    else:  # a surrogate costs this encoder a call of its error handler: ~10x slower on surrogates
        wide = text.encode("utf-32-le", "surrogatepass")
    low = wide[::4]
    if _FULL_WIDTH.search(text):
        low = _twins(low, wide)
    return low.decode("latin-1")


_IS_FF = bytes(0x20 if byte == 0xFF else 0 for byte in range(256))
_IS_ZERO = bytes(0xFF if byte == 0 else 0 for byte in range(256))
_IN_FORMS = bytes(0xFF if 0x01 <= byte <= 0x5E else 0 for byte in range(256))


def _twins(low: bytes, wide: bytes) -> bytes:
    """`low` with 0x20 added where `wide` (4 bytes a character) holds U+FF01..U+FF5E: the ASCII twin is
    the low byte plus 0x20. Byte tables and big-integer arithmetic, all C (a substitution with a function
    took 2.8 ms for 64 KiB of full-width text): the masks meet only on those characters, and there the
    sum stays under 0x80, so no byte carries into the next."""
    add = (
        int.from_bytes(wide[1::4].translate(_IS_FF), "big")
        & int.from_bytes(wide[2::4].translate(_IS_ZERO), "big")
        & int.from_bytes(low.translate(_IN_FORMS), "big")
    )
    return (int.from_bytes(low, "big") + add).to_bytes(len(low), "big")
