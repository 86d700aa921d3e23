"""CLI: `python -m proxy --config config.yaml [--host H] [--port P]` (installed as `isogate`)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import uvloop

from policy.errors import ConfigError
from proxy.app import create_app
from proxy.loader import ConfigSource, load, load_factors
from proxy.server import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="isogate", description="isogate: an isolation gateway")
    parser.add_argument("--config", default="config.yaml", help="policy file (default: config.yaml)")
    parser.add_argument("--host", help="listen address (overrides server.host)")
    parser.add_argument("--port", type=int, help="listen port (overrides server.port)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    server = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    try:
        loaded = load(
            ConfigSource(Path(args.config), dict(os.environ), {"server": server} if server else None)
        )
        config = loaded.config
        app = create_app(config, load_factors(loaded), source=loaded)
    except ConfigError as exc:
        sys.exit(f"isogate: refusing to start: {exc}")
    # The key lives in the config (and the reloader's copy of the environment) from here on: a handler
    # in thread mode reading os.environ, or a subprocess it starts, does not get it.
    os.environ.pop("SECRET_KEY", None)
    host, port = config.server.host, config.server.port
    ready = lambda: logging.getLogger("isogate").info(  # noqa: E731
        "listening on http://%s:%d (mode %s)", host, port, config.execution_mode.value
    )
    uvloop.run(serve(app, host, port, ready))


if __name__ == "__main__":
    main()
