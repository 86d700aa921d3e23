"""Errors raised by the HTTP front itself (authentication, authorisation, request size)."""

from __future__ import annotations

from policy.errors import IsogateError


class Unauthorized(IsogateError):
    status = 401
    code = "invalid_token"


class MissingToken(Unauthorized):
    code = "missing_token"


class Forbidden(IsogateError):
    status = 403
    code = "forbidden"


class PayloadTooLarge(IsogateError):
    status = 413
    code = "payload_too_large"
