"""policy/percent.py decodes in one C pass what urllib (and CRS's urlDecodeUni) decode token by token:
the same text, whatever the input, including escapes that are cut short, lone `%`, backslashes that look
like the escapes it builds, and characters above U+00FF."""

import re
from urllib.parse import unquote as urllib_unquote
from urllib.parse import unquote_plus as urllib_unquote_plus

from hypothesis import given, settings
from hypothesis import strategies as st

from policy.normalise import url_decode
from policy.percent import low_bytes, unquote

# The grammar's pieces, and what could be mistaken for the escapes the decoder builds (\x, \u, \\).
PIECES = ["%", "%u", "%U", "+", "\\", "\\x", "\\u", "\\\\", "u", "x", "0", "4", "1", "F", "f", "e", "g", "z"]
PIECES += [
    "%41",
    "%2B",
    "%25",
    "%e9",
    "%FF",
    "%u0041",
    "%uFF41",
    "%u4e2d",
    "%uD800",
    "é",
    "\xff",
    "中",
    "\x00",
]
TEXT = st.lists(st.sampled_from(PIECES) | st.characters(), max_size=24).map("".join)
LATIN1 = TEXT.map(lambda text: text.encode("latin-1", "replace").decode("latin-1"))


def uni_reference(text: str) -> str:
    """What CRS's token loop made: `%uHHHH` to U+HHHH, `%HH` to U+00HH, `+` a space."""

    def token(match: re.Match[str]) -> str:
        found = match.group(0)
        return " " if found == "+" else chr(int(found[2:] if found[1] in "uU" else found[1:], 16))

    return re.sub(r"%[uU][0-9a-fA-F]{4}|%[0-9a-fA-F]{2}|\+", token, text)


@settings(max_examples=3000)
@given(TEXT)
def test_unquote_is_urllibs_latin1_unquote(text: str) -> None:
    assert unquote(text) == urllib_unquote(text, encoding="latin-1")
    assert unquote(text, plus=True) == urllib_unquote_plus(text, encoding="latin-1")


@settings(max_examples=3000)
@given(TEXT)
def test_uni_decodes_u_escapes_in_the_same_pass(text: str) -> None:
    assert unquote(text, plus=True, uni=True) == uni_reference(text)


@settings(max_examples=1000)
@given(LATIN1)
def test_low_bytes_is_modsecuritys_byte_of_each_code_point(text: str) -> None:
    decoded = unquote(text, plus=True, uni=True)
    expected = "".join(
        chr(ord(c) - 0xFEE0) if 0xFF01 <= ord(c) <= 0xFF5E else chr(ord(c) & 0xFF) for c in decoded
    )
    assert low_bytes(decoded) == expected


EDGES = [
    "\uff00",
    "\uff01",
    "\uff5e",
    "\uff5f",
    "\uffff",
    "\U0001ff41",
    "\U0010ff21",
    "\ud800",
    "\x7f",
    "\xff",
]


@settings(max_examples=3000)
@given(st.lists(st.sampled_from(EDGES) | st.characters(), max_size=24).map("".join))
def test_low_bytes_of_any_text(text: str) -> None:
    expected = "".join(
        chr(ord(c) - 0xFEE0) if 0xFF01 <= ord(c) <= 0xFF5E else chr(ord(c) & 0xFF) for c in text
    )
    assert low_bytes(text) == expected


def test_hostile_runs_decode_in_one_pass() -> None:
    """64 KiB of each: every character decoded or kept exactly (timing is bench/pathological.py's)."""
    size = 65536
    assert unquote("%2525" * (size // 5)) == "%25" * (size // 5)
    assert unquote("%zz" * (size // 3)) == "%zz" * (size // 3)
    assert unquote("%41" * (size // 3) + "%") == "A" * (size // 3) + "%"
    assert low_bytes(unquote("%u0041%uFF41%u4e2d" * (size // 18), uni=True)) == "Aa-" * (size // 18)
    assert unquote("\\x41" * (size // 4) + "%") == "\\x41" * (size // 4) + "%"


def test_the_detectors_decoding_reads_u_escapes_in_either_case() -> None:
    """`%U003C` is `<` to IIS as `%u003C` is: the detectors' decoding (policy.normalise) reads both."""
    assert url_decode("%U003Cscript%u003E") == "<script>"
    assert url_decode("%u0025%2541") == "%A"  # round by round: %%41, then %A
