"""ModSecurity's transformation functions (`t:name`), as the OWASP Core Rule Set uses them.

Values are `str` holding one byte a character (latin-1), as ModSecurity works on bytes: a decoded escape
keeps its low byte, and a full-width form (U+FF01..U+FF5E) becomes its ASCII twin, as ModSecurity does.
Each function runs in one pass over its input (every loop advances), so a value costs linear time.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable

from policy.linear import bounded
from policy.percent import low_bytes, unquote

_HEX = frozenset("0123456789abcdefABCDEF")


def _byte(code: int) -> str:
    """The byte ModSecurity keeps of a decoded code point."""
    if 0xFF01 <= code <= 0xFF5E:  # full-width ASCII
        return chr(code - 0xFEE0)
    return chr(code & 0xFF)


def lowercase(text: str) -> str:
    return text.encode("latin-1").lower().decode("latin-1")  # ASCII letters only, as C's tolower()


def url_decode(text: str, unicode: bool = False) -> str:
    """`%HH` (and with `unicode`, `%uHHHH`) decoded, `+` to a space; invalid escapes kept as they are."""
    if "%" not in text and "+" not in text:
        return text
    if not unicode:
        return unquote(text, plus=True)
    return low_bytes(unquote(text, plus=True, uni=True))


def url_decode_uni(text: str) -> str:
    return url_decode(text, unicode=True)


_ENTITY = bounded(r"&(?:#[xX]([0-9a-fA-F]{1,8});?|#([0-9]{1,10});?|(quot|amp|lt|gt|nbsp);)")
_NAMED = {"quot": '"', "amp": "&", "lt": "<", "gt": ">", "nbsp": "\xa0"}


def _entity(match: re.Match[str]) -> str:
    hexa, decimal, name = match.group(1), match.group(2), match.group(3)
    if name:
        return _NAMED[name.lower()] if name.lower() in _NAMED else match.group(0)
    return _byte(int(hexa, 16) if hexa else int(decimal))


def html_entity_decode(text: str) -> str:
    """`&#xHH;`, `&#DDD;` (the `;` optional) and `&quot; &amp; &lt; &gt; &nbsp;`."""
    return _ENTITY.sub(_entity, text) if "&" in text else text


_JS_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


_JS_ESCAPE = bounded(r"(?s)\\(?:[uU][0-9a-fA-F]{4}|[xX][0-9a-fA-F]{2}|[0-7]{1,3}|.)")


def _js_unescape(match: re.Match[str]) -> str:
    token = match.group(0)
    kind = token[1]
    if kind in "uU" and len(token) == 6:
        return _byte(int(token[2:], 16))
    if kind in "xX" and len(token) == 4:
        return chr(int(token[2:], 16))
    if kind in "01234567":
        code = int(token[1:], 8)
        return chr(code) if code <= 0o377 else chr(int(token[1:3], 8)) + token[3]
    return _JS_SIMPLE.get(kind, kind)


def js_decode(text: str) -> str:
    """`\\uHHHH`, `\\xHH`, `\\OOO` (octal), `\\a\\b\\f\\n\\r\\t\\v`, and `\\c` as `c`."""
    return _JS_ESCAPE.sub(_js_unescape, text) if "\\" in text else text


_CSS_ESCAPE = bounded(r"(?s)\\(?:[0-9a-fA-F]{1,6}[ \t\n\r\x0c]?|.)?")


def _css_unescape(match: re.Match[str]) -> str:
    token = match.group(0)
    if len(token) == 1 or token[1] == "\n":  # a lone backslash at the end, or an escaped line break
        return ""
    digits = token[1:].rstrip(" \t\n\r\x0c")
    if digits and all(c in _HEX for c in digits) and digits == token[1 : 1 + len(digits)]:
        return _byte(int(digits, 16))
    return token[1]


def css_decode(text: str) -> str:
    """CSS 2 escapes: `\\` and 1-6 hex digits (one whitespace after them eaten), `\\` newline removed,
    `\\` and any other character is that character."""
    return _CSS_ESCAPE.sub(_css_unescape, text) if "\\" in text else text


def remove_nulls(text: str) -> str:
    return text.replace("\x00", "")


def _replace_all(text: str, chars: str, by: str) -> str:
    """Each of `chars` replaced by `by` (str.replace per character: C speed, nothing done for absent ones)."""
    for char in chars:
        if char in text:
            text = text.replace(char, by)
    return text


def _squeeze(text: str) -> str:
    """Runs of spaces to one space (str methods: C speed, linear)."""
    if "  " not in text:
        return text
    inner = " ".join(part for part in text.split(" ") if part)
    return (" " if text.startswith(" ") else "") + inner + (" " if text.endswith(" ") and inner else "")


_SPACE_LIKE = "\t\n\r\x0b\x0c\xa0"


def remove_whitespace(text: str) -> str:
    return _replace_all(text, " " + _SPACE_LIKE, "")


def compress_whitespace(text: str) -> str:
    return _squeeze(_replace_all(text, _SPACE_LIKE, " "))


_CMD_BEFORE = bounded(r" ([/(])")


def cmd_line(text: str) -> str:
    """ModSecurity's cmdLine: `\\ " ' ^` deleted, `,` and `;` and whitespace runs to one space, spaces
    before `/` and `(` deleted, lower case."""
    text = _squeeze(_replace_all(_replace_all(text, "\\\"'^", ""), "\t\n\r,;", " "))
    if " /" in text or " (" in text:
        text = _CMD_BEFORE.sub(r"\1", text)
    return lowercase(text)


def normalise_path(text: str) -> str:
    """Repeated slashes, `/./` and `/../` (with the segment before it) removed, as ModSecurity does."""
    if "/" not in text and "." not in text:
        return text
    absolute, trailing = text.startswith("/"), text.endswith("/")
    parts: list[str] = []
    for segment in text.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not absolute:
                parts.append("..")
            continue
        parts.append(segment)
    out = ("/" if absolute else "") + "/".join(parts)
    return out + "/" if trailing and parts else out or ("/" if absolute else "")


def normalise_path_win(text: str) -> str:
    return normalise_path(text.replace("\\", "/"))


def replace_comments(text: str) -> str:
    """C comments (an unterminated one to the end) replaced by one space."""
    if "/*" not in text:
        return text
    out, i = [], 0
    while (start := text.find("/*", i)) >= 0:
        out.append(text[i:start])
        out.append(" ")
        end = text.find("*/", start + 2)
        if end < 0:
            return "".join(out)
        i = end + 2
    out.append(text[i:])
    return "".join(out)


def utf8_to_unicode(text: str) -> str:
    """Each UTF-8 multi-byte sequence as `%uHHHH` (lower-case hex); other bytes kept."""
    if text.isascii():
        return text
    raw, out, i = text.encode("latin-1"), [], 0
    while i < len(raw):
        b = raw[i]
        width = 2 if 0xC2 <= b <= 0xDF else 3 if 0xE0 <= b <= 0xEF else 4 if 0xF0 <= b <= 0xF4 else 0
        if width:
            try:
                code = ord(raw[i : i + width].decode("utf-8"))
            except UnicodeDecodeError:
                width = 0
            else:
                out.append(f"%u{code & 0xFFFF:04x}")
                i += width
                continue
        out.append(chr(b))
        i += 1
    return "".join(out)


_NOT_BASE64 = str.maketrans(
    "",
    "",
    "".join(chr(c) for c in range(256) if not (chr(c).isascii() and (chr(c).isalnum() or chr(c) in "+/"))),
)


def base64_decode(text: str) -> str:
    """The base64 the value holds (characters outside the alphabet skipped); unchanged if none decodes."""
    clean = text if text.isascii() and text.isalnum() else text.translate(_NOT_BASE64)
    if not clean:
        return text
    try:  # a character above \xff left in `clean`: ValueError
        return binascii.a2b_base64(clean + "=" * (-len(clean) % 4)).decode("latin-1")
    except (binascii.Error, ValueError):
        return text


FUNCTIONS: dict[str, Callable[[str], str]] = {
    "lowercase": lowercase,
    "urldecode": url_decode,
    "urldecodeuni": url_decode_uni,
    "htmlentitydecode": html_entity_decode,
    "jsdecode": js_decode,
    "cssdecode": css_decode,
    "removenulls": remove_nulls,
    "removewhitespace": remove_whitespace,
    "compresswhitespace": compress_whitespace,
    "cmdline": cmd_line,
    "normalisepath": normalise_path,
    "normalizepath": normalise_path,
    "normalizepathwin": normalise_path_win,
    "normalisepathwin": normalise_path_win,
    "replacecomments": replace_comments,
    "utf8tounicode": utf8_to_unicode,
    "base64decode": base64_decode,
}


def pipeline(names: tuple[str, ...]) -> Callable[[str], str]:
    """One function applying `names` in order (names as `FUNCTIONS` keys); KeyError for an unknown one."""
    functions = [FUNCTIONS[name] for name in names]

    def apply(text: str) -> str:
        for function in functions:
            text = function(text)
        return text

    return apply
