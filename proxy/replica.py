"""An upstream route's docker decision, sent to its isolated replica: the app's own image in a locked-down
container of the replica's pool (pool.replicas), reached through the relay agent (pool.relay), never over a
network. The request goes as it would to the production upstream (its base path prefixed, end-to-end
headers, X-Forwarded-* appended), its body read whole (within the route's body limit: a frame carries it),
and the app's answer comes back as it made it (framing aside)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from multidict import CIMultiDict

from handlers import Request, Response
from policy.config import IsolatedConfig
from pool.base import DockerUnavailable, ExecutorError, Job
from proxy.forward import Hop, IsolationUnavailable, end_to_end, outgoing_headers
from proxy.gateway import Gateway

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})  # given a Content-Length even when empty


async def to_replica(
    request: web.Request,
    gw: Gateway,
    isolated: IsolatedConfig,
    body: AsyncIterator[bytes],
    hop: Hop,
    *,
    base_path: str,
    entity: str,
    share: int | None,
) -> web.Response:
    if request.headers.get("Upgrade"):
        raise IsolationUnavailable("the isolated replica takes HTTP requests: this upgrade is refused")
    pool = gw.dispatch.replica(isolated)
    if pool is None:
        raise DockerUnavailable("docker.enabled is false: the isolated replica cannot run")
    origin = f"http://127.0.0.1:{isolated.port}"
    headers = outgoing_headers(request, origin, hop, gw.forwarder.config.forwarded)
    data = b"".join([chunk async for chunk in body])
    headers.popall("Content-Length", None)  # the body is whole now, however it came
    if data or request.method in BODY_METHODS:
        headers["Content-Length"] = str(len(data))
    target = base_path + request.rel_url.raw_path_qs  # what production would get
    job = Job(
        f"{isolated.image} (isolated replica)",
        Request(request.method, target, (), tuple(headers.items()), data, entity),
        hop.timeout_s,
    )
    counts = gw.forwarder.count(f"replica {isolated.image} port {isolated.port}", hop.route)
    try:
        answer = await gw.dispatch.contained(pool, job, entity, share)
    except ExecutorError as exc:
        counts.add("timeout" if exc.status == 504 else "failed")
        raise
    return replica_response(request.method, answer)


def replica_response(method: str, answer: Response) -> web.Response:
    """The app's status, headers (end-to-end ones) and body. aiohttp frames the body; the app's
    Content-Length stays only on a HEAD answer, where it tells the size of what a GET would get."""
    headers = end_to_end(CIMultiDict(answer.headers))
    if method != "HEAD" or answer.status in (204, 304):
        headers.popall("Content-Length", None)
    return web.Response(status=answer.status, headers=headers, body=answer.body)
