"""The decision log: one JSON line per request, built and written by a thread of its own.

The event loop hands over the trace's fields as a tuple (no formatting, no record, no write on the loop);
the writer turns each into a line on the `isogate.decision` logger. `evidence` names, for each factor that
fired, what it matched and where (`ARGS:comment: '<script>...'`); `would` is what report-only did not do.
At most MAX_PENDING lines wait: a log that cannot keep up (a blocked stderr) loses lines, counted and said,
rather than the gateway's memory.
"""

from __future__ import annotations

import logging
import threading
import time
from queue import SimpleQueue

import orjson

MAX_PENDING = 10_000
BATCH_S = 0.05  # the writer wakes at most this often while lines keep coming
FIELDS = (
    "request_id", "entity", "method", "route", "score", "factors", "mode", "reason", "status", "elapsed_ms",
    "generation", "evidence", "would",
)  # fmt: skip
Entry = tuple[
    str, str, str, str | None, int | None, str | None, str, str | None, int, float, int,
    dict[str, str] | None, str | None,
]  # fmt: skip

log = logging.getLogger("isogate.decision")


class DecisionLog:
    def __init__(self, logger: logging.Logger = log) -> None:
        self._logger = logger
        self._queue: SimpleQueue[Entry | None] = SimpleQueue()
        self._lock = threading.Lock()
        self._writer: threading.Thread | None = None
        self.dropped = 0  # lines lost because MAX_PENDING were waiting
        self._reported = 0  # of which the log was told

    def record(self, entry: Entry) -> None:
        if not self._logger.isEnabledFor(logging.INFO):
            return
        if self._queue.qsize() >= MAX_PENDING:
            self.dropped += 1
            return
        if self._writer is None:
            self._start()
        self._queue.put(entry)

    def _start(self) -> None:
        with self._lock:
            if self._writer is None:
                self._writer = threading.Thread(target=self._write, name="isogate-decision-log", daemon=True)
                self._writer.start()

    def _write(self) -> None:
        while (entry := self._queue.get()) is not None:
            self._logger.info(orjson.dumps(dict(zip(FIELDS, entry, strict=True))).decode())
            if self._queue.empty():  # caught up: let lines gather rather than wake for each one
                if self.dropped > self._reported:
                    self._report()
                time.sleep(BATCH_S)
        self._report()

    def _report(self) -> None:
        """Say how many lines were lost since the last time it was said."""
        dropped = self.dropped
        if dropped > self._reported:
            lost, self._reported = dropped - self._reported, dropped
            self._logger.warning("%d decision log lines dropped: the log did not keep up", lost)

    def flush(self) -> None:
        """Block until every line recorded so far is written (the writer ends and restarts on demand). The
        lock is held throughout: a writer started meanwhile could take the old one's end-of-queue mark."""
        with self._lock:
            if self._writer is not None:
                self._queue.put(None)
                self._writer.join()
                self._writer = None
