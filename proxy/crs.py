"""The CRS rule files read from `risk.crs.rules_dir` and compiled once: the databases are kept in a cache
directory under a hash of everything they are made of, so that a restart or a reload costs milliseconds
(compiling the paranoia level 1 rules takes seconds)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from importlib.metadata import version
from pathlib import Path

from policy.crs.engine import Compiled, Engine
from policy.crs.rules import FAMILIES, Parsed, parse
from policy.errors import ConfigError
from policy.rules import CrsConfig

log = logging.getLogger("isogate")
FORMAT = "isogate-crs-5"  # bump when the engine's compiled form changes
_last: tuple[str, Engine, Parsed] | None = None  # the last rules read: a reload of the same ones reuses them


def load_crs(crs: CrsConfig, base: Path) -> tuple[Engine, Parsed]:
    """The compiled rules `crs` asks for; ConfigError naming the key when they cannot be read. The rule and
    data files are read and hashed each time (a reload notices an upgraded CRS); parsed and compiled only
    when they changed."""
    global _last
    rules_dir = base / crs.rules_dir
    found = rules_dir.glob("REQUEST-9*.conf") if rules_dir.is_dir() else ()
    files = sorted(path for path in found if path.name[8:11] in FAMILIES)
    if not files:
        hint = "apt-get install modsecurity-crs"
        raise ConfigError("risk.crs.rules_dir", f"{rules_dir}: no REQUEST-930..944 rule files ({hint})")
    texts = {path.name: _read(path) for path in [*files, *sorted(rules_dir.glob("*.data"))]}
    digest = hashlib.sha256(f"{FORMAT} hyperscan {version('hyperscan')} pl{crs.paranoia_level}".encode())
    for name, text in texts.items():
        digest.update(f"\0{name}\0".encode() + text.encode())
    key = digest.hexdigest()
    if _last is not None and _last[0] == key:
        return _last[1], _last[2]

    def read_data(name: str) -> str:
        if name not in texts or not name.endswith(".data"):  # a plain name of a data file beside the rules
            raise ConfigError(
                "risk.crs.rules_dir", f"a rule names the data file {name!r}, not in {rules_dir}"
            )
        return texts[name]

    parsed = Parsed(digest=key)
    for path in files:
        parse(texts[path.name], read_data, parsed)
    cache = _cache_dir(crs, base) / f"{key}.hsdb"
    cached = _read_cache(cache)
    engine = Engine(parsed.rules, crs.paranoia_level, cached)
    if cached is None:
        _write_cache(cache, engine.compiled)
    skipped = ", ".join(f"{rule_id} ({why})" for rule_id, why in sorted(parsed.skipped.items()))
    log.info(
        "risk.crs: %d rules up to paranoia level %d from %s; not evaluated: %s",
        len(engine.rules),
        crs.paranoia_level,
        rules_dir,
        skipped or "none",
    )
    _last = (key, engine, parsed)
    return engine, parsed


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("risk.crs.rules_dir", f"cannot read {path}: {exc}") from None


def _cache_dir(crs: CrsConfig, base: Path) -> Path:
    if crs.cache_dir:
        return base / crs.cache_dir  # relative to config.yaml's folder, as the config's other paths
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "isogate" / "crs"


def _read_cache(path: Path) -> Compiled | None:
    """The cached databases, or None when missing or not intact (they are compiled again)."""
    try:
        header, _, payload = path.read_bytes().partition(b"\n")
        meta = json.loads(header)
        if meta.get("format") != FORMAT or meta.get("sha256") != hashlib.sha256(payload).hexdigest():
            return None
        whole = int(meta["whole"])
        databases, start = [], whole
        for pipeline, size in meta["databases"]:  # after the whole set's, one after the other
            databases.append((int(pipeline), payload[start : start + int(size)]))
            start += int(size)
        if start != len(payload):
            return None
        return Compiled(payload[:whole], frozenset(int(i) for i in meta["prefiltered"]), tuple(databases))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_cache(path: Path, compiled: Compiled) -> None:
    """Kept for the next start (owner-only, written whole or not at all); a cache that cannot be written
    only costs the next start its compile time."""
    payload = compiled.database + b"".join(database for _, database in compiled.databases)
    header = {
        "format": FORMAT,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "prefiltered": sorted(compiled.prefiltered),
        "whole": len(compiled.database),
        "databases": [[pipeline, len(database)] for pipeline, database in compiled.databases],
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".crs-")
    except OSError as exc:
        log.warning("risk.crs: cannot cache the compiled rules in %s: %s", path.parent, exc.strerror)
        return
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(json.dumps(header).encode() + b"\n" + payload)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        log.warning("risk.crs: cannot cache the compiled rules in %s: %s", path.parent, exc.strerror)
