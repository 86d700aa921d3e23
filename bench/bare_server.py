"""Baseline: a bare aiohttp server on uvloop. `hello` answers a fixed body; `echo` calls the echo handler
directly (no identity, scoring, decision or thread pool): the floor the gateway is compared with."""

from __future__ import annotations

import argparse

import uvloop
from aiohttp import web

from handlers import Request, to_response
from handlers.echo import handle


async def hello(request: web.Request) -> web.Response:
    return web.Response(body=b'{"hello":"world"}', content_type="application/json")


async def echo(request: web.Request) -> web.Response:
    req = Request(
        request.method,
        request.path,
        tuple(request.query.items()),
        tuple((k.lower(), v) for k, v in request.headers.items()),
        await request.read(),
    )
    response = to_response(handle(req))
    return web.Response(status=response.status, headers=dict(response.headers), body=response.body)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_get("/hello", hello)
    app.router.add_get("/echo", echo)
    web.run_app(
        app, host="127.0.0.1", port=args.port, access_log=None, print=None, loop=uvloop.new_event_loop()
    )


if __name__ == "__main__":
    main()
