"""The decision log's writer thread: every line written in order, a bound on what waits, losses said."""

from __future__ import annotations

import io
import logging
import threading

import orjson
import pytest

from proxy import decisions
from proxy.decisions import DecisionLog, Entry


def entry(n: int) -> Entry:
    evidence = {"new_entity": "0 earlier requests, fewer than 10"}
    return (
        f"id{n}",
        "alice",
        "GET",
        "/echo",
        30,
        "new_entity=30",
        "thread",
        "new",
        200,
        1.5,
        3,
        evidence,
        None,
    )


def logger_into(stream: io.StringIO | None, name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers[:] = [logging.StreamHandler(stream)] if stream is not None else []
    logger.propagate, logger.level = False, logging.INFO
    return logger


def test_every_line_is_written_in_order_as_json_with_every_field() -> None:
    out = io.StringIO()
    log = DecisionLog(logger_into(out, "test.decisions.order"))
    for n in range(500):
        log.record(entry(n))
    log.flush()
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert [line["request_id"] for line in lines] == [f"id{n}" for n in range(500)]
    assert lines[0] == dict(zip(decisions.FIELDS, entry(0), strict=True))
    log.record(entry(500))  # the writer starts again after a flush
    log.flush()
    assert orjson.loads(out.getvalue().splitlines()[-1])["request_id"] == "id500"


class Blocked(io.StringIO):
    """A stream whose writes wait until `released` is set: a stderr nobody reads."""

    def __init__(self) -> None:
        super().__init__()
        self.released = threading.Event()

    def write(self, text: str) -> int:
        self.released.wait(timeout=30)
        return super().write(text)


def test_a_log_that_cannot_keep_up_loses_lines_counted_and_said_not_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(decisions, "MAX_PENDING", 50)
    stream = Blocked()
    log = DecisionLog(logger_into(stream, "test.decisions.blocked"))
    for n in range(200):  # the writer holds one line, 50 wait: the rest are dropped
        log.record(entry(n))
    assert 140 <= log.dropped <= 150
    stream.released.set()
    log.flush()
    text = stream.getvalue()
    assert f"{log.dropped} decision log lines dropped" in text
    assert len([line for line in text.splitlines() if line.startswith("{")]) == 200 - log.dropped


def test_nothing_is_queued_when_the_logger_is_off() -> None:
    logger = logger_into(None, "test.decisions.off")
    logger.level = logging.WARNING
    log = DecisionLog(logger)
    log.record(entry(1))
    assert log._writer is None and log._queue.empty()
