"""The API's own identity provider: its signing keys, from its JSON Web Key Set (`auth.jwks_url`), by `kid`.

Fetched before a token that needs them is verified (in the one middleware, off the verify path): when a
token names a `kid` not held, or the keys are older than `auth.jwks_refresh_s`. At most one fetch runs at a
time, and at most one starts in `auth.jwks_min_fetch_interval_s`, however many unknown `kid`s come: a
forged `kid` cannot make the gateway hammer the IdP. An IdP that does not answer leaves the keys held in use.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
import jwt

from policy.config import AuthConfig

log = logging.getLogger("isogate.auth")
FETCH_TIMEOUT_S = 3.0
MAX_BYTES = 256 * 1024  # a key set is a few KB: more is not one
MAX_KEYS = 64


class Jwks:
    def __init__(self) -> None:
        self._url = ""
        self._keys: dict[str, Any] = {}  # kid -> the key, as pyjwt verifies with it
        self._fetched = float("-inf")  # monotonic: when the keys held were fetched
        self._attempted = float("-inf")  # when a fetch last started
        self._lock = asyncio.Lock()
        self.fetches = 0
        self.error: str | None = None  # why the last fetch failed, while the keys held serve on

    def key(self, kid: str) -> Any | None:
        return self._keys.get(kid)

    def status(self) -> dict[str, object]:
        return {"keys": sorted(self._keys), "fetches": self.fetches, "error": self.error}

    async def prepare(self, token: str, auth: AuthConfig) -> None:
        """Make sure the key `token` names is held, if a fetch may be made now."""
        if auth.jwks_url != self._url:  # a reload named another IdP: nothing of the old one is believed
            self._url, self._keys = auth.jwks_url, {}
            self._fetched = self._attempted = float("-inf")
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.DecodeError:
            return  # not a JWT: verify says so
        if self._wanted(kid, auth):
            async with self._lock:  # one fetch at a time: the others wait for it, then find the key
                if self._wanted(kid, auth):
                    await self._fetch(auth)

    def _wanted(self, kid: object, auth: AuthConfig) -> bool:
        now = time.monotonic()
        held = isinstance(kid, str) and kid in self._keys and now - self._fetched < auth.jwks_refresh_s
        return not held and now - self._attempted >= auth.jwks_min_fetch_interval_s

    async def _fetch(self, auth: AuthConfig) -> None:
        self._attempted = time.monotonic()
        self.fetches += 1
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)) as session,
                session.get(auth.jwks_url, allow_redirects=False) as response,
            ):
                response.raise_for_status()
                body = await response.content.read(MAX_BYTES + 1)
            if len(body) > MAX_BYTES:
                raise ValueError(f"over {MAX_BYTES} bytes")
            found = jwt.PyJWKSet.from_json(body.decode())
        except (aiohttp.ClientError, TimeoutError, ValueError, jwt.PyJWKSetError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"[:200]
            log.warning(
                "auth.jwks_url: cannot fetch the keys (%s); the %d held serve on", self.error, len(self._keys)
            )
            return
        self._keys = {k.key_id: k for k in found.keys[:MAX_KEYS] if k.key_id}
        self._fetched, self.error = time.monotonic(), None
        log.info("auth.jwks_url: %d keys fetched", len(self._keys))
