"""The one middleware: request id, errors to JSON, debug headers, stats and the decision log line."""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from policy.config import DebugHeaders
from policy.errors import IsogateError
from policy.risk import RiskScore
from pool.base import ExecutorError
from proxy.egress import error_response
from proxy.errors import ClientClosedRequest
from proxy.gateway import GATEWAY, TRACE, Gateway, Trace
from proxy.stats import REJECTED, Outcome

log = logging.getLogger("isogate")
# Request ids: a random per-process prefix and a counter; unique and far cheaper than uuid4 per request.
_ID_PREFIX = secrets.token_hex(8)
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


def _http_error(exc: web.HTTPException) -> IsogateError:
    error = IsogateError(exc.text or exc.reason)
    error.status = exc.status
    error.code = exc.reason.lower().replace(" ", "_")
    return error


@web.middleware
async def pipeline_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    trace = Trace(request_id=new_request_id(), started=time.perf_counter())
    request[TRACE] = trace
    try:
        auth = request.app[GATEWAY].config.auth
        if auth.jwks_url and (bearer := request.headers.get("Authorization", "")).startswith("Bearer "):
            await request.app[GATEWAY].jwks.prepare(bearer[7:].strip(), auth)  # the IdP's keys, held
        response = await handler(request)
    except asyncio.CancelledError:  # aiohttp cancels a handler whose client left (handler_cancellation)
        gone = ClientClosedRequest("the client closed the connection before the answer")
        finish(request.app[GATEWAY], trace, request.method, error_response(gone))
        raise
    except (IsogateError, ExecutorError) as exc:
        trace.charged = exc.charged
        response = error_response(exc)
    except web.HTTPException as exc:
        response = error_response(_http_error(exc))
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        response = error_response(IsogateError("the gateway failed to process this request"))
    finish(request.app[GATEWAY], trace, request.method, response)
    return response


async def stamp(request: web.Request, response: web.StreamResponse) -> None:
    """Just before a response's headers are sent (a streamed one's before its body): the request id and,
    for those allowed to see them, the debug headers."""
    trace = request.get(TRACE)
    if trace is None:
        return
    response.headers["X-Request-Id"] = trace.request_id
    if trace.headers:
        response.headers.update(trace.headers)
    shown = request.app[GATEWAY].config.server.debug_headers
    if trace.risk is not None and (
        shown is DebugHeaders.ALL or (shown is DebugHeaders.ADMINS and trace.admin)
    ):
        response.headers["X-Isogate-Risk"] = str(trace.risk.total)
        response.headers["X-Isogate-Factors"] = trace.risk.summary()
        if trace.risk.hits:
            response.headers["X-Isogate-Evidence"] = evidence_header(trace.risk)
        if trace.decision is not None and trace.decision.would is not None:
            response.headers["X-Isogate-Would"] = trace.decision.would.value
        mode = trace.decision.mode if trace.decision else None
        if mode is not None:
            response.headers["X-Isogate-Mode"] = mode.value
        if trace.target is not None:
            response.headers["X-Isogate-Target"] = trace.target


def evidence_header(risk: RiskScore, limit: int = 2048) -> str:
    """Each factor's evidence, `name: reason` joined by ` | `, as header-safe ASCII (escaped, never a line
    break) and at most `limit` characters."""
    text = " | ".join(f"{hit.name}: {hit.reason}" for hit in risk.hits)
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    text = "".join(c if " " <= c <= "~" else f"\\x{ord(c):02x}" for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def finish(gateway: Gateway, trace: Trace, method: str, response: web.StreamResponse) -> None:
    elapsed_ms = (time.perf_counter() - trace.started) * 1000
    mode = trace.decision.mode if trace.decision else None
    if not trace.counted or trace.entity is None:
        return
    band = trace.decision.band.value if trace.decision else None
    outcome = Outcome(
        trace.entity,
        response.status,
        mode.value if mode else REJECTED,
        band,
        elapsed_ms,
        trace.exec_ms,
        trace.charged,
    )
    gateway.stats.record(outcome)
    gateway.watch.request(trace, method, response.status, outcome.mode, elapsed_ms)
    gateway.metrics.request(outcome.mode, trace.route, response.status, band, elapsed_ms / 1000)
    risk, decision = trace.risk, trace.decision
    would = decision.would.value if decision and decision.would else None
    if would is not None:
        gateway.stats.would(would)
        gateway.metrics.would(trace.route, would)
    gateway.decisions.record(
        (
            trace.request_id,
            trace.entity,
            method,
            trace.route,
            risk.total if risk else None,
            risk.summary() if risk else None,
            outcome.mode,
            decision.reason if decision else None,
            response.status,
            round(elapsed_ms, 3),
            gateway.live.generation,
            {hit.name: hit.reason for hit in risk.hits} if risk and risk.hits else None,
            would,
        )
    )
