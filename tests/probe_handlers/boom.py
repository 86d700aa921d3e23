"""Raises, with a message that must not reach the client."""

from handlers import Request


def handle(request: Request) -> None:
    raise KeyError("internal detail: db password is hunter2")
