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

import codecs
import functools

from policy.linear import bounded

_VALID = bounded(r"%(?=[0-9a-fA-F]{2})")  # a `%` that starts an escape
_VALID_UNI = bounded(r"%[uU](?=[0-9a-fA-F]{4})")
_FULL_WIDTH = bounded("[\uff01-\uff5e]")


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
            return _decode(literal.replace("%u", "\\u").replace("%U", "\\u").replace("%", "\\x"))
        return _decode(literal.replace("%", "\\x"))
    except UnicodeDecodeError:  # "truncated \xXX (or \uXXXX) escape": a `%` that starts none
        pass
    # Only the `%` that start an escape become the codec's; a lone one stays, literal to the codec. A
    # substitution by a constant runs in C, with no Python call a match.
    if uni:
        literal = _VALID_UNI.sub(r"\\u", literal)
    return _decode(_VALID.sub(r"\\x", literal))


_unquote_long = functools.lru_cache(maxsize=4)(_unquote)


def _decode(escaped: str) -> str:
    # raw_unicode_escape: characters up to U+00FF as their byte, others as \uHHHH (decoded back as they were)
    decoded: str = codecs.unicode_escape_decode(escaped.encode("raw_unicode_escape"))[0]
    return decoded


def low_bytes(text: str) -> str:
    """Each character above U+00FF as ModSecurity keeps a decoded `%uHHHH`: a full-width form
    (U+FF01..U+FF5E) its ASCII twin, anything else its low byte."""
    if text.isascii() or max(text) <= "\xff":
        return text
    if _FULL_WIDTH.search(text):
        text = _FULL_WIDTH.sub(lambda match: chr(ord(match.group()) - 0xFEE0), text)
    return text.encode("utf-32-le", "surrogatepass")[::4].decode("latin-1")
