"""ModSecurity's transformation functions (`t:name`), as the OWASP Core Rule Set uses them.

Values are `str` holding one byte a character (latin-1), as ModSecurity works on bytes: a decoded escape
keeps its low byte, and a full-width form (U+FF01..U+FF5E) becomes its ASCII twin, as ModSecurity does.
Each function runs in one pass over its input (every loop advances), so a value costs linear time.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable

from policy import backslash
from policy.linear import bounded, substitute
from policy.percent import decode_escaped, low_bytes, unquote


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


_ENTITY = bounded(r"(&(?:#[xX][0-9a-fA-F]{1,8};?|#[0-9]{1,10};?|(?:quot|amp|lt|gt|nbsp);))")
_NAMED = {"&quot;": '"', "&amp;": "&", "&lt;": "<", "&gt;": ">", "&nbsp;": "\xa0"}


def _entity(token: str) -> str:
    named = _NAMED.get(token)
    if named is not None:
        return named
    digits = token[2:].rstrip(";")
    return _byte(int(digits[1:], 16) if digits[0] in "xX" else int(digits))


def html_entity_decode(text: str) -> str:
    """`&#xHH;`, `&#DDD;` (the `;` optional) and `&quot; &amp; &lt; &gt; &nbsp;`."""
    return substitute(_ENTITY, text, _entity) if "&" in text else text


def js_decode(text: str) -> str:
    """`\\uHHHH`, `\\xHH`, `\\OOO` (octal), `\\a\\b\\f\\n\\r\\t\\v`, and `\\c` as `c` (one C pass:
    `policy.backslash`)."""
    return backslash.js_decode(text)


def css_decode(text: str) -> str:
    """CSS 2 escapes: `\\` and 1-6 hex digits (one whitespace after them eaten), `\\` newline removed,
    `\\` and any other character is that character (one C pass: `policy.backslash`)."""
    return backslash.css_decode(text)


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


def cmd_line(text: str) -> str:
    """ModSecurity's cmdLine: `\\ " ' ^` deleted, `,` and `;` and whitespace runs to one space, spaces
    before `/` and `(` deleted, lower case."""
    text = _squeeze(_replace_all(_replace_all(text, "\\\"'^", ""), "\t\n\r,;", " "))
    text = text.replace(" /", "/").replace(" (", "(")  # (spaces are single by then)
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


_ASTRAL = bounded(r"\\U[0-9a-f]{4}")  # `\\U0001f600`: its last four digits, as ModSecurity keeps them


def utf8_to_unicode(text: str) -> str:
    """Each UTF-8 multi-byte sequence as `%uHHHH` (lower-case hex, the code's low 16 bits); other bytes
    kept. In C passes, not a Python loop a byte: the bytes are decoded as UTF-8 (a byte no sequence takes
    kept as a surrogate escape) and written in `unicode_escape`'s escapes; a decoded character's escape
    (`\\xe9`, `\\u201c`, `\\U0001f600`) is respelled `%u00e9`, `%u201c`, `%uf600`, a kept byte's (`\\udce9`)
    `\\xe9`, and the codec decodes what is left back to bytes."""
    if text.isascii():
        return text
    decoded = text.encode("latin-1").decode("utf-8", "surrogateescape")
    escaped = decoded.encode("unicode_escape").decode("ascii")
    escaped = escaped.replace("\\\\", "\0")  # each backslash left starts an escape (a NUL is escaped too)
    if "\\x" in escaped:
        for digit in "89abcdef":  # U+0080..U+00FF, decoded from two bytes
            escaped = escaped.replace(f"\\x{digit}", f"%u00{digit}")
    if "\\udc" in escaped:
        for digit in "89abcdef":  # a byte kept
            escaped = escaped.replace(f"\\udc{digit}", f"\\x{digit}")
    if "\\U" in escaped:
        escaped = _ASTRAL.sub("%u", escaped)
    escaped = escaped.replace("\\u", "%u")
    return decode_escaped(escaped.replace("\0", "\\\\"))


_NOT_BASE64 = bytes(c for c in range(256) if not (chr(c).isascii() and (chr(c).isalnum() or chr(c) in "+/")))


def base64_decode(text: str) -> str:
    """The base64 the value holds (characters outside the alphabet skipped); unchanged if none decodes."""
    try:
        raw = text.encode("latin-1")
    except UnicodeEncodeError:  # a character above \xff is no base64
        return text
    clean = raw if raw.isalnum() else raw.translate(None, _NOT_BASE64)  # bytes: a C table, not a dict
    if not clean:
        return text
    try:
        return binascii.a2b_base64(clean + b"=" * (-len(clean) % 4)).decode("latin-1")
    except binascii.Error:
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
