"""What a reload changed, and which changes wait for a restart (pure: two configs in, values out)."""

from __future__ import annotations

import dataclasses
from typing import Any

from policy.config import Config

# Keys read once at start-up (listen socket, handler package, the container pool's identity, stats tables).
RESTART_KEYS = (
    "server.host",
    "server.port",
    "server.watch_config",
    "server.watch_code",
    "server.workers",
    "handlers_package",
    "docker.enabled",
    "docker.host",
    "docker.cert_path",
    "docker.engines",
    "docker.pool_name",
    "stats",
    "state",
    "metrics",
    "risk.history_window",
)


def _get(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _replace(obj: Any, path: str, value: Any) -> Any:
    head, _, rest = path.partition(".")
    inner = _replace(getattr(obj, head), rest, value) if rest else value
    return dataclasses.replace(obj, **{head: inner})


def keep_running_values(old: Config, new: Config) -> tuple[Config, list[str]]:
    """`new` with every restart-only key set back to its running value, and the keys that differed."""
    pending = [key for key in RESTART_KEYS if _get(old, key) != _get(new, key)]
    for key in pending:
        new = _replace(new, key, _get(old, key))
    return new, pending


def describe(old: Config, new: Config) -> dict[str, Any]:
    """Sections that changed, routes added and removed, and the IP lists' sizes after the change."""
    sections = [f.name for f in dataclasses.fields(Config) if getattr(old, f.name) != getattr(new, f.name)]
    old_routes, new_routes = _routes(old), _routes(new)
    lists = new.ip_lists
    return {
        "sections": sections,
        "routes_added": sorted(path for path, methods in new_routes - old_routes),
        "routes_removed": sorted(path for path, methods in old_routes - new_routes),
        "ip_lists": {name: len(getattr(lists, f"{name}_set")) for name in ("deny", "flagged", "trusted")},
    }


def watch_refusal(old: Config, new: Config) -> str | None:
    """Why the file watcher must not apply `new` on its own (None: it may): it serves no route where `old`
    served some, or it removes more than `server.watch_max_routes_removed` of `old`'s routes. A file cut
    short, or a copy of the wrong one, looks like this; an operator who means it reloads explicitly."""
    old_routes = _routes(old)
    if not old_routes:
        return None
    removed = len(old_routes - _routes(new))
    allowed = new.server.watch_max_routes_removed
    if not new.routes:
        why = f"it has no routes (the running config has {len(old_routes)})"
    elif removed > allowed * len(old_routes):
        why = (
            f"it removes {removed} of the running config's {len(old_routes)} routes"
            f" (server.watch_max_routes_removed: {allowed})"
        )
    else:
        return None
    return f"{why}: apply it with SIGHUP or POST /admin/reload if that is meant"


def _routes(config: Config) -> set[tuple[str, tuple[str, ...]]]:
    """A config's routes as a reload compares them: by path and methods."""
    return {(route.path, route.methods) for route in config.routes}
