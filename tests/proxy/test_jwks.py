"""The API's own identity provider: tokens verified under its JWKS (a real key server on 127.0.0.1), its
claims mapped to the gateway's role and trust, a rotation fetched once, a flood of unknown `kid`s costing
at most one fetch an interval, and the keys held serving on while the IdP does not answer."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import Gateway
from policy.identity import claim_matches, mapped_claims
from proxy.gateway import GATEWAY


class Idp:
    """A key server: the keys it publishes, and how often it was asked."""

    def __init__(self) -> None:
        self.private: dict[str, rsa.RSAPrivateKey] = {}
        self.published: list[str] = []
        self.asked = 0

    def new_key(self, kid: str) -> None:
        self.private[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.published.append(kid)

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid in self.published:
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private[kid].public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": keys}

    def token(self, kid: str, sub: str = "alice", **claims: Any) -> dict[str, str]:
        payload = {"sub": sub, "exp": int(time.time()) + 300, **claims}
        signed = jwt.encode(payload, self.private[kid], algorithm="RS256", headers={"kid": kid})
        return {"Authorization": f"Bearer {signed}"}


@pytest.fixture
async def idp() -> AsyncIterator[tuple[Idp, TestServer]]:
    provider = Idp()
    provider.new_key("k1")

    async def certs(request: web.Request) -> web.Response:
        provider.asked += 1
        return web.json_response(provider.jwks())

    app = web.Application()
    app.router.add_get("/realms/shop/certs", certs)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield provider, server
    await server.close()


def config(server: TestServer, **auth: Any) -> dict[str, Any]:
    return {
        "auth": {
            "algorithms": ["RS256"],
            "jwks_url": f"http://127.0.0.1:{server.port}/realms/shop/certs",
            "jwks_min_fetch_interval_s": 1,
            "admin_claim": "realm_access.roles=isogate-admin",
            "trusted_claim": "scope=api.trusted",
            **auth,
        },
        "routes": [{"path": "/echo", "handler": "echo"}],
    }


async def test_a_token_from_the_idp_is_accepted_with_its_mapped_role_and_trust(
    gateway: Gateway, idp: tuple[Idp, TestServer]
) -> None:
    provider, server = idp
    client = await gateway(config(server))
    admin = provider.token("k1", "ops", realm_access={"roles": ["offline_access", "isogate-admin"]})
    assert (await client.get("/stats", headers=admin)).status == 200
    user = provider.token("k1", "alice", scope="openid api.trusted", role="admin")  # role: not the IdP's way
    assert (await client.get("/echo", headers=user)).status == 200
    assert (await client.get("/stats", headers=user)).status == 403
    assert provider.asked == 1  # fetched once, then held


async def test_a_rotated_key_is_fetched_once_and_an_unknown_kid_flood_costs_one_fetch(
    gateway: Gateway, idp: tuple[Idp, TestServer]
) -> None:
    provider, server = idp
    client = await gateway(config(server))
    assert (await client.get("/echo", headers=provider.token("k1"))).status == 200
    await asyncio.sleep(1.1)  # jwks_min_fetch_interval_s
    provider.new_key("k2")
    provider.published = ["k2"]  # the IdP rotated
    for _ in range(5):
        assert (await client.get("/echo", headers=provider.token("k2"))).status == 200
    assert provider.asked == 2
    await asyncio.sleep(1.1)
    forged = [
        {
            "Authorization": "Bearer "
            + jwt.encode({"sub": "x"}, "k" * 32, algorithm="HS256", headers={"kid": f"f{i}"})
        }
        for i in range(50)
    ]
    statuses = await asyncio.gather(*(client.get("/echo", headers=h) for h in forged))
    assert {r.status for r in statuses} == {401}
    assert provider.asked == 3  # fifty unknown kids: one fetch


async def test_the_keys_held_serve_while_the_idp_does_not_answer(
    gateway: Gateway, idp: tuple[Idp, TestServer]
) -> None:
    provider, server = idp
    client = await gateway(config(server, jwks_refresh_s=1))
    assert (await client.get("/echo", headers=provider.token("k1"))).status == 200
    await server.close()  # the IdP is down
    await asyncio.sleep(1.1)  # the keys are due a refresh, which fails
    assert (await client.get("/echo", headers=provider.token("k1", "bob"))).status == 200
    jwks = client.app[GATEWAY].jwks.status()
    assert jwks["keys"] == ["k1"] and jwks["error"]


@pytest.mark.parametrize(
    ("claims", "spec", "matches"),
    [
        ({"realm_access": {"roles": ["a", "isogate-admin"]}}, "realm_access.roles=isogate-admin", True),
        ({"scope": "openid api.trusted email"}, "scope=api.trusted", True),
        ({"scope": "openid api.trusted.read"}, "scope=api.trusted", False),
        ({"groups": "admins"}, "groups=admins", True),
        ({"realm_access": "admin"}, "realm_access.roles=admin", False),
        ({"email_verified": True}, "email_verified=True", True),
        ({}, "role=admin", False),
    ],
)
def test_claim_specs(claims: dict[str, Any], spec: str, matches: bool) -> None:
    assert claim_matches(claims, spec) is matches


def test_mapped_claims_never_take_role_or_trust_as_sent() -> None:
    sent = {"sub": "a", "role": "admin", "trust": "trusted", "scope": "openid"}
    assert mapped_claims(sent, "groups=ops", "scope=api.trusted", "scope=api.untrusted") == {
        "sub": "a",
        "scope": "openid",
    }
