"""Authentication: verifies `Authorization: Bearer <JWT>` with pyjwt; a bad token is 401, never anonymous."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import jwt

from policy.config import AuthConfig
from policy.identity import Identity, identify, mapped_claims
from proxy.errors import Unauthorized

# pyjwt's errors, most specific first, mapped to messages that never quote the token.
_REASONS: tuple[tuple[type[jwt.InvalidTokenError], str], ...] = (
    (jwt.ExpiredSignatureError, "token has expired (exp)"),
    (jwt.ImmatureSignatureError, "token is not yet valid (nbf/iat)"),
    (jwt.InvalidAlgorithmError, "token algorithm is not allowed"),
    (jwt.InvalidSignatureError, "token signature does not verify"),
    (jwt.MissingRequiredClaimError, "token lacks a required claim (sub, exp)"),
    (jwt.InvalidAudienceError, "token audience does not match"),
    (jwt.InvalidIssuerError, "token issuer does not match"),
    (jwt.DecodeError, "token is malformed"),
)


def authenticate(
    authorization: str | None,
    ip: str,
    auth: AuthConfig,
    trusted_ip: bool = False,
    verified: TokenCache | None = None,
    keys: Keys | None = None,
) -> Identity:
    """The caller's identity: from a verified bearer token, or anonymous (the client IP) without one."""
    if authorization is None:
        return identify(None, ip, trusted_ip, auth.anonymous_ipv6_prefix)
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Authorization must be 'Bearer <token>'")
    claims = verified.get(token, auth) if verified is not None else None
    if claims is None:
        claims = verify(token, auth, keys)
        if verified is not None:
            verified.put(token, claims, auth)
    return identify(claims, ip, trusted_ip, auth.anonymous_ipv6_prefix)


class TokenCache:
    """Claims of tokens already verified, by the token's exact text (signature included: a token changed
    in any byte is verified afresh), until its `exp`. Bounded (least recently used go first), and emptied
    when the auth settings change (a rotated key, another audience): nothing verified under the old ones
    is believed under the new."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._auth: AuthConfig | None = None
        self._claims: OrderedDict[str, tuple[float, dict[str, object]]] = OrderedDict()

    def _under(self, auth: AuthConfig) -> None:
        if auth is not self._auth:
            if auth != self._auth:
                self._claims.clear()
            self._auth = auth

    def get(self, token: str, auth: AuthConfig) -> dict[str, object] | None:
        self._under(auth)
        found = self._claims.get(token)
        if found is None:
            return None
        if time.time() >= found[0]:
            del self._claims[token]
            return None
        self._claims.move_to_end(token)
        return found[1]

    def put(self, token: str, claims: dict[str, object], auth: AuthConfig) -> None:
        """Keep `claims`, which `token` was verified to carry under `auth`."""
        self._under(auth)
        exp = claims.get("exp")
        if not isinstance(exp, int | float):
            return  # valid forever would be cached forever: verified each time instead
        self._claims[token] = (float(exp), claims)
        while len(self._claims) > self.size:
            self._claims.popitem(last=False)


def verify(token: str, auth: AuthConfig, keys: Keys | None = None) -> dict[str, object]:
    """The token's claims if its signature, algorithm, exp/nbf, audience and issuer all check out; with
    `auth.jwks_url`, under the key of the identity provider's that its `kid` names (`keys`)."""
    key: Any = auth.public_key or auth.secret_key
    if auth.jwks_url:
        key = _jwks_key(token, keys)
    try:
        claims: dict[str, object] = jwt.decode(
            token,
            key,
            algorithms=list(auth.algorithms),  # the allow-list: `alg: none` and foreign algs fail here
            audience=auth.audience or None,
            issuer=auth.issuer or None,
            leeway=auth.leeway_s,
            # A token naming an audience is refused unless it is ours: never ignored.
            options={"require": ["sub", "exp"] if auth.require_exp else ["sub"], "verify_aud": True},
        )
    except jwt.InvalidTokenError as exc:
        reason = next((text for kind, text in _REASONS if isinstance(exc, kind)), "token is invalid")
        raise Unauthorized(reason) from None
    check_lifetime(claims, auth, now=time.time())
    if (auth.admin_claim, auth.trusted_claim, auth.untrusted_claim) != DEFAULT_CLAIMS:
        return mapped_claims(claims, auth.admin_claim, auth.trusted_claim, auth.untrusted_claim)
    return claims


DEFAULT_CLAIMS = ("role=admin", "trust=trusted", "trust=untrusted")  # the gateway's own tokens' claims
Keys = Callable[[str], Any]  # a key id -> the key (None: not held)


def _jwks_key(token: str, keys: Keys | None) -> Any:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.DecodeError:
        raise Unauthorized("token is malformed") from None
    key = keys(kid) if keys is not None and isinstance(kid, str) else None
    if key is None:  # a key the IdP does not publish (or not yet fetched, within the fetch interval)
        raise Unauthorized("token names a key (kid) the identity provider does not publish")
    return key


def check_lifetime(claims: dict[str, object], auth: AuthConfig, now: float) -> None:
    """A token may live at most auth.max_token_lifetime_s: from `iat` when it has one, else from now."""
    exp, iat = claims.get("exp"), claims.get("iat")
    if not auth.max_token_lifetime_s or not isinstance(exp, int | float):
        return
    start = iat if isinstance(iat, int | float) else now
    if exp - start > auth.max_token_lifetime_s + auth.leeway_s:
        raise Unauthorized(
            f"token lifetime is over auth.max_token_lifetime_s ({auth.max_token_lifetime_s} s)"
        )
