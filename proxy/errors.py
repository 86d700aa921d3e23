"""Errors raised by the HTTP front itself (authentication, authorisation, request size)."""

from __future__ import annotations

from policy.errors import IsogateError


class Unauthorized(IsogateError):
    status = 401
    code = "invalid_token"
    charged = False


class MissingToken(Unauthorized):
    code = "missing_token"


class Forbidden(IsogateError):
    status = 403
    code = "forbidden"


class PayloadTooLarge(IsogateError):
    status = 413
    code = "payload_too_large"


class BodyTimeout(IsogateError):
    """The body did not arrive within `server.body_timeout_s`, or slower than `server.min_body_rate`."""

    status = 408
    code = "body_timeout"


class ClientClosedRequest(IsogateError):
    """The client went away before its request was read (nginx's 499): counted, never charged as a failure."""

    status = 499
    code = "client_closed_request"


class RateLimited(IsogateError):
    """A rate limit of `rate_limits` is exceeded: not the caller's failure (its failure_rate)."""

    status = 429
    code = "rate_limited"
    charged = False
