"""What the config watcher may apply on its own (policy.changes.watch_refusal)."""

from typing import Any

import pytest

from policy.changes import watch_refusal
from policy.config import Config
from policy.parse import parse_config

AUTH = {"secret_key": "k" * 32}


def config(*paths: str, **server: Any) -> Config:
    routes = [{"path": p, "handler": "echo"} for p in paths]
    return parse_config({"auth": AUTH, "server": server, "routes": routes})


FOUR = ("/a", "/b", "/c", "/d")


@pytest.mark.parametrize(
    ("new", "allowed"),
    [
        (config(*FOUR, "/e"), True),  # added
        (config("/a", "/b", "/x", "/y"), True),  # half replaced
        (config("/a", "/b"), True),  # half removed: the share allows it
        (config("/a"), False),  # three of four removed
        (config(), False),  # none left
        (config("/a", watch_max_routes_removed=1.0), True),
        (config(watch_max_routes_removed=1.0), False),  # no routes: refused whatever the share
        (config("/a", "/b", "/c", watch_max_routes_removed=0.0), False),
    ],
)
def test_the_watcher_refuses_a_config_that_drops_most_routes(new: Config, allowed: bool) -> None:
    refusal = watch_refusal(config(*FOUR), new)
    assert (refusal is None) is allowed, refusal
    if refusal:
        assert refusal.endswith("apply it with SIGHUP or POST /admin/reload if that is meant")


def test_a_config_without_routes_may_gain_them() -> None:
    assert watch_refusal(config(), config("/a")) is None
    assert watch_refusal(config(), config()) is None


def test_a_method_change_is_a_route_removed_and_added() -> None:
    old = parse_config({"auth": AUTH, "routes": [{"path": "/a", "handler": "echo", "methods": ["GET"]}]})
    new = parse_config({"auth": AUTH, "routes": [{"path": "/a", "handler": "echo", "methods": ["POST"]}]})
    assert watch_refusal(old, new) is not None  # the only route's GET is gone: the operator confirms
