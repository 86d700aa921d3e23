"""The body, read by what it is: its declared type, and its first bytes where they disagree.

- multipart/form-data (`policy.multipart`): text fields are parameters; file parts are uploads (name,
  filename, part headers, first bytes), never scanned as text; the framing is never inspected.
- JSON: every string, keys too; a GraphQL request's variables, and its query's string literals.
- XML: text and attribute values; a DTD, an entity or XInclude stops the parse and is named (`xxe`).
- urlencoded: parameters. Binary and document types (images, PDF, fonts, archives, source code...): an
  upload, checked by type (`policy.uploads`). No declared type: read as a form when it looks like one,
  else the text as one value, as it always was.
- Where bytes and type disagree the bytes win: binary bytes are a file whatever the type says, and a body
  that parses as JSON, or a `text/*` one shaped as a form, is read as one (what an application that
  ignores the type would do).

Text costs the scan budget (`risk.max_scan_bytes`); file bytes skipped by the parser, and JSON's or XML's
syntax, do not.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple
from xml.parsers import expat

from policy.linear import compile
from policy.multipart import Part, PartReader, options
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
    """What a body holds, as the request's values (fields.extract) and its files see it."""

    params: list[tuple[str, str]] = field(default_factory=list)  # form fields (urlencoded and multipart)
    items: list[Item] = field(default_factory=list)  # every other value inspected as text
    uploads: list[Upload] = field(default_factory=list)
    xxe: str | None = None  # a DTD, entity or XInclude in an XML body or file
    anomaly: str | None = None
    uninspected: str | None = None
    raw: str | None = None  # the body as text, for CRS's REQUEST_BODY (forms and untyped text only)


def read_body(
    body: bytes, ctype_header: str | None, budget: int, form: Callable[[str], list[tuple[str, str]]]
) -> Body:
    """What `body` holds: a multipart, JSON or XML body read whole, any other the first `budget` bytes."""
    if not body:
        return Body()
    ctype, parameters = options(ctype_header or "")
    if ctype == "multipart/form-data":
        return _multipart(body, parameters.get(b"boundary", b""), budget)
    head = body[:budget]
    cut = f"body bytes past {budget} (risk.max_scan_bytes)" if len(body) > budget else None
    sniffed = sniff(body[:HEAD_BYTES])  # once: the reading, the markup question and the upload's checks
    kind = _kind(ctype, head, sniffed)
    if kind == "json":  # declared so: parsed whole (at C speed), its strings are what the budget counts
        whole = ctype.endswith(("/json", "+json"))
        return _json(body if whole else head, None if whole else cut)
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
    if not is_markup(ctype, sniffed):
        return Body(uploads=[Upload("REQUEST_BODY", "", ctype, body[:HEAD_BYTES], len(body), sniffed)])
    upload = Upload("REQUEST_BODY", "", ctype, head, len(body), sniff(head))  # markup: all of it is read
    return Body(uploads=[upload], xxe=_xml_declarations(head), uninspected=cut)


def structured(ctype_header: str | None) -> bool:
    """Whether a body of this declared type is read whole (multipart, JSON, XML): its framing and syntax do
    not count against the scan budget, only the text in it does. Bounded by server.max_body_bytes."""
    ctype = options(ctype_header or "")[0]
    return ctype == "multipart/form-data" or (
        ctype.endswith(("/json", "+json", "/xml", "+xml")) and ctype != "image/svg+xml"
    )


def is_markup(declared: str, sniffed: str | None) -> bool:
    """Markup a browser runs (SVG, HTML, XML), by its bytes (`sniffed`), or by its declared type unless
    its bytes are binary (`changelog.html.gz` is declared text/html by some clients)."""
    if sniffed is not None:
        return sniffed in MARKUP_TYPES
    return declared in MARKUP_TYPES


def _kind(ctype: str, head: bytes, sniffed: str | None) -> str:
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
            if len(body.items) > MAX_STRINGS:
                body.uninspected = body.uninspected or f"XML values past the first {MAX_STRINGS}"
                return
            body.items.append(Item(TEXT, f"XML:/{'/'.join(path[-8:])}/@{attribute}", attribute, value))

    def text(data: str) -> None:
        if not data.strip():
            return
        if len(body.items) > MAX_STRINGS:
            body.uninspected = body.uninspected or f"XML values past the first {MAX_STRINGS}"
            return
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
    left = [budget]  # text still to inspect: a part keeps as much, and a file its head at least

    def done(part: Part) -> None:
        if len(out.params) + len(out.uploads) >= MAX_PARTS:
            out.anomaly = f"more than {MAX_PARTS} multipart parts"
            out.uninspected = out.uninspected or f"multipart parts past the first {MAX_PARTS}"
        elif part.filename is None:
            left[0] -= _text_field(out, part, left[0])
        else:
            left[0] -= _file(out, part, part.filename)

    error = PartReader(boundary, lambda: max(left[0], HEAD_BYTES), done).feed(body)
    if error is not None:
        out.uninspected = out.uninspected or f"a multipart body that does not parse ({error})"
    return out


def _text_field(out: Body, part: Part, left: int) -> int:
    """A text field is a parameter; returns the characters of the budget it took."""
    text = bytes(part.data[:left]).decode("utf-8", "replace")
    if part.size > left:
        out.uninspected = out.uninspected or f"ARGS:{part.name}: characters past risk.max_scan_bytes"
    out.params.append((part.name, text))
    return len(text)


def _file(out: Body, part: Part, filename: str) -> int:
    """A file is an upload, inspected by its name, its part's headers and (markup) its text; returns the
    characters of the budget its text took."""
    where, name = f"FILES:{part.name}", part.name
    out.items.append(Item(FILENAME, where, name, filename))
    out.items.append(Item(NAME, f"FILES_NAMES:{name}", name, name))
    for header, value in part.headers:
        if header not in ("content-disposition", "content-type"):
            out.items.append(Item(HEADER, f"MULTIPART_PART_HEADERS:{name}", header, value))
    head = bytes(part.data)
    sniffed = sniff(head[:HEAD_BYTES])
    if not is_markup(part.ctype, sniffed):
        out.uploads.append(Upload(where, filename, part.ctype, head[:HEAD_BYTES], part.size, sniffed))
        return 0
    if part.size > len(head):
        out.uninspected = out.uninspected or f"{where}: markup past risk.max_scan_bytes"
    out.xxe = out.xxe or _xml_declarations(head)
    out.uploads.append(Upload(where, filename, part.ctype, head, part.size, sniff(head)))
    return len(head)
