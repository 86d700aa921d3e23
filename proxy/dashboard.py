"""`GET /dashboard`: the live page for admins, served by the gateway itself (proxy/static: one HTML page, one
script, one style sheet; no outside host).

A browser cannot send a bearer header on a link, so it logs in once: the admin pastes a token into the
login form (`POST /dashboard/login`, never a URL), and gets a cookie that is HttpOnly, SameSite=Strict,
scoped to /dashboard and short-lived (`dashboard.session_ttl_s`, never past the token's own exp). The cookie
is a JWT of the gateway's own, signed with a key derived from the signing key (or, for public-key auth, one
the supervisor gives its workers), for this audience only: it is no bearer token anywhere else. The page
reads its figures from an event stream (`/dashboard/events`), sent every `dashboard.refresh_s`. Every
answer carries a strict Content-Security-Policy. Without a login, /dashboard is the login form and every
figure is refused (401, or 403 for a token that is not an admin's).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
import orjson
from aiohttp import web

from policy.errors import IsogateError
from policy.identity import identify
from proxy import admin
from proxy.auth import authenticate, verify
from proxy.errors import Forbidden, MissingToken
from proxy.gateway import GATEWAY, Gateway
from proxy.ingress import body_chunks

STATIC = Path(__file__).parent / "static"
ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css", "favicon.svg": "image/svg+xml"}
COOKIE = "isogate_dashboard"
AUDIENCE = "isogate-dashboard"
MAX_FORM_BYTES = 16 * 1024
# Scripts, styles and connections from the gateway only, nothing inline, no frames, forms post here only.
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Content-Type-Options": "nosniff",
    # Never to another site; same-origin keeps the login form's Origin header (no-referrer makes it "null").
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


# What /dashboard paths are when `dashboard.enabled` is false: the proxy's own view (set by create_app).
View = Callable[[web.Request], Awaitable[web.StreamResponse]]
FALLBACK: web.AppKey[View] = web.AppKey("dashboard_fallback")


class TooManyViewers(IsogateError):
    status, code, charged = 429, "too_many_viewers", False


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/dashboard", page)
    router.add_post("/dashboard/login", login)
    router.add_post("/dashboard/logout", logout)
    router.add_get("/dashboard/events", events)
    router.add_get("/dashboard/{asset}", asset)


def session_key(gw: Gateway) -> bytes:
    """The cookie's signing key: derived from the token signing key (never that key itself, which it
    cannot stand in for). For public-key auth the gateway holds no secret: the gateway's own key then,
    which the supervisor gives each of its workers (a login made at one worker holds at the others)."""
    material = gw.config.auth.secret_key or gw.dashboard_key
    return hmac.new(material.encode(), b"isogate dashboard session v1", hashlib.sha256).digest()


def viewer(request: web.Request) -> tuple[str, float] | None:
    """(entity, expiry) of a valid dashboard cookie, or None."""
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return None
    try:
        claims = jwt.decode(
            cookie,
            session_key(request.app[GATEWAY]),
            algorithms=["HS256"],
            audience=AUDIENCE,
            options={"require": ["exp", "sub", "aud"]},
        )
    except jwt.InvalidTokenError:
        return None
    return str(claims["sub"]), float(claims["exp"])


def _html(name: str, status: int = 200, message: str = "") -> web.Response:
    text = (STATIC / name).read_text(encoding="utf-8").replace("{message}", html.escape(message))
    return web.Response(text=text, status=status, content_type="text/html", headers=HEADERS)


def _enabled(request: web.Request) -> bool:
    return request.app[GATEWAY].config.dashboard.enabled


async def page(request: web.Request) -> web.StreamResponse:
    if not _enabled(request):
        return await request.app[FALLBACK](request)
    if viewer(request) is None:  # the login form (a refused login answers 401 or 403 with it)
        return _html("login.html")
    return _html("dashboard.html")


async def login(request: web.Request) -> web.StreamResponse:
    """The pasted token, checked as any bearer token is (signature, exp, audience, issuer) and for the
    admin claim: 303 to the page with the cookie, or the login form again with 401 or 403."""
    if not _enabled(request):
        return await request.app[FALLBACK](request)
    gw = request.app[GATEWAY]
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:  # a form posted from another site
        raise Forbidden("a dashboard login comes from the dashboard's own page")
    form = bytearray()
    async for chunk in body_chunks(request, MAX_FORM_BYTES, gw.config.server):
        form += chunk
    token = parse_qs(form.decode("utf-8", "replace")).get("token", [""])[0].strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    auth = gw.config.auth
    if not token:
        return _html("login.html", 401, "Paste an admin token.")
    try:
        if auth.jwks_url:
            await gw.jwks.prepare(token, auth)
        claims = verify(token, auth, gw.jwks.key)
    except IsogateError as exc:
        return _html("login.html", exc.status, f"That token was refused: {exc.detail}.")
    caller = identify(claims, request.remote or "unknown", False, auth.anonymous_ipv6_prefix)
    if not caller.is_admin:
        return _html("login.html", 403, "That token is valid, but not an admin's.")
    expires = time.time() + gw.config.dashboard.session_ttl_s
    if isinstance(exp := claims.get("exp"), int | float):
        expires = min(expires, float(exp))
    session = {"sub": caller.entity_id, "exp": int(expires), "aud": AUDIENCE}
    cookie = jwt.encode(session, session_key(gw), "HS256")
    response = web.Response(status=303, headers={**HEADERS, "Location": "/dashboard"})
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=max(0, int(expires - time.time())),
        path="/dashboard",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    if not _enabled(request):
        return await request.app[FALLBACK](request)
    response = web.Response(status=303, headers={**HEADERS, "Location": "/dashboard"})
    response.del_cookie(COOKIE, path="/dashboard")
    return response


async def asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["asset"]
    if not _enabled(request) or name not in ASSETS:
        return await request.app[FALLBACK](request)
    body = (STATIC / name).read_bytes()
    return web.Response(body=body, content_type=ASSETS[name], headers=HEADERS)


async def events(request: web.Request) -> web.StreamResponse:
    """The page's figures as server-sent events, every `dashboard.refresh_s`, until the login expires
    (an `expired` event), the page goes, or the gateway stops."""
    if not _enabled(request):
        return await request.app[FALLBACK](request)
    gw = request.app[GATEWAY]
    seen = viewer(request)
    if seen is None:
        _bearer_admin(request)
        seen = ("bearer", float("inf"))
    viewers = gw.viewers
    if len(viewers) >= gw.config.dashboard.max_viewers:
        raise TooManyViewers(f"{len(viewers)} dashboards are open (dashboard.max_viewers)", retry_after=5)
    response = web.StreamResponse(headers={**HEADERS, "Content-Type": "text/event-stream"})
    await response.prepare(request)
    done = asyncio.current_task()
    assert done is not None
    viewers.add(done)
    try:
        while time.time() < seen[1]:
            await response.write(b"data: " + orjson.dumps(snapshot(request.app, gw)) + b"\n\n")
            await asyncio.sleep(gw.config.dashboard.refresh_s)
        await response.write(b"event: expired\ndata: {}\n\n")
    except ConnectionError:  # the page went
        pass
    finally:
        viewers.discard(done)
    return response


def _bearer_admin(request: web.Request) -> None:
    """The event stream also answers an admin's bearer header (curl, a script)."""
    header = request.headers.get("Authorization")
    if header is None:
        raise MissingToken("log in at /dashboard, or send Authorization: Bearer <admin token>")
    gw = request.app[GATEWAY]
    caller = authenticate(header, request.remote or "unknown", gw.config.auth, keys=gw.jwks.key)
    if not caller.is_admin:
        raise Forbidden("the dashboard needs a token with role: admin")


def snapshot(app: web.Application, gw: Gateway) -> dict[str, object]:
    figures = admin.figures(app)
    problems, degraded = admin.health(gw)
    entities = figures.get("entities")
    top = entities["top"] if isinstance(entities, dict) else []
    return {
        "at": round(time.time(), 3),
        "health": {"status": "degraded" if problems or degraded else "ok", "problems": problems + degraded},
        "stats": figures,
        **gw.watch.status(top),
    }
