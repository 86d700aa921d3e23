"""Calls sys.exit: in a thread that must be a failed handler, never the gateway's exit."""

import sys

from handlers import Request


def handle(request: Request) -> None:
    sys.exit(3)
