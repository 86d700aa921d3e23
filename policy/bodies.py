"""The body, read by what it is: its declared type, and its first bytes where they disagree.

- multipart/form-data (python-multipart's parser): text fields are parameters; file parts are uploads
  (name, filename, part headers, first bytes), never scanned as text; the framing is never inspected.
- JSON: every string, keys too; a GraphQL request's variables, and its query's string literals.
- XML: text and attribute values; a DTD, an entity or XInclude stops the parse and is named (`xxe`).
- urlencoded: parameters. Binary and document types (images, PDF, fonts, archives, source code...): an
  upload, checked by type (`policy.uploads`). No declared type: read as a form when it looks like one,
  else the text as one value, as it always was.

Text costs the scan budget (`risk.max_scan_bytes`); file bytes skipped by the parser do not.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple
from xml.parsers import expat

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from policy.linear import compile
from policy.uploads import BINARY, HEAD_BYTES, MARKUP_TYPES, Upload, family, sniff

MAX_PARTS = 512
MAX_STRINGS = 4096  # JSON or XML strings: a 10 KB document of orders already has 600
MAX_DEPTH = 64

# What a value is, which decides the detectors that apply to it (see policy.risk).
PATH, QUERY, HEADER, COOKIE, FORM, NAME, TEXT, FILENAME, BODY = (
    "path", "query", "header", "cookie", "form", "name", "text", "filename", "body"
)  # fmt: skip


class Item(NamedTuple):
    kind: str
    where: str  # the variable, as ModSecurity names it: ARGS:comment, XML:/order/@id, FILES:avatar
    name: str
    text: str


@dataclass
class Body:
    params: list[tuple[str, str]] = field(default_factory=list)  # form fields (urlencoded and multipart)
    items: list[Item] = field(default_factory=list)  # every other value inspected as text
    uploads: list[Upload] = field(default_factory=list)
    xxe: str | None = None  # a DTD, entity or XInclude in an XML body or file
    anomaly: str | None = None
    uninspected: str | None = None
    raw: str | None = None  # the body as text, for CRS's REQUEST_BODY (forms and untyped text only)


def media_type(header: str | None) -> tuple[str, dict[bytes, bytes]]:
    ctype, options = parse_options_header(header or "")
    return ctype.decode("latin-1"), options


def read_body(
    body: bytes, ctype_header: str | None, budget: int, form: Callable[[str], list[tuple[str, str]]]
) -> Body:
    """What `body` holds (the first `budget` characters of its text; a multipart body whole)."""
    if not body:
        return Body()
    ctype, options = media_type(ctype_header)
    if ctype == "multipart/form-data":
        return _multipart(body, options.get(b"boundary", b""), budget)
    head = body[:budget]
    cut = f"body bytes past {budget} (risk.max_scan_bytes)" if len(body) > budget else None
    kind = _kind(ctype, head)
    if kind == "json":  # parsed whole (at C speed): its strings are what the budget counts
        return _json(body if structured(ctype_header) else head, None if structured(ctype_header) else cut)
    if kind == "graphql":
        return Body(items=_graphql_literals(head.decode("utf-8", "replace"), "ARGS:query"), uninspected=cut)
    if kind == "xml":
        return _xml(body, None)
    if kind == "form":
        text = head.decode("latin-1")
        return Body(params=form(text), raw=text, uninspected=cut)
    if kind == "text":
        text = head.decode("latin-1")
        return Body(items=[Item(BODY, "REQUEST_BODY", "body", text)], raw=text, uninspected=cut)
    markup = is_markup(ctype, body[:HEAD_BYTES])
    kept = head if markup else body[:HEAD_BYTES]
    upload = Upload("REQUEST_BODY", "", ctype, kept, len(body))
    if not markup:
        return Body(uploads=[upload])
    return Body(uploads=[upload], xxe=_xml_declarations(kept), uninspected=cut)


def structured(ctype_header: str | None) -> bool:
    """Whether a body of this declared type is read whole (multipart, JSON, XML): its framing and syntax do
    not count against the scan budget, only the text in it does. Bounded by server.max_body_bytes."""
    ctype = media_type(ctype_header)[0]
    return ctype == "multipart/form-data" or (
        ctype.endswith(("/json", "+json", "/xml", "+xml")) and ctype != "image/svg+xml"
    )


def is_markup(declared: str, head: bytes) -> bool:
    """Markup a browser runs (SVG, HTML, XML), by its bytes, or by its declared type unless its bytes are
    binary (`changelog.html.gz` is declared text/html by some clients)."""
    sniffed = sniff(head)
    if sniffed is not None:
        return sniffed in MARKUP_TYPES
    return declared in MARKUP_TYPES


def _kind(ctype: str, head: bytes) -> str:
    """How a body of this declared type is read: json, graphql, xml, form, text or file."""
    if ctype.endswith(("/json", "+json")):
        return "json"
    if ctype == "application/graphql":
        return "graphql"
    if ctype.endswith(("/xml", "+xml")) and ctype != "image/svg+xml":
        return "xml"
    if ctype == "application/x-www-form-urlencoded":
        return "form"
    # A declared type the application may ignore: the bytes decide what else it could be read as.
    sniffed = sniff(head[:HEAD_BYTES])
    if sniffed is not None and family(sniffed) in BINARY:
        return "file"
    start = head[:1].lstrip()
    if start in (b"{", b"[") and _parses(head):
        return "json"
    if not ctype:
        return "form" if _FORM_LIKE.match(head[:200].decode("latin-1")) else "text"
    if ctype.startswith("text/") and _FORM_LIKE.fullmatch(head.decode("latin-1")):
        return "form"  # `a=1&b=2` sent as text/plain: what `curl -d` with another type sends
    return "file"


_FORM_LIKE = compile(r"[^\s=&]+=[^&\r\n]*(?:&[^\s=&]*=?[^&\r\n]*)*")


def _parses(head: bytes) -> bool:
    try:
        json.loads(head)
    except (ValueError, RecursionError):
        return False
    return True


def _json(head: bytes, cut: str | None) -> Body:
    try:
        document = json.loads(head)
    except RecursionError:
        return Body(items=[Item(BODY, "REQUEST_BODY", "body", head.decode("latin-1"))],
                    anomaly=f"JSON nested deeper than {MAX_DEPTH}", uninspected=cut)  # fmt: skip
    except ValueError:
        return Body(items=[Item(BODY, "REQUEST_BODY", "body", head.decode("latin-1"))],
                    uninspected=cut or "a JSON body that does not parse")  # fmt: skip
    items: list[Item] = []
    try:
        if isinstance(document, dict) and isinstance(query := document.get("query"), str):
            items += _graphql_literals(query, "ARGS:json.query")  # a GraphQL request: the query's literals
            document = {k: v for k, v in document.items() if k != "query"}
        _strings(document, "json", items)
    except RecursionError:
        return Body(items=items, anomaly=f"JSON nested deeper than {MAX_DEPTH}", uninspected=cut)
    if len(items) > MAX_STRINGS:
        cut = cut or f"JSON strings past the first {MAX_STRINGS}"
        del items[MAX_STRINGS:]
    return Body(items=items, uninspected=cut)


def _strings(node: object, path: str, out: list[Item], depth: int = 0) -> None:
    """JSON strings and keys, named as ModSecurity's JSON processor names them (json.a.b, json.list.0)."""
    if len(out) > MAX_STRINGS:
        return
    if depth > MAX_DEPTH:
        raise RecursionError
    if isinstance(node, str):
        out.append(Item(TEXT, f"ARGS:{path}", path, _text(node)))
    elif isinstance(node, dict):
        for key, value in node.items():
            out.append(Item(NAME, f"ARGS_NAMES:{path}.{key}", f"{path}.{key}", _text(key)))
            _strings(value, f"{path}.{key}", out, depth + 1)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _strings(value, f"{path}.{i}", out, depth + 1)


