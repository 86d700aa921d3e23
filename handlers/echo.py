"""Echo: the request as the handler saw it (method, path, query, selected headers, body size)."""

from handlers import Request

SHOWN_HEADERS = ("accept", "content-type", "user-agent", "x-request-id")


def handle(request: Request) -> dict[str, object]:
    return {
        "method": request.method,
        "path": request.path,
        "query": dict(request.query),
        "headers": {name: value for name, value in request.headers if name in SHOWN_HEADERS},
        "body_bytes": len(request.body),
        "entity": request.entity_id,
    }
