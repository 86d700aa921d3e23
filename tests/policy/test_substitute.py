"""Substitutions that call Python once per distinct token (`policy.linear.substitute`) give what a
substitution calling it once per match gave: HTML references for the detectors (`html.unescape` itself)
and for CRS's htmlEntityDecode, and overlong UTF-8 escapes."""

import html
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from policy.crs import transforms
from policy.linear import bounded, substitute
from policy.normalise import _ODD_CHARREF, _short_charrefs, html_unescape

PIECES = ["&", "&#", "&#x", "&#X", "#", ";", "0", "1", "6", "9", "4", "a", "F", "x", " ", "\t", "\n", "<"]
PIECES += ["amp", "AMP", "lt", "quot", "nbsp", "notin", "not", "nota", "copy", "a" * 33, "12345678", "0000"]
PIECES += ["&amp;", "&lt", "&#65;", "&#x41", "&#128;", "&#xD800;", "&#1114112;", "&#0;", "é", "\xff"]
TEXT = st.lists(st.sampled_from(PIECES), max_size=24).map("".join)


@settings(max_examples=3000)
@given(TEXT)
def test_html_unescape_is_htmls_own(text: str) -> None:
    if _ODD_CHARREF.search(text):  # as policy.normalise does first
        text = _short_charrefs(text)
    assert html_unescape(text) == html.unescape(text)


def reference_entity_decode(text: str) -> str:
    """The per-match substitution CRS's htmlEntityDecode was."""
    named = {"quot": '"', "amp": "&", "lt": "<", "gt": ">", "nbsp": "\xa0"}

    def one(match: re.Match[str]) -> str:
        hexa, decimal, name = match.group(1), match.group(2), match.group(3)
        if name:
            return named[name]
        code = int(hexa, 16) if hexa else int(decimal)
        return chr(code - 0xFEE0) if 0xFF01 <= code <= 0xFF5E else chr(code & 0xFF)

    return re.sub(r"&(?:#[xX]([0-9a-fA-F]{1,8});?|#([0-9]{1,10});?|(quot|amp|lt|gt|nbsp);)", one, text)


@settings(max_examples=3000)
@given(TEXT)
def test_crs_entity_decode_is_the_per_match_one(text: str) -> None:
    assert transforms.html_entity_decode(text) == reference_entity_decode(text)


def test_substitute_calls_once_per_distinct_token() -> None:
    calls: list[str] = []

    def upper(token: str) -> str:
        calls.append(token)
        return token.upper()

    regex = bounded(r"(a{1,4}b)")
    assert substitute(regex, "xab-aab-ab-x", upper) == "xAB-AAB-AB-x"
    assert sorted(calls) == ["aab", "ab"]
    assert substitute(regex, "nothing here", upper) == "nothing here"
