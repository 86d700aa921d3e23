"""The floor: a bare aiohttp server on uvloop calling each example handler directly, in the event loop
(no identity, scoring, decision, thread pool or container). `/hello` answers a fixed body."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvloop
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from handlers import Request, Response, compute, echo, json_transform, to_response  # noqa: E402

HANDLERS = {"/echo": echo.handle, "/json": json_transform.handle, "/compute": compute.handle}


async def hello(request: web.Request) -> web.Response:
    return web.Response(body=b'{"hello":"world"}', content_type="application/json")


async def handler_request(request: web.Request) -> Request:
    """`request` as a handler sees it (no entity: these servers identify nobody)."""
    return Request(
        request.method,
        request.path,
        tuple(request.query.items()),
        tuple((k.lower(), v) for k, v in request.headers.items()),
        await request.read(),
    )


def web_response(response: Response) -> web.Response:
    return web.Response(status=response.status, headers=dict(response.headers), body=response.body)


async def direct(request: web.Request) -> web.Response:
    return web_response(to_response(HANDLERS[request.path](await handler_request(request))))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_get("/hello", hello)
    app.router.add_get("/healthz", hello)
    for path in HANDLERS:
        app.router.add_route("*", path, direct)
    web.run_app(
        app, host="127.0.0.1", port=args.port, access_log=None, print=None, loop=uvloop.new_event_loop()
    )


if __name__ == "__main__":
    main()
