"""A real redis-server (Debian's) on 127.0.0.1 for the state store's and the rate limits' tests, and real
gateway processes (`python -m proxy`) that use it: started and stopped here."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from ports import free_port

from conftest import SECRET

ROOT = Path(__file__).resolve().parents[1]


class RedisServer:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):  # bounded: up within 5 s
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Process:
    """`python -m proxy` on its own port, with config.yaml plus `state`, in thread mode."""

    def __init__(self, folder: Path, state: dict[str, Any], **extra: Any) -> None:
        config = yaml.safe_load((ROOT / "config.yaml").read_text())
        config |= {"execution_mode": "thread", "state": state, **extra}
        config["docker"] |= {"enabled": False, "requirements": ""}
        config["server"] |= {"debug_headers": "all", "max_body_bytes": 1024}
        self.path = folder / f"config-{free_port()}.yaml"
        self.path.write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in {"EXECUTION_MODE", "SECRET_KEY"}}
        command = [sys.executable, "-m", "proxy", "--config", str(self.path), "--port", str(self.port)]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**env, "SECRET_KEY": SECRET},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        async with aiohttp.ClientSession() as session:
            for _ in range(100):  # bounded: ready within 10 s
                try:
                    async with session.get(f"{self.url}/healthz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError("gateway did not become ready")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None:
            self.process.send_signal(sig)
            self.process.wait(timeout=20)
            self.process = None
