"""Backslash escapes (JavaScript's, CSS's, and the detectors' `\\uHHHH` `\\xHH`) decoded in one C pass, for
hostile input, as `policy.percent` decodes `%` escapes.

A substitution with a Python function calls it once a match: 64 KiB of `\\x41` took ~7 ms a pass, and a
request's value is unescaped by the detectors and by CRS's jsDecode and cssDecode. Here each grammar is
rewritten into the escapes of Python's `unicode_escape` codec by substitutions of a constant (C, no Python
call a match), and the codec decodes the whole text at once:

- an escaped backslash (`\\\\`) becomes a character no escape makes (`HELD`, put back after decoding), so
  that every backslash left starts an escape;
- a backslash the codec would read otherwise than the grammar does is removed (the grammar keeps the
  character after it) or doubled (the grammar keeps the backslash);
- what the codec spells otherwise (`\\U0041`, `\\X41`, CSS's 1 to 6 digits) is respelled.

Each function is property-tested against the token-by-token decoder it replaces
(tests/policy/test_backslash.py). The CRS functions take text of one byte a character (latin-1), as every
CRS transformation does.
"""

from __future__ import annotations

from policy.linear import bounded
from policy.percent import decode_escaped, low_bytes

HELD = "\U0001f5dd"  # above U+FFFF: no `\uHHHH` makes it, and no latin-1 text holds it
_HEX = "[0-9a-fA-F]"

# The detectors' escapes (`policy.normalise`): `\uHHHH` and `\xHH`, lower case; any other backslash stays.
_NOT_ESCAPE = bounded(rf"\\(?!u{_HEX}{{4}}|x{_HEX}{{2}})")


def unescape(text: str) -> str:
    """`\\uHHHH` to U+HHHH and `\\xHH` to U+00HH; every other backslash kept."""
    if "\\" not in text:
        return text
    return decode_escaped(_NOT_ESCAPE.sub(r"\\\\", text))  # doubled: the codec reads one


# JavaScript (ModSecurity's jsDecode): `\uHHHH` (either case) to its low byte (a full-width form to its ASCII
# twin), `\xHH`, octal `\OOO` up to \377 (`\400` is `\40` then `0`), `\a\b\f\n\r\t\v`, and `\c` is `c`.
_JS_OTHER = bounded(rf"(?s)\\(?=.)(?![xX]{_HEX}{{2}}|[uU]{_HEX}{{4}}|[0-7abfnrtv])")
_JS_UPPER_U = bounded(rf"\\U(?={_HEX}{{4}})")
_JS_UPPER_X = bounded(rf"\\X(?={_HEX}{{2}})")
_JS_OCTAL_PAST_377 = bounded(r"(?<=\\[4-7][0-7])(?=[0-7])")  # ends the escape after two digits


def js_decode(text: str) -> str:
    if "\\" not in text:
        return text
    text = _held(text, end=HELD)  # a lone backslash at the end is kept
    text = _JS_OTHER.sub("", text)
    if "\\U" in text or "\\X" in text:
        text = _JS_UPPER_X.sub(r"\\x", _JS_UPPER_U.sub(r"\\u", text))
    text = _JS_OCTAL_PAST_377.sub(r"\\\n", text)  # a backslash and a line break: the codec reads nothing
    return low_bytes(decode_escaped(text).replace(HELD, "\\"))


# CSS 2 (ModSecurity's cssDecode): `\` and 1 to 6 hex digits to the code's low byte (a full-width form to its
# ASCII twin), one whitespace after the digits eaten; `\` and a line break removed; `\c` is `c`; a lone `\`
# at the end removed.
_CSS_EATEN = bounded("(?:" + "|".join(rf"(?<=\\{_HEX}{{{k}}})" for k in range(1, 7)) + r")[ \t\n\r\x0c]")
_CSS_OTHER = bounded(r"\\(?=[^0-9a-fA-F\n])")  # (a backslash and a line break left: an eaten space)
# A code past U+10FFFF (six digits from 110000): its low byte, the last two digits, as `\xHH`.
_CSS_PAST_UNICODE = bounded(rf"\\(?:1[1-9a-fA-F]|[2-9a-fA-F]{_HEX}){_HEX}{{2}}(?={_HEX}{{2}})")
_CSS_DIGITS = [(bounded(rf"\\(?={_HEX}{{6}})"), r"\\U00")] + [
    (bounded(rf"\\(?={_HEX}{{{k}}}(?!{_HEX}))"), r"\\U" + "0" * (8 - k)) for k in range(5, 0, -1)
]


def css_decode(text: str) -> str:
    if "\\" not in text:
        return text
    text = _held(text, end="")  # an escaped line break is the codec's too: removed
    if "\\" in text:
        text = _CSS_EATEN.sub(r"\\\n", text)  # the space after the digits: the codec reads nothing
        text = _CSS_OTHER.sub("", text)
        text = _CSS_PAST_UNICODE.sub(r"\\x", text)
        for digits, spelled in _CSS_DIGITS:
            text = digits.sub(spelled, text)
    return low_bytes(decode_escaped(text).replace(HELD, "\\"))


def _held(text: str, end: str) -> str:
    """Each escaped backslash as HELD, and a lone backslash at the end as `end`."""
    if HELD in text:
        raise ValueError("text holds a character above U+00FF: CRS transformations take latin-1 text")
    text = text.replace("\\\\", HELD)
    return text[:-1] + end if text.endswith("\\") else text
