"""Handler lookup: a name from config maps to `<package>/<name>.py`'s `handle`, and to nothing else; an app
route's name, `app:<app>@<mount>`, to that app (pool.apps) served under the route's prefix."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import cast

from handlers import Request
from pool.apps import AppHandle, AppSpec, AsgiBridge, WsgiBridge, load

# A module name, never a path (policy.config.HANDLER_NAME checks the same at load; this module runs in the
# container too, where only the agent, the handler contract and user code exist).
HANDLER_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")

Handle = Callable[[Request], object]
Bridge = WsgiBridge | AsgiBridge
Imported = tuple[dict[str, Handle], dict[str, Bridge], dict[str, AppSpec]]  # handlers, apps, apps' specs
APP_PREFIX = "app:"
MAX_CODE_FILES = 5000  # .py files a code version looks at (a stray virtualenv must not make it slow)


def app_handler(app: str, mount: str) -> str:
    """The handler name of app `app` served under `mount` (the route's prefix, "" at the root)."""
    return f"{APP_PREFIX}{app}@{mount}"


class UnknownHandler(LookupError):
    pass


class HandlerRegistry:
    """Imports handler modules of one package on first use and keeps them."""

    def __init__(self, package: str = "handlers", apps: dict[str, AppSpec] | None = None) -> None:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise UnknownHandler(f"handlers package {package!r} is not importable")
        self.package = package
        self._dirs = [Path(p) for p in spec.submodule_search_locations]
        self._loaded: dict[str, Handle] = {}
        self.apps = apps or {}
        self._apps: dict[str, Bridge] = {}  # imported apps, by name

    def get(self, name: str) -> Handle:
        """The `handle` function of module `name`; raises UnknownHandler with the reason."""
        found = self._loaded.get(name)
        if found is not None:
            return found
        if name.startswith(APP_PREFIX):
            return self._app(name)
        if not HANDLER_NAME.fullmatch(name) or not any((d / f"{name}.py").is_file() for d in self._dirs):
            raise UnknownHandler(f"no handler module {self.package}/{name}.py")
        module = importlib.import_module(f"{self.package}.{name}")
        handle = getattr(module, "handle", None)
        if not callable(handle):
            raise UnknownHandler(f"{self.package}/{name}.py defines no handle(request) function")
        self._loaded[name] = cast(Handle, handle)
        return self._loaded[name]

    @property
    def package_dir(self) -> Path:
        """The handler package's directory (mounted over the image's copy in containers)."""
        return self._dirs[0]

    def code_version(self) -> str:
        """A digest of the handler package's and the apps' .py files (paths, sizes, mtimes): it changes when
        their code does. Stat calls only."""
        digest = hashlib.sha256()
        roots = [*map(str, self._dirs), *(spec.source for spec in self.apps.values())]
        seen = 0
        for root in sorted(set(roots)):
            for folder, subfolders, files in os.walk(root):
                subfolders[:] = sorted(d for d in subfolders if not d.startswith(".") and d != "__pycache__")
                for name in sorted(f for f in files if f.endswith(".py")):
                    seen += 1
                    if seen > MAX_CODE_FILES:
                        return digest.hexdigest()[:12]
                    path = os.path.join(folder, name)
                    try:
                        info = os.stat(path)
                    except OSError:
                        continue
                    digest.update(f"{path}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
        return digest.hexdigest()[:12]

    def snapshot(self) -> Imported:
        """What is imported now, to put back if new code or apps fail to import (see `restore`)."""
        return dict(self._loaded), dict(self._apps), dict(self.apps)

    def restore(self, snapshot: Imported) -> None:
        self._loaded, self._apps, self.apps = dict(snapshot[0]), dict(snapshot[1]), dict(snapshot[2])

    def retire(self, snapshot: Imported) -> None:
        """Close the apps of `snapshot` that are no longer served (an ASGI app's loop thread ends once its
        running requests finish)."""
        serving = set(map(id, self._apps.values()))
        for bridge in snapshot[1].values():
            if id(bridge) not in serving and isinstance(bridge, AsgiBridge):
                bridge.close()

    def refresh(self) -> None:
        """Forget every imported handler and app so the next request imports their code again. Modules
        are dropped from sys.modules (the handler package's submodules, and every module loaded from an
        app's source); requests already running keep the code they started with."""
        roots = tuple(os.path.join(spec.source, "") for spec in self.apps.values())
        prefix = f"{self.package}."
        for name, module in list(sys.modules.items()):
            origin = getattr(module, "__file__", None) or ""
            if name.startswith(prefix) or (roots and origin.startswith(roots)):
                del sys.modules[name]
        importlib.invalidate_caches()
        self._loaded.clear()
        self._apps.clear()

    def preload(self) -> None:
        """Import every app now (the agent does, before it reports ready: a heavy import is paid at
        container start, never within a request's deadline); one that fails is reported and skipped."""
        for app, spec in self.apps.items():
            try:
                self._apps[app] = load(spec)
            except Exception as exc:
                print(f"app {app} failed to import: {exc!r}", file=sys.stderr)

    def set_apps(self, apps: dict[str, AppSpec]) -> None:
        """The apps of a new config: one whose spec changed is imported again on next use."""
        for app, spec in self.apps.items():
            if apps.get(app) != spec:
                self._apps.pop(app, None)  # closed by `retire` once the new apps imported
                for name in [n for n in self._loaded if n.startswith(f"{APP_PREFIX}{app}@")]:
                    del self._loaded[name]
        self.apps = apps

    def _app(self, name: str) -> Handle:
        app, _, mount = name.removeprefix(APP_PREFIX).partition("@")
        spec = self.apps.get(app)
        if spec is None:
            raise UnknownHandler(f"no app {app!r} in apps")
        if app not in self._apps:
            self._apps[app] = load(spec)  # imports the app: its errors are the caller's to report
        self._loaded[name] = AppHandle(self._apps[app], mount)
        return self._loaded[name]
