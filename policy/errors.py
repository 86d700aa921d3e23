"""The exception tree: every error isogate answers with carries its HTTP status and a stable code."""

from __future__ import annotations


class IsogateError(Exception):
    """Base of every error the gateway turns into a JSON response."""

    status = 500
    code = "internal_error"
    retry_after: int | None = None  # seconds, sent as Retry-After: the refusal is about load, not the request
    # Whether, with a failure status, it is the caller's failure (its failure_rate): false for the gateway's
    # own refusals (no token, no capacity, no isolated target), which say nothing of what the caller sent.
    charged = True

    def __init__(self, detail: str = "", *, retry_after: int | None = None) -> None:
        super().__init__(detail or self.code)
        self.detail = detail or self.code
        if retry_after is not None:
            self.retry_after = retry_after


class InvalidClaims(IsogateError):
    """A verified token whose claims the gateway cannot use (policy.identity); compiled modules do not
    define errors: a compiled class would not see its class attributes over a Python base's."""

    status = 401
    code = "invalid_token"
    charged = False


class ConfigError(IsogateError):
    """A config value is missing, unknown or invalid; `path` names the key (e.g. `risk.weights.x`)."""

    code = "invalid_config"

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


class Invalid(ValueError):
    """Raised by a config value type's validation; the parser prefixes the key's full path."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class NotFound(IsogateError):
    status = 404
    code = "not_found"


class InvalidPath(IsogateError):
    """A path that could be read two ways (dot segments, empty segments, encoded separators)."""

    status = 400
    code = "invalid_path"


class MethodNotAllowed(IsogateError):
    status = 405
    code = "method_not_allowed"

    def __init__(self, method: str, allowed: tuple[str, ...]) -> None:
        super().__init__(f"{method} is not allowed here; allowed: {', '.join(allowed)}")
        self.allowed = allowed


class IpDenied(IsogateError):
    status = 403
    code = "ip_denied"


class RiskBlocked(IsogateError):
    status = 403
    code = "risk_blocked"
