"""The values a request carries, found once per request: path, query and form parameters, JSON strings,
and the headers an attacker controls. Each is kept raw and normalised.

Values are joined into one text so that a keyword or pattern costs one search per request, not one per
value; the detectors run only over `suspects`, the values with a character or word a detector needs.
"""

from __future__ import annotations

import bisect
import functools
import json
import re
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple
from urllib.parse import unquote_plus

from policy.detectors import scan
from policy.incoming import CREDENTIAL_HEADERS, Incoming
from policy.normalise import normalise, url_decode

MAX_FIELDS = 512  # a request with more parameters than this is abnormal in itself
MAX_SCAN_BYTES = 65536  # bytes of a query or body that are parsed into fields
SEPARATOR = "\x01"  # between values in a joined text: not whitespace, matched by no detector
# Headers every client sends with machine-made values: matching them only adds false flags.
ROUTINE_HEADERS = frozenset(
    {
        "host", "accept", "accept-encoding", "accept-language", "accept-charset", "connection",
        "content-length", "content-type", "cache-control", "pragma", "if-none-match", "if-modified-since",
        "upgrade-insecure-requests",
    }
)  # fmt: skip
# At least one of these appears in anything a detector in `policy.detectors` recognises.
_SUSPECT = re.compile(
    r"""['"`<>;|&$(){}\\=\x00\r\n]|\.\.|@@|/etc/|/proc/|/bin/|\.ini\b
    |\b(?:union|select|waitfor|information_schema|xp_cmdshell|sysobjects|insert|delete|drop|into
        |javascript|vbscript|livescript|data|expression|document|cmd)\b""",
    re.VERBOSE,
)


def _inspect(raw: str) -> tuple[str, bool]:
    decoded = normalise(raw)
    return decoded, _SUSPECT.search(decoded) is not None


_inspect_cached = functools.lru_cache(maxsize=16384)(_inspect)


def inspect(raw: str) -> tuple[str, bool]:
    """(normalised value, whether any detector could fire on it); short values are remembered."""
    return _inspect_cached(raw) if len(raw) <= 512 else _inspect(raw)


class Field(NamedTuple):  # a tuple: built ~15 times a request, so it must be cheap
    where: str  # "query id", "body login", "header user-agent", "path", "json $.a.b"
    name: str
    raw: str
    decoded: str  # normalised: what detectors match


@dataclass(frozen=True)
class Fields:
    path: str  # the decoded path
    params: tuple[tuple[str, str, str], ...]  # (source, name, once-decoded value) of query and form fields
    values: tuple[Field, ...]
    suspects: tuple[Field, ...]  # the values a detector could fire on (see _SUSPECT)
    anomaly: str | None  # what is abnormal in the request's shape (too many parameters, JSON too deep)

    @cached_property
    def findings(self) -> dict[str, tuple[Field, str]]:
        """Detector name -> (the first value it fired on, what it recognised), over the suspect values."""
        found: dict[str, tuple[Field, str]] = {}
        for value in self.suspects:
            for name, match in scan(value.decoded):
                found.setdefault(name, (value, match))
        return found

    @cached_property
    def joined(self) -> str:
        """Every normalised value in one text, separated by SEPARATOR: one search serves them all."""
        return SEPARATOR.join(value.decoded for value in self.values)

    @cached_property
    def _starts(self) -> list[int]:
        starts, position = [], 0
        for value in self.values:
            starts.append(position)
            position += len(value.decoded) + len(SEPARATOR)
        return starts

    def at(self, position: int) -> Field:
        """The value a position of `joined` falls in."""
        return self.values[bisect.bisect_right(self._starts, position) - 1]

    def search(self, regex: re.Pattern[str]) -> tuple[Field, str] | None:
        """The first value `regex` matches, and the match."""
        found = regex.search(self.joined)
        return (self.at(found.start()), found.group(0)) if found else None


