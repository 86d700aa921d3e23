"""Respond step: the handler's response sent as it was made; errors as one JSON shape."""

from __future__ import annotations

import orjson
from aiohttp import web
from multidict import CIMultiDict

from handlers import Response
from policy.errors import IsogateError, MethodNotAllowed
from pool.base import ExecutorError

# RFC 9110 7.6.1 connection-specific headers.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
NOT_FROM_HANDLERS = HOP_BY_HOP | {"content-length"}  # aiohttp frames a handler's body itself


def to_web_response(response: Response) -> web.Response:
    headers = CIMultiDict((k, v) for k, v in response.headers if k.lower() not in NOT_FROM_HANDLERS)
    return web.Response(status=response.status, headers=headers, body=response.body)


def json_response(data: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type="application/json")


def error_response(error: IsogateError | ExecutorError) -> web.Response:
    """`{"error": code, "detail": message}` with the error's status (and Allow for 405)."""
    response = json_response({"error": error.code, "detail": error.detail}, error.status)
    if isinstance(error, MethodNotAllowed):
        response.headers["Allow"] = ", ".join(error.allowed)
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    if error.status in (408, 413, 499):
        response.force_close()  # the unread body stays unread: the connection cannot be reused
    return response
