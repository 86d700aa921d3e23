"""Normalisation before matching: undo the encodings attackers use to slip past filters, in linear time.

Repeated URL decoding (`%XX`, `%uXXXX`, `+`), overlong UTF-8 for `.` and `/`, HTML entities, `\\uXXXX` and
`\\xXX` escapes, SQL comments and whitespace tricks, case. Every step is one pass over the text: token
patterns have a bounded width (`policy.linear.bounded`), comments are found with `str.find`. How much of a
request is normalised at all is the caller's budget (`risk.max_scan_bytes`, see `policy.fields`).
"""

from __future__ import annotations

import html

from policy.backslash import unescape
from policy.linear import bounded, substitute
from policy.percent import unquote

MAX_ROUNDS = 3  # double and triple encoding are common evasions; more rounds buy nothing

_OVERLONG = bounded(r"(%c0%ae|%c0%af|%c1%9c|%c0%2e|%c0%2f|%e0%80%ae|%e0%80%af)", ignore_case=True)
_OVERLONG_CHARS = {"%c0%ae": ".", "%c0%2e": ".", "%e0%80%ae": ".", "%c0%af": "/", "%c0%2f": "/"}
_SURROGATE = bounded(r"[\ud800-\udfff]")  # (re reads the escapes: no surrogate in the source)
_DIGITS = {False: "0123456789", True: "0123456789abcdefABCDEF"}
_MAX_REF_DIGITS = 8  # more digits than this is past U+10FFFF whatever they are: html gives U+FFFD
_ODD_CHARREF = bounded(r"&#[xX]?(?:0|[0-9a-fA-F]{9})")  # leading zeros, or more digits than any code point
# What `html.unescape` takes for a character reference (its `_charref`), with at most _MAX_REF_DIGITS digits.
_CHARREF = bounded(r"(&(?:#[0-9]{1,8};?|#[xX][0-9a-fA-F]{1,8};?|[^\t\n\f <&#;]{1,32};?))")


def _overlong(token: str) -> str:
    return _OVERLONG_CHARS.get(token.lower(), "\\")


def url_decode(text: str, plus: bool = True) -> str:
    """Percent-decode until stable (at most MAX_ROUNDS), `%uXXXX` and overlong `.`/`/` included (a lone
    surrogate decoded, or received, as U+FFFD)."""
    for _ in range(MAX_ROUNDS):
        if "%" not in text and not (plus and "+" in text):
            break
        lower = text.lower()
        step = substitute(_OVERLONG, text, _overlong) if "%c" in lower or "%e0" in lower else text
        step = unquote(step, plus, uni=True)
        if step == text:
            break
        text = step
    return _without_surrogates(text)


def _short_charrefs(text: str) -> str:
    """Numeric character references with leading zeros dropped and at most _MAX_REF_DIGITS digits, so
    `html.unescape` never converts a huge number (`&#` + 5,000 digits raised ValueError: a 500) while
    `&#0000060;` still decodes to `<`."""
    head, *refs = text.split("&#")
    parts = [head]
    for ref in refs:
        hexa = ref[:1] in ("x", "X")
        prefix, digits = ref[: int(hexa)], ref[int(hexa) :].lstrip("0")
        run = len(digits) - len(digits.lstrip(_DIGITS[hexa]))
        if run > _MAX_REF_DIGITS:
            digits = digits[:_MAX_REF_DIGITS] + digits[run:]
        elif run == 0 and len(digits) < len(ref) - len(prefix):
            digits = "0" + digits  # `&#0;` stays a (null) reference
        parts.append(prefix + digits)
    return "&#".join(parts)


def _comments(text: str) -> str:
    """SQL comments read both ways, since a comment may separate words (UNION/**/SELECT) or split one
    (SEL/**/ECT): the text with each comment as a space, then with each removed. A MySQL versioned comment
    `/*!50000SELECT*/` runs its content, so that is kept. An unclosed comment is left as it is."""
    spaced, joined, position = [], [], 0
    while (start := text.find("/*", position)) >= 0 and (end := text.find("*/", start + 2)) >= 0:
        inner = text[start + 2 : end]
        kept = f" {inner[1:].lstrip('0123456789')} " if inner.startswith("!") else None
        spaced += [text[position:start], kept or " "]
        joined += [text[position:start], kept or ""]
        position = end + 2
    if not spaced:
        return text
    rest = text[position:]
    return f"{''.join(spaced)}{rest} {''.join(joined)}{rest}"


def html_unescape(text: str) -> str:
    """`html.unescape(text)` for a text whose references have at most _MAX_REF_DIGITS digits, calling it
    once per distinct reference rather than once per reference."""
    return substitute(_CHARREF, text, html.unescape)


def normalise(text: str) -> str:
    """The form matchers look at: decoded, unescaped, comment-free, single-spaced, lower-case."""
    text = url_decode(text)
    if "&" in text:
        text = html_unescape(_short_charrefs(text) if _ODD_CHARREF.search(text) else text)
    if "\\" in text:
        text = unescape(text)
    if "/*" in text:
        text = _comments(text)
    return _without_surrogates(" ".join(text.split()).lower())


def _without_surrogates(text: str) -> str:
    """A lone surrogate is no character: `%uD800` and `\\uD800` decode to one, and a byte that is not
    UTF-8 arrives as one (aiohttp's surrogateescape). No UTF-8 matcher (RE2) takes it, so it becomes
    U+FFFD, as in a JSON string (`policy.bodies`)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)  # a constant: no Python call a surrogate
    return text
