"""Compile the scoring path (policy/ modules every request runs) to C with mypyc, into build/compiled.

policy/__init__.py loads the compiled modules only while every policy/ source is byte for byte what was
compiled (build/compiled/manifest.json holds their sha256): an edited source is run as Python, never a stale
build. `make compiled` runs this when a source changed; ISOGATE_PURE=1 runs the Python even when fresh.

Usage: python scripts/compile.py
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from mypyc.build import mypycify
from setuptools import Distribution

ROOT = Path(__file__).resolve().parents[1]
os.environ["ISOGATE_PURE"] = "1"  # importing policy below must not load the build this replaces
sys.path.insert(0, str(ROOT))
from policy import source_digests  # noqa: E402

OUT = ROOT / "build" / "compiled"
GROUP = "isogate_compiled"  # the shared library's name: build/compiled/isogate_compiled__mypyc.*.so
# Per request: extracting and normalising values, the detectors, the keyword matcher, the score, the
# profile's check and the CRS engine. Config loading and rule parsing run at start and stay Python, and so
# does risk.py: a compiled class's functools.cached_property recomputes on every read (RiskInput.fields).
MODULES = [
    "policy/bodies.py",
    "policy/detectors.py",
    "policy/fields.py",
    "policy/normalise.py",
    "policy/patterns.py",
    "policy/profile.py",
    "policy/decision.py",
    "policy/identity.py",
    "policy/incoming.py",
    "policy/risk.py",
    "policy/routes.py",
    "policy/crs/checks.py",
    "policy/crs/engine.py",
    "policy/crs/pipelines.py",
    "policy/crs/request.py",
    "policy/crs/transforms.py",
]


def main() -> None:
    os.chdir(ROOT)  # mypyc names modules by their path from here
    before = source_digests()  # the build is used only while these hold
    shutil.rmtree(OUT, ignore_errors=True)
    extensions = mypycify(MODULES, group_name=GROUP, target_dir="build/mypyc")
    # A Distribution of its own: setup() would read pyproject.toml, which is the gateway's, not this build's.
    dist = Distribution({"name": "isogate-compiled", "ext_modules": extensions})
    build = dist.get_command_obj("build_ext")
    build.build_lib, build.build_temp, build.parallel = str(OUT), "build/mypyc-temp", os.cpu_count() or 1
    dist.run_command("build_ext")
    if source_digests() != before:
        sys.exit("policy/ changed while compiling: run again")
    manifest = {"python": sys.implementation.cache_tag, "group": GROUP, "sources": before}
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"compiled {len(MODULES)} modules into {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
