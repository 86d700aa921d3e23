"""Mint a token for trying the gateway: `python -m proxy.mint --sub alice [--role admin] [--ttl 3600]`.

Signs with the gateway's own key and first algorithm (config.yaml + environment), so it needs SECRET_KEY.
"""

from __future__ import annotations

import argparse
import sys
import time

import jwt

from policy.errors import ConfigError
from proxy.loader import create_config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m proxy.mint", description=__doc__)
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--sub", required=True, help="the entity id")
    parser.add_argument("--role", help="e.g. admin, for /stats")
    parser.add_argument("--trust", choices=["trusted", "untrusted"])
    parser.add_argument("--ttl", type=int, default=3600, help="seconds until exp (default 3600)")
    args = parser.parse_args(argv)
    try:
        auth = create_config(path=args.config).auth
    except ConfigError as exc:
        sys.exit(f"mint: {exc}")
    if auth.public_key:
        sys.exit("mint: the gateway verifies public-key tokens; sign them with your identity provider")
    now = int(time.time())
    claims = {"sub": args.sub, "iat": now, "exp": now + args.ttl}
    claims |= {k: v for k, v in (("role", args.role), ("trust", args.trust)) if v}
    print(jwt.encode(claims, auth.secret_key, algorithm=auth.algorithms[0]))


if __name__ == "__main__":
    main()
