"""libinjection's SQL and XSS tokenizers, the `@detectSQLi` and `@detectXSS` of CRS rules 942100 and 941100.

libinjection (BSD) is C; ModSecurity v3 carries it and exports its entry points, so it is taken from
Debian's `libmodsecurity3` (Apache-2.0, with the distribution's security updates) through ctypes: no
wrapper of our own to keep, and none of the GPL ones. Both tokenizers read a value once, left to right,
with a fixed look-ahead: linear in its length (tests/policy/test_injection.py tries to break that).

Without the library, `available` is False and the two rules are reported as not evaluated.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

LIBRARY = "libmodsecurity.so.3"  # Debian: apt-get install libmodsecurity3
FINGERPRINT = 8  # libinjection's fingerprint buffer: up to 5 tokens and a NUL


def _load() -> ctypes.CDLL | None:
    try:
        library = ctypes.CDLL(LIBRARY)
    except OSError:
        return None
    library.libinjection_sqli.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p]
    library.libinjection_sqli.restype = ctypes.c_int
    library.libinjection_xss.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    library.libinjection_xss.restype = ctypes.c_int
    return library


_library = _load()
available = _library is not None
# Where libinjection writes the fingerprint, which nothing reads: one buffer for every call (a call that
# races another only overwrites the other's 8 bytes of it).
_fingerprint = ctypes.create_string_buffer(FINGERPRINT)


def detect_sqli(text: str) -> bool:
    """Whether libinjection tokenizes `text` (a CRS value: its bytes as latin-1) as SQL injection. One
    word or number is one token, never an injection: not worth the call."""
    if text.isalnum():
        return False
    assert _library is not None
    data = text.encode("latin-1", "replace")
    return bool(_library.libinjection_sqli(data, len(data), _fingerprint))


def detect_xss(text: str) -> bool:
    """Whether libinjection's HTML5 tokenizer finds script in `text` (a CRS value). It flags a tag (`<`)
    or an attribute's value (after `=`): a text with neither is not worth the call."""
    if "<" not in text and "=" not in text:
        return False
    assert _library is not None
    data = text.encode("latin-1", "replace")
    return bool(_library.libinjection_xss(data, len(data)))


OPERATORS: dict[str, Callable[[str], bool]] = {"detectsqli": detect_sqli, "detectxss": detect_xss}
