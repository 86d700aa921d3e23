"""JSON transform: flattens a JSON document into dotted keys and counts its fields (400 on bad JSON)."""

from typing import Any

from handlers import Request, Response


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": [1]}} -> {"a.b.0": 1}; scalars keep their JSON type."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, item in items:
        flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def handle(request: Request) -> Response:
    try:
        document = request.json()
    except ValueError as exc:
        return Response.json({"error": "invalid_json", "detail": str(exc)}, status=400)
    flat = flatten(document)
    kinds: dict[str, int] = {}
    for value in flat.values():
        kinds[type(value).__name__] = kinds.get(type(value).__name__, 0) + 1
    return Response.json({"fields": len(flat), "kinds": kinds, "flat": flat})
