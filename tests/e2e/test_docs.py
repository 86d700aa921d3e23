"""The console examples of the README and docs/, run as written against the real gateway (`python -m proxy
--config config.yaml`, as `make run` starts it, with the key `make run` writes), their output compared with
what the page shows. docs/'s examples edit config.yaml: they run in a scratch copy of the project's folder.
A block right after `<!-- not run: REASON -->` is not run, and says why.

Tolerance, stated: every number matches any number (ids, pids, times, counts, versions), a 12-hex-digit
container hostname any such name, and `...` anything; everything else (keys, factor names, modes, errors,
header names) must be as shown. `localhost:8080` is the test's own port.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from ports import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.docker]
MARK = "@@isogate-doc-command@@"
HEREDOC = re.compile(r"<<-?\s*'?(\w+)'?")


def console_blocks(path: Path) -> list[list[tuple[str, list[str]]]]:
    """Each ```console block of `path`: its commands (continued lines joined) with their shown output."""
    blocks, block, inside, skipped, previous = [], list[tuple[str, list[str]]](), False, False, ""
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            if inside and not skipped:
                blocks.append(block)
            block, inside = [], line.strip() == "```console"
            skipped = inside and previous.startswith("<!-- not run:")
            continue
        previous = line.strip() or previous
        if not inside:
            continue
        if block and (here := HEREDOC.search(block[-1][0])) and not block[-1][0].endswith("\n" + here[1]):
            block[-1] = (block[-1][0] + "\n" + line, block[-1][1])  # a here-document's lines, to its end
        elif line.startswith("$ "):
            block.append((line[2:], []))
        elif block and block[-1][0].endswith("\\"):
            block[-1] = (block[-1][0][:-1] + " " + line.strip(), block[-1][1])
        elif block:
            block[-1][1].append(line)
    return blocks


def pattern(shown: list[str], one_line: bool = False) -> re.Pattern[str]:
    """What a command's shown output allows (see the module's tolerance). JSON the README wraps over lines
    for reading is matched as the one line the gateway sends (`one_line`)."""
    text = "".join(line.strip() for line in shown) if one_line else "\n".join(line.rstrip() for line in shown)
    parts = []
    for piece in re.split(r"(\.\.\.|\b[0-9a-f]{12}\b|\d+(?:\.\d+)*)", text):
        if piece == "...":
            parts.append(r".*?")
        elif re.fullmatch(r"\d+(?:\.\d+)*|[0-9a-f]{12}", piece):
            parts.append(r"[0-9a-f.]+")
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts), re.DOTALL)


def start(folder: Path, runtime: str, **extra: str) -> tuple[int, subprocess.Popen[bytes]]:
    """The gateway as `make run` starts it in `folder`: its config.yaml, and the key make writes."""
    subprocess.run(["make", "-s", ".env", ".secret_key"], cwd=folder, check=True, capture_output=True)
    port = free_port()
    keep = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "EXECUTION_MODE"}}
    env = {**keep, "SECRET_KEY_FILE": ".secret_key", "STATE_BACKEND": "memory", "DOCKER_RUNTIME": runtime}
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy", "--config", "config.yaml", "--port", str(port)],
        cwd=folder,
        env={**env, **extra},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    probe = f"curl -sf localhost:{port}/healthz >/dev/null"
    ready = f"for i in $(seq 150); do {probe} && exit 0; sleep 0.2; done; exit 1"
    assert subprocess.run(["bash", "-c", ready]).returncode == 0, "the gateway did not answer /healthz"
    return port, process


@pytest.fixture(scope="module")
def served(docker_ready: None, runtime: str) -> Iterator[int]:
    port, process = start(ROOT, runtime)
    yield port
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def scratch(tmp_path: Path, docker_ready: None, runtime: str) -> Iterator[tuple[Path, int]]:
    """A copy of the project's folder, as far as `make run` and its config need (the code is the venv's),
    served in thread mode: docs/'s examples edit its config.yaml, never the repository's."""
    for name in ("config.yaml", "requirements.txt", "Makefile", "pyproject.toml", ".env.example"):
        shutil.copy2(ROOT / name, tmp_path / name)
    for name in ("handlers", ".venv", "policy", "proxy", "pool"):
        (tmp_path / name).symlink_to(ROOT / name)
    port, process = start(tmp_path, runtime, EXECUTION_MODE="thread", DOCKER_ENABLED="false")
    yield tmp_path, port
    process.terminate()
    process.wait(timeout=10)


def run_block(block: list[tuple[str, list[str]]], port: int, folder: Path = ROOT) -> list[str]:
    """The block's commands in one shell (a variable set by one is there for the next), each output apart."""
    script = "".join(
        f"echo '{MARK}'\n{command.replace('localhost:8080', f'localhost:{port}')}\n" for command, _ in block
    )
    done = subprocess.run(["bash", "-c", script], cwd=folder, capture_output=True, text=True, timeout=120)
    return done.stdout.split(f"{MARK}\n")[1:]


def check(block: list[tuple[str, list[str]]], outputs: list[str]) -> None:
    assert len(outputs) == len(block)
    for (command, shown), output in zip(block, outputs, strict=True):
        got = "\n".join(line.rstrip() for line in output.rstrip("\n").split("\n"))
        assert pattern(shown, one_line="\n" not in got).fullmatch(got), (
            f"$ {command}\nshown:\n{chr(10).join(shown)}\ngot:\n{output}"
        )


@pytest.mark.parametrize("number", range(len(console_blocks(ROOT / "README.md"))))
def test_a_readme_console_example_prints_what_it_shows(served: int, number: int) -> None:
    block = console_blocks(ROOT / "README.md")[number]
    check(block, run_block(block, served))


DOCS = [
    (page.name, i) for page in sorted((ROOT / "docs").glob("*.md")) for i in range(len(console_blocks(page)))
]


@pytest.mark.parametrize(("page", "number"), DOCS)
def test_a_docs_console_example_prints_what_it_shows(
    scratch: tuple[Path, int], page: str, number: int
) -> None:
    folder, port = scratch
    block = console_blocks(ROOT / "docs" / page)[number]
    check(block, run_block(block, port, folder))
