"""`docker.requirements`: the file of packages handlers and apps import, read by the setup scripts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SECRET
from policy.errors import ConfigError
from proxy.loader import create_config
from proxy.requirements import install, requirements_file

ROOT = Path(__file__).resolve().parents[2]


def write(folder: Path, requirements: str | None) -> Path:
    docker = f"docker: {{requirements: {requirements!r}}}\n" if requirements is not None else "routes: []\n"
    path = folder / "config.yaml"
    path.write_text(docker)
    return path


def test_the_file_is_resolved_against_the_config_folder(tmp_path: Path) -> None:
    (tmp_path / "deps").mkdir()
    (tmp_path / "deps" / "app.txt").write_text("markupsafe\n")
    assert requirements_file(write(tmp_path, "deps/app.txt")) == tmp_path / "deps" / "app.txt"
    assert requirements_file(write(tmp_path, None)) is None  # none named: nothing to install


def test_a_named_file_that_does_not_exist_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"docker\.requirements: nope\.txt: no such file"):
        create_config(path=write(tmp_path, "nope.txt"), env={"SECRET_KEY": SECRET})


def test_the_cli_prints_the_file_without_the_real_key(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("# nothing yet\n")
    config = write(tmp_path, "requirements.txt")
    command = [sys.executable, "-m", "proxy.requirements", "--config", str(config)]
    env = {"PATH": "/usr/bin:/bin"}  # no SECRET_KEY: the setup scripts run before one exists
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout.strip()) == (0, str(tmp_path / "requirements.txt"))
    missing = subprocess.run(
        [*command[:-1], str(write(tmp_path, "gone.txt"))], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert missing.returncode == 1 and "gone.txt: no such file" in missing.stderr


def test_install_runs_pip_once_per_version_of_the_file(tmp_path: Path) -> None:
    requirements, stamp = tmp_path / "requirements.txt", tmp_path / "stamp"
    requirements.write_text("pyjwt\n")  # already installed: pip has nothing to fetch
    assert install(requirements, stamp) is True
    assert install(requirements, stamp) is False  # unchanged: skipped
    requirements.write_text("pyjwt\npsutil\n")
    assert install(requirements, stamp) is True
