"""What a container pool's containers run: the handler agent serving handlers and apps, or an isolated
replica's own image behind the relay agent. Its labels and mounts are part of the container spec."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from pool import relay
from pool.apps import AppSpec

LABEL = "isogate.pool"
APPS_ROOT = "/srv/apps"  # apps' sources, mounted read-only
CODE_LABEL = f"{LABEL}.code"  # the code version a container runs


@dataclass(frozen=True, slots=True)
class Workload:
    """What a pool's containers run: the runner image (`docker.image`) idling while the handler agent
    (`pool.agent`) serves `package`; or, for an isolated replica, an app's own `image` with its own command
    and the relay agent (`pool.relay`) in front of its `port`."""

    package: str = "handlers"
    image: str = ""
    port: int = 0
    apps: tuple[tuple[str, AppSpec], ...] = ()  # (name, spec with the host's source directory)
    handlers_dir: str = ""  # the host's handler package, mounted over the image's copy ("": the image's)
    code: str = ""  # the handlers' and apps' code version (HandlerRegistry.code_version)

    @property
    def replica(self) -> bool:
        return bool(self.image)

    def pool_name(self, base: str) -> str:
        """The pool's label: `base` (docker.pool_name), and for a replica a digest of its image and port."""
        if not self.replica:
            return base
        digest = hashlib.sha256(f"{self.image}|{self.port}".encode()).hexdigest()[:10]
        return f"{base}-replica-{digest}"

    def agent(self, max_response: int) -> list[str]:
        """The command line of the agent exec'd once per container."""
        if self.replica:
            return relay.command(self.port, max_response)
        command = ["python3", "-u", "-m", "pool.agent", self.package, str(max_response)]
        if self.apps:  # as the container sees them: each source mounted at APPS_ROOT/<name>
            inside = {name: {**asdict(spec), "source": f"{APPS_ROOT}/{name}"} for name, spec in self.apps}
            command.append(json.dumps(inside))
        return command

    def labels(self) -> dict[str, str]:
        """What the agent serves: the apps (a digest) and the code version. Containers made for other
        apps or older code differ in their spec, so the pool rolls them."""
        labels = {CODE_LABEL: self.code} if self.code else {}
        if self.apps:
            served = json.dumps([[name, asdict(spec)] for name, spec in self.apps], sort_keys=True)
            labels[f"{LABEL}.apps"] = hashlib.sha256(served.encode()).hexdigest()[:16]
        return labels

    def binds(self) -> list[str]:
        """The handler package and each app's source directory, read-only, where the agent looks for them:
        new code reaches new containers without a new image."""
        own = [f"{self.handlers_dir}:/app/{self.package}:ro"] if self.handlers_dir else []
        return own + [f"{spec.source}:{APPS_ROOT}/{name}:ro" for name, spec in self.apps]
