"""A request's values under the names CRS rules target (ModSecurity's variables).

ARGS are the query's and the form's parameters (urlencoded or multipart text fields), once URL-decoded as
ModSecurity's parser leaves them, and a JSON body's strings (named `json.a.b` as ModSecurity's JSON processor
names them); XML's text and attributes; FILES and FILES_NAMES (files' names, never their bytes); cookies and
headers by name; the path and query as received; REQUEST_BODY only for a form or an untyped text body.
Everything is taken within the request's scan budget (`policy.fields.extract` already bounded the
parameters); credentials headers are never looked at.
"""

from __future__ import annotations

import functools

from policy.bodies import COOKIE, TEXT
from policy.crs.checks import Value
from policy.crs.engine import CACHED_LENGTH
from policy.fields import Fields
from policy.incoming import CREDENTIAL_HEADERS, Incoming


@functools.lru_cache(maxsize=16)  # one `wanted` per compiled rule set
def _by_source(wanted: frozenset[str]) -> dict[str, tuple[str, bool, str, bool]]:
    """Per parameter source: its ARGS_GET/ARGS_POST variable, whether wanted, and the same for names."""
    return {
        source: (
            f"ARGS_{kind}",
            f"ARGS_{kind}" in wanted,
            f"ARGS_{kind}_NAMES",
            f"ARGS_{kind}_NAMES" in wanted,
        )
        for source, kind in (("query", "GET"), ("body", "POST"))
    }


# A body value's collection (as `policy.bodies` names it) and the CRS variables that hold it.
_BODY_VARIABLES = {"ARGS": ("ARGS", "ARGS_POST"), "ARGS_NAMES": ("ARGS_NAMES", "ARGS_POST_NAMES")}


def _prose(text: str) -> str:
    """Free text (a JSON string, an XML text, a multipart text field) with its line breaks as spaces: a
    wrapped paragraph's next line is not a shell command (CRS 932100-932110 take a break as `;`)."""
    return (
        text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
        if "\n" in text or "\r" in text
        else text
    )


QUERY_PIECES = 16  # a query of at most this many parameters is decoded parameter by parameter


def _query_pieces(query: str) -> tuple[str, ...]:
    """The query as names, values and separators: a long value is then the text its parameter's own
    decoding (`policy.fields`) decoded; a query of many short parameters is one piece."""
    if query.count("&") >= QUERY_PIECES or "=" not in query:
        return (query,)
    pieces: list[str] = []
    for number, pair in enumerate(query.split("&")):
        name, equals, value = pair.partition("=")
        pieces += ("&", name, equals, value) if number else (name, equals, value)
    return tuple(pieces)


def crs_values(incoming: Incoming, fields: Fields, budget: int, wanted: frozenset[str]) -> list[Value]:
    """The request's values of the variables in `wanted` (those the rules target)."""
    values: list[Value] = []
    args, names = "ARGS" in wanted, "ARGS_NAMES" in wanted
    by_source = _by_source(wanted)
    prose_form = fields.raw_body is None  # multipart text fields: free text, as JSON strings are
    for source, name, value in fields.params:
        prose = source == "body"  # a form's field: where people's text is (the threshold for free text)
        if prose and prose_form:
            value = _prose(value)
        if args:
            values.append(Value("ARGS", name, value, prose))
        if names:
            values.append(Value("ARGS_NAMES", name, name))
        variable, wanted_value, names_variable, wanted_name = by_source[source]
        if wanted_value:
            values.append(Value(variable, name, value, prose))
        if wanted_name:
            values.append(Value(names_variable, name, name))
    cookies, cookie_names = "REQUEST_COOKIES" in wanted, "REQUEST_COOKIES_NAMES" in wanted
    for found in fields.values[: fields.body_items]:
        if found.kind == COOKIE:
            if cookies:
                values.append(Value("REQUEST_COOKIES", found.name, found.raw))
            if cookie_names:
                values.append(Value("REQUEST_COOKIES_NAMES", found.name, found.name))
    for found in fields.values[fields.body_items :]:  # JSON, XML and GraphQL values, files' names
        collection = found.where.partition(":")[0]
        prose = found.kind == TEXT
        text = _prose(found.raw) if prose else found.raw
        for variable in _BODY_VARIABLES.get(collection, (collection,)):
            if variable in wanted:
                values.append(Value(variable, found.name, text, prose))
    headers, header_names = "REQUEST_HEADERS" in wanted, "REQUEST_HEADERS_NAMES" in wanted
    for header, text in incoming.headers:
        if header in CREDENTIAL_HEADERS:
            continue
        if headers:
            values.append(Value("REQUEST_HEADERS", header, text[:budget]))
        if header_names:
            values.append(Value("REQUEST_HEADERS_NAMES", header, header))
    target = incoming.target[:budget]
    path, mark, query = target.partition("?")
    uri: tuple[str, ...] = ()  # the target's pieces, decoded once for every variable (a long one's)
    if len(target) > CACHED_LENGTH:  # a shorter one's decodings are remembered across requests
        uri = (path, mark, *_query_pieces(query)) if mark else (path,)
    if "REQUEST_FILENAME" in wanted:
        values.append(Value("REQUEST_FILENAME", "", path))
    if "REQUEST_BASENAME" in wanted:
        values.append(Value("REQUEST_BASENAME", "", path.rpartition("/")[2]))
    if "REQUEST_URI" in wanted:
        values.append(Value("REQUEST_URI", "", target, pieces=uri))
    if "REQUEST_URI_RAW" in wanted:
        values.append(Value("REQUEST_URI_RAW", "", target, pieces=uri))
    if "QUERY_STRING" in wanted:
        values.append(Value("QUERY_STRING", "", query))
    if "REQUEST_LINE" in wanted:
        pieces = (f"{incoming.method} ", *uri, " HTTP/1.1") if uri else ()
        values.append(Value("REQUEST_LINE", "", f"{incoming.method} {target} HTTP/1.1", pieces=pieces))
    if "REQUEST_METHOD" in wanted:
        values.append(Value("REQUEST_METHOD", "", incoming.method))
    if fields.raw_body and "REQUEST_BODY" in wanted:  # a form's or an untyped body's text, never a file's
        values.append(Value("REQUEST_BODY", "", fields.raw_body))
    return values
