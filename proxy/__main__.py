"""CLI: `python -m proxy --config config.yaml [--host H] [--port P]` (installed as `isogate`)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import uvloop

import policy
from policy.config import StateBackend
from policy.errors import ConfigError
from proxy.app import create_app
from proxy.loader import ConfigSource, load, load_factors, secret_from_file
from proxy.server import serve
from proxy.workers import count, supervise


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="isogate", description="isogate: an isolation gateway")
    parser.add_argument("--config", default="config.yaml", help="policy file (default: config.yaml)")
    parser.add_argument("--host", help="listen address (overrides server.host)")
    parser.add_argument("--port", type=int, help="listen port (overrides server.port)")
    parser.add_argument("--worker", type=worker_arg, help=argparse.SUPPRESS)  # I/N, set by the supervisor
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    server = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    worker = args.worker or (0, 1)
    try:
        # The key is read now, as the process starts (as root, when it does): a reload uses this copy.
        keys = received_keys() if args.worker is not None else {}
        env = dict(secret_from_file({**os.environ, **{k: v for k, v in keys.items() if k == "SECRET_KEY"}}))
        loaded = load(ConfigSource(Path(args.config), env, {"server": server} if server else None, worker))
        config = loaded.config
        workers = count(config.server.workers)
        if workers > 1 and args.worker is None:  # this process supervises; the workers serve
            shared = config.state.backend is not StateBackend.MEMORY
            sys.exit(supervise(sys.argv[1:] if argv is None else argv, workers, env, shared))
        app = create_app(config, load_factors(loaded), source=loaded, dashboard_key=keys.get("dashboard_key"))
    except ConfigError as exc:
        sys.exit(f"isogate: refusing to start: {exc}")
    # The key lives in the config (and the reloader's copy of the environment) from here on: a handler
    # in thread mode reading os.environ, or a subprocess it starts, does not get it.
    os.environ.pop("SECRET_KEY", None)
    host, port = config.server.host, config.server.port
    scoring = f"pure Python: {policy.PURE}" if policy.PURE else "compiled"  # see policy/__init__.py
    ready = lambda: logging.getLogger("isogate").info(  # noqa: E731
        "listening on http://%s:%d (mode %s, scoring %s)", host, port, config.execution_mode.value, scoring
    )
    try:
        uvloop.run(serve(app, host, port, ready, reuse_port=worker[1] > 1, user=config.server.user))
    except ConfigError as exc:  # found while starting up (a listener that cannot bind, say)
        sys.exit(f"isogate: refusing to start: {exc}")


def received_keys() -> dict[str, str]:
    """A worker's keys, from its supervisor on stdin (proxy/workers.py): never in its environment."""
    keys = json.loads(sys.stdin.read() or "{}")
    return {str(k): str(v) for k, v in keys.items()} if isinstance(keys, dict) else {}


def worker_arg(text: str) -> tuple[int, int]:
    index, _, total = text.partition("/")
    if not (index.isdigit() and total.isdigit() and int(index) < int(total)):
        raise argparse.ArgumentTypeError("expected INDEX/COUNT")
    return int(index), int(total)


if __name__ == "__main__":
    main()
