"""The skeleton: what the gateway's shape costs before it does anything. A bare aiohttp server on uvloop
with the gateway's one middleware, its on_response_prepare stamp and its catch-all route, running the echo
handler through the gateway's own thread executor (pool.thread), and nothing else: no identity, scoring,
decision, stats, metrics or log. bench/throughput.py sets it between the floor and isogate."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvloop
from aiohttp import web
from aiohttp.typedefs import Handler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.bare_server import handler_request, web_response  # noqa: E402
from pool.base import Job  # noqa: E402
from pool.registry import HandlerRegistry  # noqa: E402
from pool.thread import ThreadExecutor  # noqa: E402

EXECUTOR = web.AppKey("executor", ThreadExecutor)


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        return web.json_response({"error": exc.reason}, status=exc.status)


async def stamp(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["X-Request-Id"] = "skeleton"


async def view(request: web.Request) -> web.Response:
    name = request.path.strip("/") or "echo"
    job = Job(name, await handler_request(request), 10.0)
    return web_response(await request.app[EXECUTOR].run(job))


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def executor(app: web.Application):  # type: ignore[no-untyped-def]
    app[EXECUTOR] = ThreadExecutor(HandlerRegistry("handlers"), 2, 8, 64)  # config.yaml's thread_pool
    yield
    await app[EXECUTOR].aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application(middlewares=[middleware])
    app.cleanup_ctx.append(executor)
    app.on_response_prepare.append(stamp)
    app.router.add_get("/healthz", healthz)
    app.router.add_route("*", "/{tail:.*}", view)
    web.run_app(
        app, host="127.0.0.1", port=args.port, access_log=None, print=None, loop=uvloop.new_event_loop()
    )


if __name__ == "__main__":
    main()
