"""Raises, with a message that must not reach the client (plus `?msg=`, caller input that reaches the log)."""

from handlers import Request


def handle(request: Request) -> None:
    raise KeyError(f"internal detail: db password is hunter2 {request.arg('msg', '')}")
