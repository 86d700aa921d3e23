"""Every way a bearer token can be bad gets 401 with a reason, and never falls back to anonymous."""

import base64
import time
from typing import Any

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import BASE, SECRET, Gateway, bearer, make_config, token
from proxy.auth import TokenCache, verify

ROUTES = [{"path": "/echo", "handler": "echo"}]
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PUBLIC_PEM = (
    RSA_KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()


def unsigned(claims: dict[str, object], alg: str = "none") -> str:
    return f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(claims)}."


NOW = int(time.time())
BAD_TOKENS = {
    "alg none": (unsigned({"sub": "mallory"}), "algorithm is not allowed"),
    "alg None": (unsigned({"sub": "mallory"}, "None"), "algorithm is not allowed"),
    "expired": (token(exp=NOW - 60), "expired"),
    "not yet valid": (token(nbf=NOW + 600), "not yet valid"),
    "wrong key": (token(key="another-secret-of-sufficient-length-123456"), "signature does not verify"),
    "tampered payload": (
        ".".join([token().split(".")[0], b64({"sub": "root"}), token().split(".")[2]]),
        "signature does not verify",
    ),
    "malformed": ("not-a-jwt", "malformed"),
    "garbage segments": ("a.b.c", "malformed"),
    "RS256 when HS256 is configured": (
        jwt.encode({"sub": "rs"}, RSA_KEY, algorithm="RS256"),
        "algorithm is not allowed",
    ),
    "no sub": (jwt.encode({"exp": NOW + 60}, SECRET, algorithm="HS256"), "lacks a required claim"),
    "bad trust claim": (token(trust="root"), "claim 'trust'"),
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
async def test_bad_tokens_get_401_with_a_reason(gateway: Gateway, case: str) -> None:
    client = await gateway({"routes": ROUTES})
    bad, reason = BAD_TOKENS[case]
    response = await client.get("/echo", headers={"Authorization": f"Bearer {bad}"})
    body = await response.json()
    assert response.status == 401 and body["error"] == "invalid_token"
    assert reason in body["detail"]
    assert bad not in body["detail"] and SECRET not in await response.text()


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "Token abc", ""])
async def test_malformed_authorization_headers_get_401(gateway: Gateway, header: str) -> None:
    client = await gateway({"routes": ROUTES})
    response = await client.get("/echo", headers={"Authorization": header})
    assert response.status == 401


async def test_valid_token_names_the_entity_and_no_token_is_the_client_ip(gateway: Gateway) -> None:
    client = await gateway({"routes": ROUTES})
    named = await client.get("/echo", headers={"Authorization": f"Bearer {token('carol')}"})
    assert (await named.json())["entity"] == "carol"
    anonymous = await client.get("/echo")
    assert (await anonymous.json())["entity"] == "127.0.0.1"


async def test_algorithm_confusion_with_a_public_key_is_rejected(gateway: Gateway) -> None:
    config = {"routes": ROUTES, "auth": {"algorithms": ["RS256"], "public_key": RSA_PUBLIC_PEM}}
    client = await gateway(config)
    good = jwt.encode({"sub": "rsa-user", "exp": int(time.time()) + 60}, RSA_KEY, algorithm="RS256")
    assert (await (await client.get("/echo", headers={"Authorization": f"Bearer {good}"})).json())[
        "entity"
    ] == "rsa-user"
    # The classic attack: sign HS256 using the public key as the HMAC secret.
    header = b64({"alg": "HS256", "typ": "JWT"})
    payload = b64({"sub": "attacker"})
    import hashlib
    import hmac

    mac = hmac.new(RSA_PUBLIC_PEM.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    forged = f"{header}.{payload}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    response = await client.get("/echo", headers={"Authorization": f"Bearer {forged}"})
    assert response.status == 401


async def test_audience_and_issuer_are_checked_when_configured(gateway: Gateway) -> None:
    client = await gateway({"routes": ROUTES, "auth": {"audience": "isogate", "issuer": "idp"}})
    for claims, status in [
        ({"aud": "isogate", "iss": "idp"}, 200),
        ({"aud": "other", "iss": "idp"}, 401),
        ({"aud": "isogate", "iss": "evil"}, 401),
    ]:
        response = await client.get("/echo", headers={"Authorization": f"Bearer {token(**claims)}"})
        assert response.status == status, claims


async def test_refused_tokens_are_the_gateways_refusals_not_the_callers_failures(gateway: Gateway) -> None:
    """A user whose token ran out, a client before it logs in, a token that does not verify: 401, the
    gateway's own refusal (issue 23), which scoring never saw; not a failure in the address's failure_rate."""
    routes = [*ROUTES, {"path": "/private", "handler": "echo", "auth": "required"}]
    client = await gateway({"routes": routes})
    expired = bearer("alice", exp=int(time.time()) - 3600)
    for _ in range(5):
        assert (await client.get("/echo", headers=expired)).status == 401
        assert (await client.get("/private")).status == 401
        assert (await client.get("/echo", headers={"Authorization": "Bearer forged"})).status == 401
    response = await client.get("/echo")
    assert "failure_rate" not in response.headers["X-Isogate-Factors"]


def signed(claims: dict[str, object]) -> dict[str, str]:
    return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}


