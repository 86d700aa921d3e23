"""Normalisation before matching: undo the encodings attackers use to slip past filters, within a budget.

Repeated URL decoding (`%XX`, `%uXXXX`, `+`), overlong UTF-8 for `.` and `/`, HTML entities, `\\uXXXX` and
`\\xXX` escapes, SQL comments and whitespace tricks, case. Bounded: at most MAX_SCAN characters of any one
value are decoded, so no input can make scoring slow (longer values are flagged as abnormal instead).
"""

from __future__ import annotations

import html
import re
from urllib.parse import unquote, unquote_plus

MAX_SCAN = 8192  # characters of one value that are decoded and matched
MAX_ROUNDS = 3  # double and triple encoding are common evasions; more rounds buy nothing

_PERCENT_U = re.compile(r"%u([0-9a-fA-F]{4})")
_OVERLONG = re.compile(r"%c0%ae|%c0%af|%c1%9c|%c0%2e|%c0%2f|%e0%80%ae|%e0%80%af", re.IGNORECASE)
_OVERLONG_CHARS = {"%c0%ae": ".", "%c0%2e": ".", "%e0%80%ae": ".", "%c0%af": "/", "%c0%2f": "/"}
_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})|\\x([0-9a-fA-F]{2})")
_SQL_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
_MYSQL_VERSIONED = re.compile(r"/\*!\d*(.*?)\*/", re.DOTALL)  # /*!50000SELECT*/ runs its content
_SPACE = re.compile(r"\s+")


def _overlong(match: re.Match[str]) -> str:
    return _OVERLONG_CHARS.get(match.group(0).lower(), "\\")


def _escape(match: re.Match[str]) -> str:
    return chr(int(match.group(1) or match.group(2), 16))


def url_decode(text: str, plus: bool = True) -> str:
    """Percent-decode until stable (at most MAX_ROUNDS), `%uXXXX` and overlong `.`/`/` included."""
    for _ in range(MAX_ROUNDS):
        if "%" not in text and not (plus and "+" in text):
            break
        step = _OVERLONG.sub(_overlong, text) if "%c" in text.lower() or "%e0" in text.lower() else text
        step = _PERCENT_U.sub(lambda m: chr(int(m.group(1), 16)), step) if "%u" in step.lower() else step
        step = unquote_plus(step, encoding="latin-1") if plus else unquote(step, encoding="latin-1")
        if step == text:
            break
        text = step
    return text


def normalise(text: str) -> str:
    """The form matchers look at: decoded, unescaped, comment-free, single-spaced, lower-case."""
    text = url_decode(text[:MAX_SCAN])
    if "&" in text:
        text = html.unescape(text)
    if "\\" in text:
        text = _ESCAPE.sub(_escape, text)
    if "/*" in text:  # a comment may separate words (UNION/**/SELECT) or split one (SEL/**/ECT): keep both
        text = _MYSQL_VERSIONED.sub(r" \1 ", text)
        text = f"{_SQL_COMMENT.sub(' ', text)} {_SQL_COMMENT.sub('', text)}"
    return _SPACE.sub(" ", text).strip().lower()
