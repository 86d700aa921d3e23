"""Labelled HTTP records (`{"method", "uri", "headers", "body", "expect_attack"}`, one JSON object a line)
as the pipeline's `Incoming` values: the same scoring code then replays them, with no HTTP."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from policy.incoming import Incoming


def to_incoming(record: Mapping[str, Any], client_ip: str = "192.0.2.10") -> Incoming:
    uri = str(record["uri"])
    parts = urlsplit(uri)
    path = unquote(parts.path or "/", encoding="latin-1") or "/"
    headers = tuple((str(k).lower(), str(v)) for k, v in (record.get("headers") or {}).items())
    body = record.get("body") or ""
    return Incoming(
        method=str(record.get("method", "GET")).upper(),
        path=path if path.startswith("/") else "/" + path,
        target=uri if uri.startswith("/") else parts.path + (f"?{parts.query}" if parts.query else ""),
        query=tuple(parse_qsl(parts.query, keep_blank_values=True, encoding="latin-1")),
        headers=headers,
        body=body.encode("latin-1", "replace") if isinstance(body, str) else bytes(body),
        client_ip=client_ip,
    )