@functools.lru_cache(maxsize=16384)  # form values and parameter names repeat across requests
def _unquote_cached(text: str) -> str:
    return unquote_plus(text, encoding="latin-1")


def _unquote(text: str) -> str:
    if "%" not in text and "+" not in text:
        return text
    return _unquote_cached(text) if len(text) <= 256 else unquote_plus(text, encoding="latin-1")


def _pairs(text: str) -> list[tuple[str, str]]:
    """`parse_qsl(keep_blank_values=True)`, decoding only what is encoded, and at most MAX_FIELDS + 1
    pairs: a query of 100k parameters costs what the inspected ones cost."""
    pairs = []
    for pair in text.split("&", MAX_FIELDS + 1)[: MAX_FIELDS + 1]:
        if pair:
            name, _, value = pair.partition("=")
            pairs.append((_unquote(name), _unquote(value)))
    return pairs


MAX_JSON_DEPTH = 64


def _json_strings(node: object, path: str, out: list[tuple[str, str]], depth: int = 0) -> None:
    if len(out) >= MAX_FIELDS:
        return
    if depth > MAX_JSON_DEPTH:
        raise RecursionError
    if isinstance(node, str):
        out.append((path, node))
    elif isinstance(node, dict):
        for key, value in node.items():
            out.append((f"{path}.{key}#key", str(key)))
            _json_strings(value, f"{path}.{key}", out, depth + 1)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _json_strings(value, f"{path}[{i}]", out, depth + 1)


def _body(incoming: Incoming) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]], str | None]:
    """(form parameters, other values, anomaly) of the body."""
    body = incoming.body[:MAX_SCAN_BYTES].decode("latin-1")
    if not body:
        return [], [], None
    ctype = incoming.header("content-type") or ""
    if "json" in ctype:
        strings: list[tuple[str, str]] = []
        try:
            _json_strings(json.loads(body), "$", strings)
        except RecursionError:
            return [], [("body", body)], f"JSON nested deeper than {MAX_JSON_DEPTH}"
        except ValueError:
            return [], [("body", body)], None
        return [], [(f"json {where}", text) for where, text in strings], None
    if "urlencoded" in ctype or (not ctype and "=" in body and " " not in body[:200]):
        return [("body", name, value) for name, value in _pairs(body)], [], None
    return [], [("body", body)], None


def extract(incoming: Incoming) -> Fields:
    """Every value worth inspecting, at most MAX_FIELDS parameters of them."""
    path_raw, _, query = incoming.target[:MAX_SCAN_BYTES].partition("?")
    query = query.partition("#")[0]
    form, others, anomaly = _body(incoming)
    params = [("query", name, value) for name, value in _pairs(query)] + form
    if len(params) > MAX_FIELDS:
        anomaly = f"more than {MAX_FIELDS} parameters"
    params = params[:MAX_FIELDS]
    found = [(f"{source} {name}", name, value) for source, name, value in params]
    found += [(f"{source} name", name, name) for source, name, _ in params if not name.isalnum()]
    found += [(where, where, text) for where, text in others]
    for name, value in incoming.headers:
        if name == "cookie":  # each cookie on its own: an opaque session id is not suspect, a payload is
            cookies = (c.strip().partition("=") for c in value.split(";")[:MAX_FIELDS])
            found += [(f"cookie {c_name}", c_name, c_value) for c_name, _, c_value in cookies]
        elif name not in ROUTINE_HEADERS and name not in CREDENTIAL_HEADERS:
            found.append((f"header {name}", name, value))
    found.append(("path", "path", path_raw))
    values, suspects = [], []
    for where, name, raw in found:
        decoded, suspect = inspect(raw)
        values.append(Field(where, name, raw, decoded))
        if suspect:
            suspects.append(values[-1])
    return Fields(url_decode(path_raw, plus=False), tuple(params), tuple(values), tuple(suspects), anomaly)
