"""Routing: exact and prefix paths, first match wins, 404 versus 405."""

import pytest

from policy.config import RouteConfig
from policy.errors import MethodNotAllowed, NotFound
from policy.routes import match_route

ROUTES = (
    RouteConfig("/echo", "echo", ("GET",)),
    RouteConfig("/echo", "other", ("POST",)),
    RouteConfig("/files/*", "files"),
    RouteConfig("/*", "fallback", ("GET",)),
)


@pytest.mark.parametrize(
    ("method", "path", "handler"),
    [
        ("GET", "/echo", "echo"),
        ("POST", "/echo", "other"),
        ("DELETE", "/files/a/b", "files"),
        ("GET", "/files", "files"),
        ("GET", "/anything", "fallback"),
        ("GET", "/echo/sub", "fallback"),
    ],
)
def test_first_match_wins(method: str, path: str, handler: str) -> None:
    assert match_route(ROUTES, method, path).handler == handler


def test_wrong_method_is_405_with_allowed_methods() -> None:
    with pytest.raises(MethodNotAllowed) as caught:
        match_route(ROUTES, "DELETE", "/echo")
    assert caught.value.allowed == ("GET", "POST")


def test_unknown_path_is_404() -> None:
    with pytest.raises(NotFound):
        match_route(ROUTES[:3], "GET", "/nope")
