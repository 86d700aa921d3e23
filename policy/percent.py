"""Percent-decoding in one C pass, for hostile input.

`urllib.parse.unquote` loops in Python over every escape (~0.35 us each), and `re.sub` with a function
calls it once a match: 64 KiB of `%25` or `%u0041` took ~9 ms a pass, and a request's value is decoded up
to three times by the detectors and again by CRS's pipelines (27-36 ms a request). Here each valid `%HH`
becomes `\\xHH` and `%uHHHH` `\\uHHHH` (every backslash, and a `%` that starts no escape, made literal
first) and the C codec `unicode_escape` decodes the whole text at once.

`unquote(text)` is `urllib.parse.unquote(text, encoding="latin-1")` (`unquote_plus` with `plus`),
property-tested against it; `uni` adds `%uHHHH`. A `%` that starts no escape sends the text through one
regex split at the escapes first, never a Python call a match.
"""

from __future__ import annotations

import codecs

from policy.linear import bounded

_ESCAPE = bounded(r"(%[0-9a-fA-F]{2})")
_ESCAPE_UNI = bounded(r"(%[uU][0-9a-fA-F]{4}|%[0-9a-fA-F]{2})")
_FULL_WIDTH = bounded("[\uff01-\uff5e]")


def unquote(text: str, plus: bool = False, uni: bool = False) -> str:
    """`%HH` decoded to U+00HH (the byte, as latin-1), with `uni` `%uHHHH` (either case) to U+HHHH; with
    `plus`, `+` becomes a space first (so `%2B` stays `+`)."""
    if plus and "+" in text:
        text = text.replace("+", " ")
    if "%" not in text:
        return text
    literal = text.replace("\\", "\\\\")
    try:  # every `%` starts an escape (most text): no regex
        return _decode(_codec_escapes(literal, uni))
    except UnicodeDecodeError:  # "truncated \xXX (or \uXXXX) escape": a `%` that starts none
        pass
    # Split at the escapes (text, escape, text, ..., text): a `%` left in the text is literal to the codec.
    # The escapes are rewritten all at once, joined by a NUL they cannot hold: no Python call an escape.
    parts = (_ESCAPE_UNI if uni else _ESCAPE).split(literal)
    if len(parts) == 1:  # no escape at all
        return _decode(literal)
    parts[1::2] = _codec_escapes("\0".join(parts[1::2]), uni).split("\0")
    return _decode("".join(parts))


def _codec_escapes(text: str, uni: bool) -> str:
    """Every `%u` (with `uni`) as `\\u`, then every `%` as `\\x`: the escapes, as the codec spells them."""
    if uni:
        text = text.replace("%u", "\\u").replace("%U", "\\u")
    return text.replace("%", "\\x")


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
