"""Imports a package from PyPI (markupsafe, via tests/requirements-apps.txt): in the gateway's venv for
thread mode, in the image's dependency layer for containers."""

import markupsafe

from handlers import Request


def handle(request: Request) -> dict[str, str]:
    return {"escaped": str(markupsafe.escape(request.arg("text", "")))}
