"""Kills its own process at once, as a crashing native extension would."""

import os

from handlers import Request


def handle(request: Request) -> None:
    os._exit(3)
