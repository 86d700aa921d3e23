"""The packages handlers and apps import: `docker.requirements` in config.yaml, for the setup scripts.

`python -m proxy.requirements` prints the file's path (nothing when the config names none); with
`--install` it also installs the file into this Python's environment (the gateway's venv: thread mode
imports from it), skipped while the file is unchanged since the last install. scripts/runner-image.sh
installs the same file into the runner image.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import subprocess
import sys
from pathlib import Path

from policy.errors import ConfigError
from proxy.loader import create_config


def requirements_file(config_path: Path) -> Path | None:
    """The file config.yaml names, resolved against its folder."""
    # Only the docker section is read here: a placeholder key lets the config parse without the real one.
    env = {**os.environ, "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_hex(32)}
    name = create_config(path=config_path, env=env).docker.requirements
    return (config_path.parent / name).resolve() if name else None


def install(path: Path, stamp: Path = Path(sys.prefix) / ".isogate-requirements") -> bool:
    """pip install -r `path` into this environment unless it was installed unchanged (as `stamp` records);
    True when pip ran."""
    digest = f"{path} {hashlib.sha256(path.read_bytes()).hexdigest()}"
    if stamp.exists() and stamp.read_text() == digest:
        return False
    pip = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", str(path)]
    subprocess.run(pip, check=True)
    stamp.write_text(digest)
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m proxy.requirements", description=__doc__)
    parser.add_argument("--config", type=Path, default=Path("config.yaml"))
    parser.add_argument("--install", action="store_true", help="install it into this environment")
    args = parser.parse_args(argv)
    try:
        path = requirements_file(args.config)
    except ConfigError as exc:
        sys.exit(f"requirements: {exc}")
    if path is None:
        return
    if args.install and install(path):
        print(f"requirements: installed {path}", file=sys.stderr)
    print(path)


if __name__ == "__main__":
    main()
