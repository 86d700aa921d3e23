"""Worker processes: with `server.workers` > 1 the main process only supervises. It starts that many gateway
processes (`python -m proxy ... --worker I/N`), each listening on the same port with SO_REUSEPORT (the kernel
spreads connections between them) and running its own slice of the container pools (policy.workers). A
worker that dies is started again (after a pause that grows while it keeps dying young); SIGHUP is passed
to every worker; SIGTERM or SIGINT drains them all (each finishes its requests) and then the main process
exits. Entity history is shared through `state.backend` (sqlite or redis): with `memory` each worker would
know only the callers the kernel happened to send it."""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from types import FrameType

from prometheus_client import multiprocess

log = logging.getLogger("isogate.workers")
POLL_S = 0.2
DRAIN_S = 60.0  # SIGTERM to SIGKILL: each worker finishes its requests (their deadlines are shorter)
YOUNG_S = 5.0  # a worker that dies younger than this is restarted after a pause...
MAX_PAUSE_S = 5.0  # ...doubling from POLL_S up to this


def count(workers: int | str) -> int:
    """`server.workers` as a number of processes ("auto": one per core)."""
    return (os.cpu_count() or 1) if workers == "auto" else int(workers)


class Supervisor:
    def __init__(self, command: list[str], workers: int, env: dict[str, str]) -> None:
        self.command, self.workers = command, workers
        # Keys go to each worker on its stdin, never in its environment (which /proc/<pid>/environ shows
        # for the process's life): the signing key, and one dashboard session key for all of them
        # (proxy/dashboard.py), so that a login made at one worker holds at the others.
        self.env = {k: v for k, v in env.items() if k != "SECRET_KEY"}
        self.keys = {"dashboard_key": secrets.token_hex(32)}
        if "SECRET_KEY" in env:
            self.keys["SECRET_KEY"] = env["SECRET_KEY"]
        self.children: dict[int, subprocess.Popen[bytes]] = {}
        self.born: dict[int, float] = {}
        self.pause: dict[int, float] = dict.fromkeys(range(workers), 0.0)
        self.due: dict[int, float] = {}  # worker index -> when to start it again
        self.stopping = False
        self.metrics_dir = ""

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGHUP, self._hangup)
        # The workers' /metrics values: files any worker reads at a scrape (prometheus-client multiprocess).
        self.metrics_dir = tempfile.mkdtemp(prefix="isogate-metrics-")
        self.env = {**self.env, "PROMETHEUS_MULTIPROC_DIR": self.metrics_dir}
        try:
            for index in range(self.workers):
                self._start(index)
            while not self.stopping:
                time.sleep(POLL_S)
                self._watch()
            return self._drain()
        finally:
            shutil.rmtree(self.metrics_dir, ignore_errors=True)

    def _start(self, index: int) -> None:
        argv = [*self.command, "--worker", f"{index}/{self.workers}"]
        child = self.children[index] = subprocess.Popen(argv, env=self.env, stdin=subprocess.PIPE)
        assert child.stdin is not None
        with child.stdin:
            child.stdin.write(json.dumps(self.keys).encode())
        self.born[index] = time.monotonic()
        log.info("worker %d/%d started (pid %d)", index, self.workers, self.children[index].pid)

    def _watch(self) -> None:
        now = time.monotonic()
        for index, child in list(self.children.items()):
            code = child.poll()
            if code is None:
                continue
            del self.children[index]
            multiprocess.mark_process_dead(child.pid, self.metrics_dir)  # type: ignore[no-untyped-call]
            young = now - self.born[index] < YOUNG_S
            self.pause[index] = min(MAX_PAUSE_S, max(POLL_S, self.pause[index] * 2)) if young else 0.0
            self.due[index] = now + self.pause[index]
            log.warning("worker %d (pid %d) exited with %s: starting it again", index, child.pid, code)
        for index, when in list(self.due.items()):
            if when <= now:
                del self.due[index]
                self._start(index)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def _hangup(self, signum: int, frame: FrameType | None) -> None:
        for child in self.children.values():
            child.send_signal(signal.SIGHUP)

    def _drain(self) -> int:
        log.info("draining %d workers", len(self.children))
        for child in self.children.values():
            child.send_signal(signal.SIGTERM)
        until = time.monotonic() + DRAIN_S
        for index, child in self.children.items():
            try:
                child.wait(max(0.1, until - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker %d did not finish within %.0f s: killed", index, DRAIN_S)
                child.kill()
                child.wait()
        return 0


def supervise(argv: list[str], workers: int, env: dict[str, str], shared_state: bool) -> int:
    """Run `workers` gateway processes of `argv` (this program's own arguments) until told to stop."""
    if not shared_state:
        log.warning(
            "state.backend is memory: each of the %d workers knows only the callers sent to it (use sqlite)",
            workers,
        )
    return Supervisor([sys.executable, "-m", "proxy", *argv], workers, env).run()
