"""CRS transformations against ModSecurity's documented behaviour (reference manual, "Transformation
functions"), one byte a character as ModSecurity works on bytes."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policy.crs import transforms as t
from policy.crs.pipelines import Pipelines, Shared
from policy.crs.transforms import FUNCTIONS, pipeline

CASES = [
    # urlDecodeUni: %HH, %uHHHH (low byte; full-width ASCII to ASCII), + to space, invalid kept
    (t.url_decode_uni, "a%27b+c", "a'b c"),
    (t.url_decode_uni, "%u0041%uFF1C%u2215", "A<\x15"),
    (t.url_decode_uni, "%zz%4%", "%zz%4%"),
    # urlDecode: no %u
    (t.url_decode, "%u0041%41", "%u0041A"),
    # htmlEntityDecode: &#xHH; &#DDD; (';' optional) &quot; &nbsp; &lt; &gt; &amp;
    (t.html_entity_decode, "&lt;a&#x41;&#65&quot;&nbsp;&amp;", '<aAA"\xa0&'),
    (t.html_entity_decode, "&foo; &#x;", "&foo; &#x;"),
    # jsDecode: \uHHHH \xHH \OOO \n... and \c -> c
    (t.js_decode, r"\u0041\x42\101\n\q", "ABA\nq"),
    (t.js_decode, r"\uff1c\400", "< 0"),
    # cssDecode: \ + 1..6 hex (one whitespace eaten), \newline removed, \c -> c
    (t.css_decode, "\\41 b\\6a\\\nx\\z", "Abjxz"),
    (t.css_decode, "\\00003cscript", "<script"),
    (t.remove_nulls, "a\x00b\x00", "ab"),
    (t.remove_whitespace, "a b\t\nc\xa0d", "abcd"),
    (t.compress_whitespace, "a  b\t\n c", "a b c"),
    # cmdLine: \ " ' ^ deleted; , ; and whitespace runs to one space; no space before / or (; lowercase
    (t.cmd_line, 'C:\\Win"d"ows ; cat /etc, ^p (x)', "c:windows cat/etc p(x)"),
    (t.cmd_line, "c^a^t  /e't'c/pa\\sswd", "cat/etc/passwd"),
    # normalisePath: repeated slashes, /./ and /../ removed
    (t.normalise_path, "/a//b/./c/../../d/", "/a/d/"),
    (t.normalise_path, "../../etc/passwd", "../../etc/passwd"),
    (t.normalise_path, "/../../etc/passwd", "/etc/passwd"),
    (t.normalise_path_win, "\\a\\..\\windows\\win.ini", "/windows/win.ini"),
    (t.replace_comments, "se/**/lect/*x", "se lect "),
    (t.replace_comments, "a/*b*/c/*d*/e", "a c e"),
    (t.utf8_to_unicode, "\xc3\xa9a\xe2\x80\x9c", "%u00e9a%u201c"),
    (t.utf8_to_unicode, "\xff\xc3", "\xff\xc3"),  # invalid sequences kept as bytes
    (t.base64_decode, "PHNjcmlwdD4=", "<script>"),
    (t.base64_decode, "PHNjcmlwdD4", "<script>"),
    (t.lowercase, "SeLeCt \xc0", "select \xc0"),  # ASCII only, as C's tolower()
]


@pytest.mark.parametrize(("function", "given", "expected"), CASES)
def test_transformation(function: object, given: str, expected: str) -> None:
    assert function(given) == expected  # type: ignore[operator]


def test_a_pipeline_applies_in_order() -> None:
    assert pipeline(("urldecodeuni", "htmlentitydecode", "lowercase"))("%26lt;SCRIPT") == "<script"
    assert pipeline(())("As Is") == "As Is"


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from(list("%u0aF\\&#x;/.*+ \n'\"^,<>") + ["\xc3", "\xa9"]), max_size=300)
)
def test_every_function_takes_any_byte_string_and_keeps_bytes(text: str) -> None:
    for name, function in FUNCTIONS.items():
        out = function(text)
        assert all(ord(c) < 256 for c in out), name


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_function_is_linear_on_64_kib_of_its_worst_fragments(name: str) -> None:
    for fragment in ("%u", "\\", "&#", "/../", "/*", " ,", "\xc3", "%4"):
        started = time.perf_counter()
        FUNCTIONS[name](fragment * (65536 // len(fragment)))
        assert time.perf_counter() - started < 0.25, f"{name} on {fragment!r}"


# Every pipeline CRS 3.3 (REQUEST-930..944) uses, as the rules name them.
CRS_PIPELINES = [
    ("urldecodeuni",), (), ("lowercase",), ("lowercase", "removewhitespace"), ("urldecodeuni", "cmdline"),
    ("utf8tounicode", "urldecodeuni", "htmlentitydecode", "jsdecode", "cssdecode", "removenulls"),
    ("utf8tounicode", "urldecodeuni", "removenulls", "cmdline"),
    ("utf8tounicode", "urldecodeuni", "normalizepathwin", "lowercase"), ("urldecodeuni", "lowercase"),
    ("utf8tounicode", "urldecodeuni", "htmlentitydecode", "jsdecode", "cssdecode", "lowercase",
     "removenulls"),
    ("urldecodeuni", "htmlentitydecode", "compresswhitespace"), ("utf8tounicode", "urldecodeuni"),
    ("urldecodeuni", "cmdline", "lowercase"), ("urldecodeuni", "cmdline", "normalizepath", "lowercase"),
    ("urldecode",), ("urldecode", "urldecodeuni"), ("lowercase", "urldecodeuni"),
    ("urldecode", "urldecodeuni", "normalizepath", "cmdline"), ("urldecodeuni", "normalisepath", "lowercase"),
    ("normalisepath", "urldecodeuni", "lowercase"), ("urldecode", "replacecomments", "compresswhitespace"),
    ("normalisepath", "urldecodeuni"), ("urldecodeuni", "base64decode"),
    ("urldecodeuni", "lowercase", "urldecode", "htmlentitydecode", "jsdecode"),
    ("urldecodeuni", "urldecode", "htmlentitydecode", "jsdecode"), ("urldecodeuni", "compresswhitespace"),
    ("urldecodeuni", "jsdecode", "lowercase"), ("urldecodeuni", "replacecomments"),
]  # fmt: skip
PIECES = st.sampled_from(
    ["a", "B", "1", " ", "  ", "/", ".", "..", "%", "%41", "%u0041", "+", "&", "&#x3c;", "\\", "\\x41", "'",
     '"', "^", ",", ";", "\t", "\n", "\x00", "*", "/*", "(", "\xc3\xa9", "\xa0", "=", "<", "PHN"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(PIECES, max_size=12))
def test_skipping_what_cannot_act_gives_what_every_pipeline_gives(parts: list[str]) -> None:
    text = "".join(parts)
    pipelines = Pipelines(CRS_PIPELINES)
    wanted = frozenset(pipelines.index.values())
    results = pipelines.transformed(text, wanted, Shared())
    for names, index in pipelines.index.items():
        expected = pipeline(names)(text)
        assert index in results.get(expected, frozenset()), f"{names} of {text!r}: want {expected!r}"


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(
        st.lists(PIECES | st.sampled_from(["?", "%4", "%u", "%u00", "u0041", "41", "F"]), max_size=4)
    )
)
def test_a_text_decoded_piece_by_piece_gives_what_decoding_it_whole_gives(pieces: list[list[str]]) -> None:
    """The request line, target, path and query share one URL decoding of their pieces; an escape cut
    across two pieces (`%4` then `1`) makes the whole text decoded as one."""
    parts = tuple("".join(piece) for piece in pieces)
    text = "".join(parts)
    pipelines = Pipelines(CRS_PIPELINES)
    wanted = frozenset(pipelines.index.values())
    shared = Shared()
    shared.pieces[text] = parts
    for part in parts:  # the pieces as values of their own first, as a request's query is
        pipelines.transformed(part, wanted, shared)
    results = pipelines.transformed(text, wanted, shared)
    for names, index in pipelines.index.items():
        expected = pipeline(names)(text)
        assert index in results.get(expected, frozenset()), f"{names} of {text!r}: want {expected!r}"


def reference_utf8_to_unicode(text: str) -> str:
    """The byte-by-byte loop `utf8_to_unicode` replaced."""
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


UTF8 = st.lists(
    st.sampled_from(
        ["a", "\\", "\\\\", "\\x", "\\u", "\\udc", "%u", "\x00", "\t", "\n", "\x7f", "\x80", "\xbf"]
    )
    | st.sampled_from(["\xc0", "\xc3", "\xe2", "\xed", "\xf0", "\xf4", "\xf5", "\xff", "\xa0", "\x9c"])
    | st.characters(max_codepoint=0x10FFFF, exclude_categories=["Cs"]).map(
        lambda char: char.encode("utf-8").decode("latin-1")
    ),
    max_size=16,
).map("".join)


@settings(max_examples=5000)
@given(UTF8)
def test_utf8_to_unicode_is_the_byte_by_byte_loop(text: str) -> None:
    assert t.utf8_to_unicode(text) == reference_utf8_to_unicode(text)
