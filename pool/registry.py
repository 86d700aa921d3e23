"""Handler lookup: a name from config maps to `<package>/<name>.py`'s `handle`, and to nothing else."""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Callable
from pathlib import Path
from typing import cast

from handlers import Request

# A module name, never a path (policy.config.HANDLER_NAME checks the same at load; this module runs in the
# container too, where only the agent, the handler contract and user code exist).
HANDLER_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")

Handle = Callable[[Request], object]


class UnknownHandler(LookupError):
    pass


class HandlerRegistry:
    """Imports handler modules of one package on first use and keeps them."""

    def __init__(self, package: str = "handlers") -> None:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise UnknownHandler(f"handlers package {package!r} is not importable")
        self.package = package
        self._dirs = [Path(p) for p in spec.submodule_search_locations]
        self._loaded: dict[str, Handle] = {}

    def get(self, name: str) -> Handle:
        """The `handle` function of module `name`; raises UnknownHandler with the reason."""
        found = self._loaded.get(name)
        if found is not None:
            return found
        if not HANDLER_NAME.fullmatch(name) or not any((d / f"{name}.py").is_file() for d in self._dirs):
            raise UnknownHandler(f"no handler module {self.package}/{name}.py")
        module = importlib.import_module(f"{self.package}.{name}")
        handle = getattr(module, "handle", None)
        if not callable(handle):
            raise UnknownHandler(f"{self.package}/{name}.py defines no handle(request) function")
        self._loaded[name] = cast(Handle, handle)
        return self._loaded[name]
