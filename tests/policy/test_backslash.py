"""policy/backslash.py decodes in one C pass what a regex substitution with a function decoded token by
token: the same text, whatever the input (escapes cut short, escaped backslashes, octal past \\377, CSS codes
past U+10FFFF, a backslash at the end). The references below are those token-by-token decoders."""

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from policy import backslash

HEX = "0123456789abcdefABCDEF"


def _byte(code: int) -> str:
    return chr(code - 0xFEE0) if 0xFF01 <= code <= 0xFF5E else chr(code & 0xFF)


def reference_unescape(text: str) -> str:
    return re.sub(
        r"\\u([0-9a-fA-F]{4})|\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1) or m.group(2), 16)), text
    )


JS_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def reference_js(text: str) -> str:
    def token(match: re.Match[str]) -> str:
        found = match.group(0)
        kind = found[1]
        if kind in "uU" and len(found) == 6:
            return _byte(int(found[2:], 16))
        if kind in "xX" and len(found) == 4:
            return chr(int(found[2:], 16))
        if kind in "01234567":
            code = int(found[1:], 8)
            return chr(code) if code <= 0o377 else chr(int(found[1:3], 8)) + found[3]
        return JS_SIMPLE.get(kind, kind)

    return re.sub(r"(?s)\\(?:[uU][0-9a-fA-F]{4}|[xX][0-9a-fA-F]{2}|[0-7]{1,3}|.)", token, text)


def reference_css(text: str) -> str:
    def token(match: re.Match[str]) -> str:
        found = match.group(0)
        if len(found) == 1 or found[1] == "\n":
            return ""
        digits = found[1:].rstrip(" \t\n\r\x0c")
        if digits and all(c in HEX for c in digits):
            return _byte(int(digits, 16))
        return found[1]

    return re.sub(r"(?s)\\(?:[0-9a-fA-F]{1,6}[ \t\n\r\x0c]?|.)?", token, text)


PIECES = ["\\", "\\\\", "\\\\\\", "u", "U", "x", "X", "N", "0", "1", "3", "4", "7", "8", "9", "a", "b", "c"]
PIECES += ["f", "F", "n", "r", "t", "v", "q", "'", '"', " ", "\t", "\n", "\r", "\x0c", "\x00", "%", "{"]
PIECES += ["41", "0041", "ff01", "FF3C", "d800", "DFFF", "377", "400", "777", "110000", "10FFFF", "FFFFFF"]
PIECES += ["1234567", "\xe9", "\xff", "\xa0"]
LATIN1 = st.lists(st.sampled_from(PIECES), max_size=20).map("".join)
WIDE = ["中", "\U0001f600", "\ud800", "\u0100"]
ANY = st.lists(st.sampled_from(PIECES + WIDE) | st.characters(), max_size=20)


@settings(max_examples=3000)
@given(LATIN1)
def test_js_decode_is_the_token_by_token_decoder(text: str) -> None:
    assert backslash.js_decode(text) == reference_js(text)


@settings(max_examples=3000)
@given(LATIN1)
def test_css_decode_is_the_token_by_token_decoder(text: str) -> None:
    assert backslash.css_decode(text) == reference_css(text)


@settings(max_examples=3000)
@given(ANY.map("".join))
def test_unescape_is_the_token_by_token_decoder_on_any_text(text: str) -> None:
    assert backslash.unescape(text) == reference_unescape(text)


def test_examples() -> None:
    assert backslash.js_decode(r"\u0041\x42\101\n\q\\x41\400\uff1c\U0041") == "ABA\nq\\x41 0<A"
    assert backslash.css_decode("\\41 b\\6a\\\nx\\z\\\\41\\FFFFFF\\110041x\\") == "Abjxz\\41\xffAx"
    assert backslash.unescape(r"\u0041\x42\\u0043\X44\u12") == "AB\\C\\X44\\u12"
