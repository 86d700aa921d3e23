"""Imports a package the gateway's venv has and the probe image's dependency layer lacks (filetype): in a
container it is missing, as after a requirements edit before the image is rebuilt."""

import filetype

from handlers import Request


def handle(request: Request) -> dict[str, object]:
    return {"guess": filetype.guess_mime(request.body)}
