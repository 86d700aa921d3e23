"""The compiled scoring path (scripts/compile.py, `make compiled`): used while it is the sources' build,
never when a source changed since (then the Python runs, and says why), and it scores exactly as the Python.

Each case runs a fresh interpreter: which build a process uses is decided once, when `policy` is imported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CRS_RULES

ROOT = Path(__file__).resolve().parents[1]
BUILT = ROOT / "build" / "compiled"
WHICH = "import json, policy, policy.fields, policy.crs.engine; print(json.dumps([policy.PURE, policy.fields.__file__, policy.crs.engine.__file__]))"  # noqa: E501


def run(code: str, cwd: Path, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "ISOGATE_PURE"} | env
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=environ, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def which(cwd: Path, **env: str) -> tuple[str, str, str]:
    pure, fields, engine = json.loads(run(WHICH, cwd, **env))
    return pure, fields, engine


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """policy/ and its build, copied: a place to edit sources without touching the repository's."""
    assert (BUILT / "manifest.json").exists(), "no compiled build: run `make compiled` (make test does)"
    shutil.copytree(ROOT / "policy", tmp_path / "policy", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(BUILT, tmp_path / "build" / "compiled")
    return tmp_path


def test_the_repository_runs_its_compiled_build() -> None:
    pure, fields, engine = which(ROOT)
    assert pure == "", f"running pure Python ({pure}): run `make compiled` (make test does)"
    assert fields.startswith(str(BUILT)) and fields.endswith(".so")
    assert engine.startswith(str(BUILT / "policy" / "crs")) and engine.endswith(".so")


def test_an_unchanged_copy_loads_its_own_build(checkout: Path) -> None:
    pure, fields, _ = which(checkout)
    assert pure == "" and fields.startswith(str(checkout / "build" / "compiled"))


def test_an_edited_source_runs_as_python_and_names_the_file(checkout: Path) -> None:
    with (checkout / "policy" / "crs" / "transforms.py").open("a") as source:
        source.write("\n# edited after the build\n")
    pure, fields, engine = which(checkout)
    assert pure == "policy/crs/transforms.py changed since the build (make compiled)"
    assert fields == str(checkout / "policy" / "fields.py")
    assert engine == str(checkout / "policy" / "crs" / "engine.py")


def test_a_new_source_also_makes_the_build_stale(checkout: Path) -> None:
    (checkout / "policy" / "extra.py").write_text("X = 1\n")
    assert which(checkout)[0] == "policy/extra.py changed since the build (make compiled)"


def test_isogate_pure_runs_the_python(checkout: Path) -> None:
    pure, fields, _ = which(checkout, ISOGATE_PURE="1")
    assert pure == "ISOGATE_PURE is set" and fields.endswith("fields.py")


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [
        ("{not json", "build/compiled/manifest.json unreadable"),
        ('{"python": "cpython-27", "sources": {}}', "compiled for cpython-27, this is "),
        (None, "not compiled (make compiled)"),
    ],
)
def test_a_broken_or_foreign_build_runs_the_python(checkout: Path, manifest: str | None, reason: str) -> None:
    path = checkout / "build" / "compiled" / "manifest.json"
    if manifest is None:
        path.unlink()
    else:
        path.write_text(manifest)
    pure, fields, _ = which(checkout)
    assert pure.startswith(reason) and fields.endswith("fields.py")


def test_a_missing_library_runs_the_python(checkout: Path) -> None:
    for library in (checkout / "build" / "compiled").glob("isogate_compiled__mypyc.*"):
        library.unlink()
    pure, fields, _ = which(checkout)
    assert "no isogate_compiled__mypyc library" in pure and fields.endswith("fields.py")


SCORES = """
import json, os, sys
from pathlib import Path
sys.path[:0] = ["tests", "."]
from bench.detection import CALLER, HISTORY, ROUTE, read
from conftest import make_config
from policy.corpus import to_incoming
from policy.crs import crs_factor
from policy.risk import RiskInput, score
from proxy.crs import load_crs
config = make_config({"risk": {"crs": {"enabled": True, "rules_dir": %r, "cache_dir": %r}}})
engine, _ = load_crs(config.risk.crs, Path("."))
plugins = {"crs": crs_factor(engine)}
out = []
for record in read(Path("tests/fixtures/csic2010-sample.jsonl.gz")):
    found = score(RiskInput(to_incoming(record), CALLER, HISTORY, ROUTE, 65536), config, plugins)
    out.append([found.total, [[hit.name, hit.points, hit.reason] for hit in found.hits]])
print(json.dumps(out))
"""


def test_compiled_and_python_score_the_corpus_alike(crs_cache: str) -> None:
    """Every factor's points and reason, on the 1,000 labelled requests, CRS included."""
    code = SCORES % (CRS_RULES, crs_cache)
    compiled = json.loads(run(code, ROOT))
    python = json.loads(run(code, ROOT, ISOGATE_PURE="1"))
    assert len(compiled) == 1000 and sum(total > 0 for total, _ in compiled) > 50  # not a vacuous match
    assert compiled == python
