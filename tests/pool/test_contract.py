"""The handler contract: Request helpers, Response validation, return-value normalisation."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from handlers import Request, Response, to_response

ROOT = Path(__file__).resolve().parents[2]


def test_request_helpers() -> None:
    request = Request("POST", "/p", (("a", "1"), ("a", "2")), (("x-k", "v"),), b'{"n": 1}', "e")
    assert request.arg("a") == "1" and request.arg("b", "d") == "d"
    assert request.header("X-K") == "v" and request.header("y") is None
    assert request.json() == {"n": 1}
    with pytest.raises(ValueError):
        Request("POST", "/p", body=b"{nope").json()


@pytest.mark.parametrize(
    ("value", "status", "ctype", "body"),
    [
        ({"a": "é"}, 200, "application/json", '{"a":"é"}'.encode()),
        ([1, 2], 200, "application/json", b"[1,2]"),
        ("hi", 200, "text/plain; charset=utf-8", b"hi"),
        (b"\x00\xff", 200, "application/octet-stream", b"\x00\xff"),
        (Response(201, {"Content-Type": "a/b"}, b"x"), 201, "a/b", b"x"),
    ],
)
def test_to_response(value: object, status: int, ctype: str, body: bytes) -> None:
    response = to_response(value)
    assert (response.status, dict(response.headers)["Content-Type"], response.body) == (status, ctype, body)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"status": 101},
        {"status": 600},
        {"status": "200"},
        {"body": "text"},
        {"headers": (("X-A", "1\r\nX-B: 2"),)},
        {"headers": (("Bad Name", "1"),)},
        {"headers": (("X-A",),)},
    ],
)
def test_invalid_responses_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Response(**kwargs)  # type: ignore[arg-type]


def test_other_return_types_are_refused() -> None:
    with pytest.raises(TypeError, match="int"):
        to_response(42)


def test_the_agent_imports_only_the_standard_library_pool_and_handlers(tmp_path: Path) -> None:
    """What the runner image holds (pool/ and handlers/, no venv) is enough to start the agent."""
    for package in ("pool", "handlers"):
        shutil.copytree(ROOT / package, tmp_path / package)
    probe = "import sys, pool.agent; print(sorted(m for m in sys.modules if m.split('.')[0] == 'policy'))"
    command = [sys.executable, "-S", "-E", "-c", probe]  # no site-packages, no PYTHONPATH
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def imported(path: Path) -> set[str]:
    """The top-level packages a module imports."""
    tree = ast.parse(path.read_text())
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    return {name.split(".")[0] for name in names}


@pytest.mark.parametrize(
    ("package", "never"),
    [
        ("pool", {"policy", "proxy"}),
        ("policy", {"pool", "proxy", "handlers"}),
        ("handlers", {"pool", "policy", "proxy"}),
    ],
)
def test_imports_flow_one_way(package: str, never: set[str]) -> None:
    """proxy -> policy and proxy -> pool -> handlers: the pool runs what the proxy configures it with, and
    the policy core is plain values."""
    wrong = {path.name: imported(path) & never for path in sorted((ROOT / package).glob("*.py"))}
    assert {name: found for name, found in wrong.items() if found} == {}