def _text(text: str) -> str:
    """A JSON string as text: a lone surrogate (`"\\ud800"` is valid JSON) becomes U+FFFD, since no UTF-8
    text holds one and the matchers take UTF-8."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


_GRAPHQL_STRING = compile(r'"""(?:[^"\\]|\\.|"[^"]|""[^"])*"""|"(?:[^"\\\n]|\\.)*"')


def _graphql_literals(query: str, where: str) -> list[Item]:
    """A GraphQL document's string literals: its values; the rest is the API's own grammar."""
    found = zip(range(MAX_STRINGS), _GRAPHQL_STRING.finditer(query), strict=False)
    return [Item(TEXT, where, "query", match.group(0).strip('"')) for _, match in found]


def _xml(head: bytes, cut: str | None, encoding: str | None = None) -> Body:
    body = Body(uninspected=cut)
    body.xxe = _xml_declarations(head)
    if body.xxe is not None:
        return body  # never parsed: an entity would be expanded
    path: list[str] = []
    parser = expat.ParserCreate(encoding)
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.buffer_text = True  # a text node in one piece, not a call per line

    def start(name: str, attributes: dict[str, str]) -> None:
        path.append(name)
        for attribute, value in attributes.items():
            body.items.append(Item(TEXT, f"XML:/{'/'.join(path[-8:])}/@{attribute}", attribute, value))

    def text(data: str) -> None:
        if data.strip() and len(body.items) <= MAX_STRINGS:
            body.items.append(Item(TEXT, f"XML:/{'/'.join(path[-8:])}", path[-1] if path else "", data))

    parser.StartElementHandler = start
    parser.EndElementHandler = lambda name: path.pop()
    parser.CharacterDataHandler = text
    try:
        parser.Parse(head, True)
    except ValueError:  # a multi-byte encoding expat does not read (GB2312, Shift_JIS): Python decodes it
        declared = _XML_ENCODING.search(head[:200].decode("latin-1"))
        if encoding is None and declared is not None:
            try:
                decoded = head.decode(declared.group(1), "replace")
            except LookupError:
                pass
            else:
                return _xml(decoded.encode("utf-8"), cut, "utf-8")
        body.uninspected = cut or "an XML body in an encoding it cannot be read in"
    except expat.ExpatError:
        body.uninspected = cut or "an XML body that does not parse"
    return body


_XML_ENCODING = compile(r"^\s*<\?xml[^>]*\bencoding\s*=\s*[\"']([\w.:-]{1,40})[\"']")


_DECLARATION = compile(
    r"<!entity\b[^>]{0,60}"
    r"|<!doctype\s+[^\s\[>]+\s*(?:(public)\s*(?:\"[^\"]*\"|'[^']*')\s*|(system)\s*)?(\"[^\"]*\"|'[^']*')?"
    r"|xmlns(?::\w+)?\s*=\s*[\"']http://www\.w3\.org/2001/XInclude",
    ignore_case=True,
)
_BESIDE = compile(r"[\w.-]{1,100}\.dtd")  # a DTD file named beside the document: nothing an attacker reaches


def _xml_declarations(head: bytes) -> str | None:
    """What makes an XML parser read files or URLs (XXE) or expand without bound: an entity declaration,
    a document type whose DTD is at a location (SYSTEM "file:///..." or "http://..."), or XInclude. Not a
    document type named by a public identifier (`-//W3C//DTD SVG 1.1//EN`, what editors save icons with), one
    whose DTD is a file beside it, or an internal subset of element and attribute declarations alone."""
    text = head.decode("latin-1")
    for found in _DECLARATION.finditer(text):
        declaration = found.group(0)
        if declaration[:9].lower() == "<!doctype":  # (an unmatched group's start is -1: RE2 gives no None)
            public, location = found.start(1) >= 0, text[found.start(3) + 1 : found.end(3) - 1]
            if public or found.start(3) < 0 or not location or _BESIDE.fullmatch(location):
                continue
        return declaration[:60]
    return None


def _multipart(body: bytes, boundary: bytes, budget: int) -> Body:
    """Text fields as parameters, files as uploads; MAX_PARTS parts at most."""
    out = Body()
    if not boundary:
        out.uninspected = "a multipart body without a boundary"
        return out
    headers: list[tuple[bytes, bytes]] = []
    name_value = [bytearray(), bytearray()]
    part: dict[str, object] = {}
    left = [budget]

    def on_header_field(data: bytes, start: int, end: int) -> None:
        name_value[0] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        name_value[1] += data[start:end]

    def on_header_end() -> None:
        headers.append((bytes(name_value[0]).lower(), bytes(name_value[1])))
        name_value[0].clear()
        name_value[1].clear()

    def on_headers_finished() -> None:
        found = dict(headers)
        _, disposition = media_type(found.get(b"content-disposition", b"").decode("latin-1"))
        filename = disposition.get(b"filename")
        part.clear()
        part.update(
            name=disposition.get(b"name", b"").decode("utf-8", "replace"),
            filename=None if filename is None else filename.decode("utf-8", "replace"),
            ctype=media_type(found.get(b"content-type", b"").decode("latin-1"))[0],
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers],
            data=bytearray(),
            size=0,
        )
        headers.clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        kept: bytearray = part["data"]  # type: ignore[assignment]
        part["size"] = int(part["size"]) + end - start  # type: ignore[call-overload]
        room = max(left[0], HEAD_BYTES) - len(kept)
        if room > 0:
            kept += data[start : start + min(room, end - start)]

    def on_part_end() -> None:
        if len(out.params) + len(out.uploads) >= MAX_PARTS:
            out.anomaly = f"more than {MAX_PARTS} multipart parts"
            out.uninspected = out.uninspected or f"multipart parts past the first {MAX_PARTS}"
            return
        _part_done(out, part, left)

    parser = MultipartParser(
        boundary,
        {
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as exc:
        out.uninspected = out.uninspected or f"a multipart body that does not parse ({exc})"
    return out


def _part_done(out: Body, part: dict[str, object], left: list[int]) -> None:
    name, filename, ctype = str(part["name"]), part["filename"], str(part["ctype"])
    data: bytearray = part["data"]  # type: ignore[assignment]
    size = int(part["size"])  # type: ignore[call-overload]
    if filename is None:  # a text field
        text = bytes(data[: left[0]]).decode("utf-8", "replace")
        if size > left[0]:
            out.uninspected = out.uninspected or f"ARGS:{name}: characters past risk.max_scan_bytes"
        left[0] -= len(text)
        out.params.append((name, text))
        return
    where = f"FILES:{name}"
    out.items.append(Item(FILENAME, where, name, str(filename)))
    out.items.append(Item(NAME, f"FILES_NAMES:{name}", name, name))
    for header, value in part["headers"]:  # type: ignore[attr-defined]
        if header not in ("content-disposition", "content-type"):
            out.items.append(Item(HEADER, f"MULTIPART_PART_HEADERS:{name}", header, value))
    head = bytes(data)
    markup = is_markup(ctype, head[:HEAD_BYTES])
    if markup:
        left[0] -= min(len(head), left[0])
        if size > len(head):
            out.uninspected = out.uninspected or f"{where}: markup past risk.max_scan_bytes"
        out.xxe = out.xxe or _xml_declarations(head)
    out.uploads.append(Upload(where, str(filename), ctype, head if markup else head[:HEAD_BYTES], size))
