"""Answers with the status, headers and bytes it is told to: a transparency probe.

`?status=`, body = the request body (binary safe), plus repeated and custom headers.
"""

from handlers import Request, Response


def handle(request: Request) -> Response:
    status = int(request.arg("status", "200") or 200)
    headers = (
        ("Content-Type", "application/x-probe"),
        ("X-Probe", "one"),
        ("X-Probe", "two"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("Cache-Control", "no-store"),
        ("Connection", "x-should-be-dropped"),
        ("Transfer-Encoding", "chunked"),
        ("X-Seen-Authorization", request.header("authorization", "absent") or ""),
    )
    return Response(status, headers, request.body)
