"""Tries to inject a header through a CR/LF in a header value."""

from handlers import Request, Response


def handle(request: Request) -> Response:
    return Response(200, (("X-Evil", "a\r\nSet-Cookie: session=stolen"),), b"")
