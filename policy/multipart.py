"""multipart/form-data by part, with python-multipart's streaming parser (Starlette's and FastAPI's): each
part's name, filename, type and headers, and its first bytes. The framing is the parser's to read; none of
it is ever inspected, and a part's bytes past what is kept are skipped at the parser's speed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header


@dataclass
class Part:
    name: str = ""
    filename: str | None = None  # None: a text field; a file otherwise (even a nameless one)
    ctype: str = ""  # its Content-Type, lower-cased, without parameters
    headers: list[tuple[str, str]] = field(default_factory=list)  # lower-cased names
    data: bytearray = field(default_factory=bytearray)  # its first bytes, as many as `keep` allowed
    size: int = 0  # all its bytes


def options(header: bytes | str) -> tuple[str, dict[bytes, bytes]]:
    """A header's value and its parameters (`form-data; name="a"`, `text/plain; charset=utf-8`)."""
    value, found = parse_options_header(header)
    return value.decode("latin-1"), found


class PartReader:
    """Feeds a body to the parser; hands each part to `done` once whole, having kept at most `keep()`
    bytes of it (asked as the part starts: what the scan budget has left)."""

    def __init__(self, boundary: bytes, keep: Callable[[], int], done: Callable[[Part], None]) -> None:
        self._keep, self._done = keep, done
        self._field, self._value = bytearray(), bytearray()
        self._headers: list[tuple[bytes, bytes]] = []
        self._part, self._room = Part(), 0
        callbacks = {
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
        }
        self._parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]

    def feed(self, body: bytes) -> str | None:
        """Parse `body` whole; why it does not parse as multipart, or None."""
        try:
            self._parser.write(body)
            self._parser.finalize()
        except MultipartParseError as exc:
            return str(exc)
        return None

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _on_header_end(self) -> None:
        self._headers.append((bytes(self._field).lower(), bytes(self._value)))
        self._field.clear()
        self._value.clear()

    def _on_headers_finished(self) -> None:
        found = dict(self._headers)
        _, disposition = options(found.get(b"content-disposition", b""))
        filename = disposition.get(b"filename")
        self._part = Part(
            name=disposition.get(b"name", b"").decode("utf-8", "replace"),
            filename=None if filename is None else filename.decode("utf-8", "replace"),
            ctype=options(found.get(b"content-type", b""))[0],
            headers=[(name.decode("latin-1"), value.decode("latin-1")) for name, value in self._headers],
        )
        self._headers.clear()
        self._room = self._keep()

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._part
        part.size += end - start
        if (room := self._room - len(part.data)) > 0:
            part.data += data[start : start + min(room, end - start)]

    def _on_part_end(self) -> None:
        self._done(self._part)
