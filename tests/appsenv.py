"""The test apps (tests/apps: a real Flask app and a real FastAPI app) as a gateway config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

APPS = str(Path(__file__).resolve().parent / "apps")


def app_config(mode: str = "thread", **extra: Any) -> dict[str, Any]:
    return {
        "execution_mode": mode,
        "apps": {
            "flaskshop": {"source": APPS, "target": "flask_shop:app"},
            "fastshop": {"source": APPS, "target": "fastapi_shop:app"},
        },
        "routes": [
            {"path": "/flask/*", "app": "flaskshop", "methods": ["GET", "POST"]},
            {"path": "/fast/*", "app": "fastshop", "methods": ["GET", "POST"]},
        ],
        **extra,
    }
