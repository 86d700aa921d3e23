"""isogate's pure core: config model, identity, risk scoring and decisions (no I/O but choosing its build).

The modules every request runs may be compiled to C by mypyc (scripts/compile.py, `make compiled`). They
are loaded from build/compiled only while every policy/ source is byte for byte the one compiled (the
build's manifest holds their sha256) and ISOGATE_PURE is unset: an edited source runs as Python, never as
a stale build. `PURE` says why the Python runs ("" when the compiled modules are in use).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from pathlib import Path

_SOURCES = Path(__file__).resolve().parent
_BUILT = _SOURCES.parent / "build" / "compiled"


def source_digests() -> dict[str, str]:
    """sha256 of every policy/ source, by path from the checkout: what a build is checked against."""
    return {
        str(path.relative_to(_SOURCES.parent)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(_SOURCES.rglob("*.py"))
    }


def _load_compiled() -> str:
    """Load the compiled modules' shared library if the build is fresh: "" then, else why not."""
    if os.environ.get("ISOGATE_PURE"):
        return "ISOGATE_PURE is set"
    try:
        manifest = json.loads((_BUILT / "manifest.json").read_bytes())
    except FileNotFoundError:
        return "not compiled (make compiled)"
    except (OSError, ValueError) as exc:
        return f"build/compiled/manifest.json unreadable ({exc})"
    if manifest.get("python") != sys.implementation.cache_tag:
        return f"compiled for {manifest.get('python')}, this is {sys.implementation.cache_tag}"
    sources = source_digests()
    compiled = manifest.get("sources", {})
    if sources != compiled:
        changed = sorted({*sources.items()} ^ {*compiled.items()})[0][0]
        return f"{changed} changed since the build (make compiled)"
    group = f"{manifest['group']}__mypyc"  # the library every compiled module's stub imports
    library = next(iter(_BUILT.glob(f"{group}.*")), None)
    spec = importlib.util.spec_from_file_location(group, library) if library else None
    if spec is None or spec.loader is None:
        return f"build/compiled has no {group} library (make compiled)"
    module = importlib.util.module_from_spec(spec)
    sys.modules[group] = module
    spec.loader.exec_module(module)
    return ""


PURE = _load_compiled()


def compiled_path(package: str) -> list[str]:
    """Where `package`'s compiled modules are, to search before its sources (empty when running pure)."""
    return [] if PURE else [str(_BUILT.joinpath(*package.split(".")))]


__path__[:0] = compiled_path(__name__)
