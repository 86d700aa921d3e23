"""The handlers' and apps' code: imported and checked before a config may serve, and imported again when
it changes (what was imported before keeps serving when the new code does not import)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from policy.config import Config, RouteConfig
from policy.errors import ConfigError
from pool.apps import AppSpec
from pool.registry import HandlerRegistry, UnknownHandler, app_handler
from pool.workload import Workload

log = logging.getLogger("isogate.gateway")


@dataclass
class Code:
    registry: HandlerRegistry
    base_dir: Path  # apps' sources are relative to it (config.yaml's directory)
    version: str = ""  # of the code being served (HandlerRegistry.code_version)

    def check(self, config: Config) -> None:
        """Every routed handler and app must be importable before `config` may serve; when one is not,
        the apps imported before stay (ConfigError), else the ones `config` no longer serves are closed."""
        self._import_or_restore(config, again=False)

    def _import_or_restore(self, config: Config, *, again: bool) -> None:
        """Import what `config` routes to (`again`: forgetting every earlier import first); when something
        does not import, put back what was imported before and raise, else close the apps left behind."""
        before = self.registry.snapshot()
        if again:
            self.registry.refresh()
        try:
            self._import(config)
        except ConfigError:
            self.registry.restore(before)
            raise
        self.registry.retire(before)

    def _import(self, config: Config) -> None:
        self.registry.set_apps(app_specs(config, self.base_dir))
        for i, route in enumerate(config.routes):
            if not (route.handler or route.app):
                continue  # an upstream route
            try:
                self.registry.get(handler_of(route))
            except UnknownHandler as exc:
                raise ConfigError(f"routes[{i}].{'app' if route.app else 'handler'}", str(exc)) from None
            except Exception as exc:  # the app's own import failed
                raise ConfigError(f"apps.{route.app}", f"could not import it: {exc!r}"[:300]) from None

    def refresh(self, config: Config) -> str | None:
        """When the code changed since it was imported: import it again now (not within a request's
        deadline) and return the new version; None when nothing changed. ConfigError when the new code
        does not import: what was imported before keeps serving."""
        version = self.registry.code_version()
        if version == self.version:
            return None
        self._import_or_restore(config, again=True)
        log.info("code changed (%s -> %s): re-imported", self.version, version)
        self.version = version
        return version

    def workload(self, config: Config) -> Workload:
        """What the handler containers run: the handler package and the apps, at this code version."""
        apps = tuple(sorted(app_specs(config, self.base_dir).items()))
        handlers_dir = str(self.registry.package_dir)
        return Workload(config.handlers_package, apps=apps, handlers_dir=handlers_dir, code=self.version)


def handler_of(route: RouteConfig) -> str:
    """The registry name a handler or app route runs."""
    return app_handler(route.app, route.mount) if route.app else route.handler


def app_specs(config: Config, base: Path) -> dict[str, AppSpec]:
    """The config's apps with their sources resolved against `base` (config.yaml's directory)."""
    return {
        name: AppSpec(str((base / app.source).resolve()), app.target, app.interface)
        for name, app in config.apps.items()
    }
