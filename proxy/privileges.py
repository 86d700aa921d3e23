"""Started as root, the gateway gives root up once it holds what needed it (its listening socket, its
state store, its key, read before), so that handlers and apps in thread mode, and whatever they start,
never run as root. Containers run as `nobody` whatever the gateway runs as (pool/sandbox.py)."""

from __future__ import annotations

import logging
import os
import pwd

from policy.errors import ConfigError

log = logging.getLogger("isogate")


def drop_root(user: str) -> None:
    """Become `user` (its uid, gid and groups: `docker` among them gives the engine's socket) when running
    as root and a user is named; ConfigError when it does not exist. Every thread follows (setuid is
    process-wide on Linux)."""
    if not user or os.geteuid() != 0:
        return
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ConfigError("server.user", f"{user}: no such user (make run creates it)") from None
    os.setgroups(os.getgrouplist(user, entry.pw_gid))
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    log.info("running as %s (uid %d), not root", user, entry.pw_uid)
