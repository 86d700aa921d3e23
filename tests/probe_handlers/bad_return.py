"""Returns a value that is not a response."""

from handlers import Request


def handle(request: Request) -> object:
    return 42
