"""A request's values under the names CRS rules target (ModSecurity's variables).

ARGS are the query's and the form's parameters, once URL-decoded as ModSecurity's parser leaves them, and
a JSON body's strings (named `json.a.b` as ModSecurity's JSON processor names them); cookies and headers
by name; the path, query and body as received. Everything is taken within the request's scan budget
(`policy.fields.extract` already bounded the parameters); credentials headers are never looked at.
"""

from __future__ import annotations

from policy.crs.engine import Value
from policy.fields import Fields
from policy.incoming import CREDENTIAL_HEADERS, Incoming


def crs_values(incoming: Incoming, fields: Fields, budget: int) -> list[Value]:
    values: list[Value] = []
    for source, name, value in fields.params:
        kind = "GET" if source == "query" else "POST"
        values += (Value("ARGS", name, value), Value(f"ARGS_{kind}", name, value))
        values += (Value("ARGS_NAMES", name, name), Value(f"ARGS_{kind}_NAMES", name, name))
    for found in fields.values:
        if found.where.startswith("json "):
            path = found.where[5:].removesuffix("#key")
            name = "json" + path[1:].replace("[", ".").replace("]", "")
            if found.where.endswith("#key"):
                values += (Value("ARGS_NAMES", name, found.raw), Value("ARGS_POST_NAMES", name, found.raw))
            else:
                values += (Value("ARGS", name, found.raw), Value("ARGS_POST", name, found.raw))
    for header, text in incoming.headers:
        if header in CREDENTIAL_HEADERS:
            continue
        text = text[:budget]
        values += (Value("REQUEST_HEADERS", header, text), Value("REQUEST_HEADERS_NAMES", header, header))
        if header == "cookie":
            for cookie in text.split(";", 512)[:512]:
                name, _, value = cookie.strip().partition("=")
                values += (Value("REQUEST_COOKIES", name, value), Value("REQUEST_COOKIES_NAMES", name, name))
    target = incoming.target[:budget]
    path, _, query = target.partition("?")
    values += (
        Value("REQUEST_FILENAME", "", path),
        Value("REQUEST_BASENAME", "", path.rpartition("/")[2]),
        Value("REQUEST_URI", "", target),
        Value("REQUEST_URI_RAW", "", target),
        Value("QUERY_STRING", "", query),
        Value("REQUEST_LINE", "", f"{incoming.method} {target} HTTP/1.1"),
        Value("REQUEST_METHOD", "", incoming.method),
    )
    if incoming.body:
        values.append(Value("REQUEST_BODY", "", incoming.body[:budget].decode("latin-1")))
    return values
