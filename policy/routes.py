"""Route step: the first configured route whose path and method match."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import unquote

from policy.config import RouteConfig
from policy.errors import InvalidPath, MethodNotAllowed, NotFound

_ENCODED_SEPARATORS = ("%2f", "%5c", "%00")  # an encoded / or \ (or NUL) splits a path differently downstream


def check_path(raw: str, decoded: str) -> None:
    """Refuse a path that names one place to the gateway and another to what sits behind it: dot segments
    (`/public/%2e%2e/admin` would match `/public/*` and reach /admin), empty segments, and encoded
    separators, in the raw target, once decoded, or twice (`%252e%252e` is `..` to a server behind that
    decodes again)."""
    lowered = raw.partition("?")[0].lower()
    if any(separator in text for text in (lowered, decoded.lower()) for separator in _ENCODED_SEPARATORS):
        raise InvalidPath("the path has an encoded separator (%2F, %5C or %00)")
    segments = decoded.split("/")[1:]
    dots = (".", "..")
    if any(s in dots or ("%" in s and unquote(s) in dots) for s in segments) or "\\" in decoded:
        raise InvalidPath("the path has dot segments (. or .., encoded or not) or a backslash")
    if "" in segments[:-1]:  # a trailing slash is an empty last segment, and allowed
        raise InvalidPath("the path has empty segments (//)")


def match_route(routes: Sequence[RouteConfig], method: str, path: str) -> RouteConfig:
    """The first route matching both; 405 if only paths matched, 404 if nothing did."""
    allowed: list[str] = []
    for route in routes:
        if not route.matches_path(path):
            continue
        if method in route.methods:
            return route
        allowed.extend(m for m in route.methods if m not in allowed)
    if allowed:
        raise MethodNotAllowed(method, tuple(allowed))
    raise NotFound(f"no route for {path}")