async def test_a_token_without_exp_is_refused_even_an_admin_one(gateway: Gateway) -> None:
    client = await gateway({"routes": ROUTES})
    forever = await client.get("/stats", headers=signed({"sub": "ops", "role": "admin"}))
    body = await forever.json()
    assert forever.status == 401 and "required claim" in body["detail"]
    assert (await client.get("/echo", headers=signed({"sub": "u"}))).status == 401


async def test_token_lifetime_is_capped_from_iat_or_from_now(gateway: Gateway) -> None:
    client = await gateway({"routes": ROUTES, "auth": {"max_token_lifetime_s": 3600}})
    now = int(time.time())
    cases = [
        ({"sub": "u", "iat": now, "exp": now + 3600}, 200),
        ({"sub": "u", "iat": now, "exp": now + 3601}, 401),
        ({"sub": "u", "exp": now + 10 * 365 * 86400}, 401),  # no iat: judged from now
        ({"sub": "u", "iat": now - 7200, "exp": now + 60}, 401),  # issued for 2 h 1 min
    ]
    for claims, status in cases:
        response = await client.get("/echo", headers=signed(claims))
        assert response.status == status, claims
        if status == 401:
            assert "max_token_lifetime_s" in (await response.json())["detail"]


async def test_a_token_for_another_audience_is_refused_when_none_is_configured(gateway: Gateway) -> None:
    client = await gateway({"routes": ROUTES})
    claims = {"sub": "u", "exp": int(time.time()) + 60, "aud": "billing-service"}
    response = await client.get("/echo", headers=signed(claims))
    assert response.status == 401 and "audience" in (await response.json())["detail"]


@pytest.mark.parametrize(("leeway", "ok"), [(300, True), (301, False)])
def test_leeway_is_capped(leeway: int, ok: bool) -> None:
    from conftest import make_config
    from policy.errors import ConfigError

    if ok:
        assert make_config({"auth": {"leeway_s": leeway}}).auth.leeway_s == leeway
    else:
        with pytest.raises(ConfigError, match="auth.leeway_s: must be within 0..300"):
            make_config({"auth": {"leeway_s": leeway}})


# Verified tokens are cached by their exact text until exp: what the cache must never do.


def test_the_token_cache_holds_a_token_only_until_its_exp_and_only_under_the_same_settings() -> None:
    auth = make_config().auth
    cache = TokenCache(size=2)
    good = token("carol")
    claims = verify(good, auth)
    cache.put(good, claims, auth)
    assert cache.get(good, auth) is claims
    assert cache.get(good[:-2] + "xx", auth) is None  # any other text: verified afresh
    cache.put("stale", {"sub": "s", "exp": time.time() - 1}, auth)
    assert cache.get("stale", auth) is None  # past its exp: gone
    rotated = make_config({"auth": {"secret_key": "a-rotated-secret-of-sufficient-length-42"}}).auth
    assert cache.get(good, rotated) is None and cache.get(good, auth) is None  # new settings: emptied
    for name in ("a", "b", "c"):
        cache.put(name, {"sub": name, "exp": time.time() + 60}, auth)
    assert [cache.get(name, auth) is not None for name in ("a", "b", "c")] == [False, True, True]
    cache.put("forever", {"sub": "f"}, auth)  # no exp (require_exp off): never cached
    assert cache.get("forever", auth) is None


async def test_a_cached_token_is_refused_once_the_key_is_rotated(live: Any) -> None:
    client, files = await live({**BASE, "routes": [{"path": "/echo", "handler": "echo"}]})
    caller = {"Authorization": f"Bearer {token('dave')}"}
    assert (await client.get("/echo", headers=caller)).status == 200
    assert (await client.get("/echo", headers=caller)).status == 200  # from the cache
    files.write({**BASE, "auth": {"secret_key": "a-rotated-secret-of-sufficient-length-42"}})
    admin = {"Authorization": f"Bearer {token('ops', role='admin')}"}  # the key that still serves
    status = (await client.post("/admin/reload", headers=admin)).status
    assert status in (200, 401)  # 401: the watcher applied the new key first
    refused = await client.get("/echo", headers=caller)
    assert refused.status == 401 and "signature" in (await refused.json())["detail"]
