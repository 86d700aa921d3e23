"""The handler contract: `handle(request: Request) -> Response | dict | list | str | bytes`.

Plain data and the standard library only, so the same handler runs unchanged in a thread and in a container.
"""

from __future__ import annotations

import json as _json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 header field name
_UNSAFE_VALUE = re.compile(r"[\r\n\x00]")  # a CR/LF in a value would split the response (injection)

Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Request:
    """What a handler receives. Header names are lower-case; the Authorization header is withheld."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    headers: Headers = ()
    body: bytes = b""
    entity_id: str = ""

    def header(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k == name), default)

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of query parameter `name`."""
        return next((v for k, v in self.query if k == name), default)

    def json(self) -> Any:
        """The body parsed as JSON; raises ValueError when it is not JSON."""
        return _json.loads(self.body)


@dataclass(frozen=True, slots=True)
class Response:
    """What a handler returns: sent to the client as is (hop-by-hop headers excepted)."""

    status: int = 200
    headers: Headers = ()
    body: bytes = b""

    def __post_init__(self) -> None:
        if not isinstance(self.status, int) or not 200 <= self.status <= 599:  # 1xx is never final
            raise ValueError(f"status must be an integer within 200..599, got {self.status!r}")
        if not isinstance(self.body, bytes):
            raise ValueError(f"body must be bytes, got {type(self.body).__name__}")
        object.__setattr__(self, "headers", _headers(self.headers))

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
        body = _json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
        return cls(status, (("Content-Type", "application/json"), *(headers or {}).items()), body)

    @classmethod
    def text(cls, text: str, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
        ctype = ("Content-Type", "text/plain; charset=utf-8")
        return cls(status, (ctype, *(headers or {}).items()), text.encode())


def _headers(headers: Iterable[tuple[str, str]] | Mapping[str, str]) -> Headers:
    pairs = tuple(headers.items() if isinstance(headers, Mapping) else headers)
    for pair in pairs:
        if len(pair) != 2 or not all(isinstance(part, str) for part in pair):
            raise ValueError(f"headers must be (name, value) string pairs, got {pair!r}"[:120])
        if not _TOKEN.fullmatch(pair[0]) or _UNSAFE_VALUE.search(pair[1]):
            raise ValueError(f"invalid header {pair[0]!r}"[:120])
    return pairs


def to_response(value: object) -> Response:
    """Normalise a handler's return value: Response as is, dict/list as JSON, str as text, bytes raw."""
    if isinstance(value, Response):
        return value
    if isinstance(value, dict | list):
        return Response.json(value)
    if isinstance(value, str):
        return Response.text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return Response(200, (("Content-Type", "application/octet-stream"),), bytes(value))
    raise TypeError(f"handler returned {type(value).__name__}; expected Response, dict, list, str or bytes")
