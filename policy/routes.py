"""Route step: the first configured route whose path and method match."""

from __future__ import annotations

from collections.abc import Sequence

from policy.config import RouteConfig
from policy.errors import MethodNotAllowed, NotFound


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
