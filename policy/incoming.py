"""Terminate step's output: one request, read once, as a frozen value the rest of the pipeline shares."""

from __future__ import annotations

from dataclasses import dataclass

# Headers that carry credentials: never scanned into risk reasons, never passed to handlers.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization"})


@dataclass(frozen=True, slots=True)
class Incoming:
    """A request as received. `target` is the raw path and query, before any decoding."""

    method: str
    path: str
    target: str
    query: tuple[tuple[str, str], ...]
    headers: tuple[tuple[str, str], ...]  # names lower-cased, order and repeats kept
    body: bytes
    client_ip: str
    body_size: int | None = None  # the whole body's, when `body` is only the prefix read before streaming

    @property
    def size(self) -> int:
        return len(self.body) if self.body_size is None else self.body_size

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise ValueError(f"path must start with /, got {self.path[:40]!r}")
        if any(name != name.lower() for name, _ in self.headers):
            raise ValueError("header names must be lower-cased")

    def header(self, name: str) -> str | None:
        """The first value of header `name` (lower-case), or None."""
        return next((value for key, value in self.headers if key == name), None)
