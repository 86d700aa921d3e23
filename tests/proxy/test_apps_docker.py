"""The same apps in a container: a real Flask app and a real FastAPI app (tests/apps, their packages in the
probe image from tests/requirements-apps.txt) give byte-identical status, headers (Date and the gateway's
own aside) and bodies in thread mode and in a warm container."""

from __future__ import annotations

from typing import Any

import pytest
from appsenv import app_config

from conftest import Gateway, bearer

pytestmark = pytest.mark.docker

TRUSTED = bearer("ops", trust="trusted")
BOUNDARY = "isogate-test-boundary"
UPLOAD = (
    (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="blob.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    + bytes(range(256)) * 40
    + f"\r\n--{BOUNDARY}--\r\n".encode()
)
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
REQUESTS: list[tuple[str, str, bytes, dict[str, str]]] = [
    ("GET", "/items/7?q=a%20b", b"", {}),
    ("POST", "/form", b"a=1&b=%C3%A9", FORM),
    ("POST", "/upload", UPLOAD, MULTIPART),
    ("GET", "/nope", b"", {}),
    ("GET", "/boom", b"", {}),
    ("GET", "/stream", b"", {}),
    ("GET", "/cookies", b"", {}),
]
NOT_THE_APPS = {"date", "server", "x-request-id"}


async def answers(client: Any, mount: str) -> list[tuple[int, list[tuple[str, str]], bytes]]:
    found = []
    for method, path, body, headers in REQUESTS:
        response = await client.request(
            method, mount + path, data=body, headers={**TRUSTED, **headers, "Host": "api.example"}
        )
        own = [(k, v) for k, v in response.headers.items() if k.lower() not in NOT_THE_APPS]
        found.append(
            (
                response.status,
                [(k, v) for k, v in own if not k.startswith("X-Isogate")],
                await response.read(),
            )
        )
    return found


@pytest.mark.parametrize("mount", ["/flask", "/fast"])
async def test_thread_and_container_answer_byte_for_byte_alike(
    gateway: Gateway, docker_settings: dict[str, Any], mount: str
) -> None:
    threads = await gateway(app_config("thread"))
    # Both apps are imported in every container (Flask, FastAPI, pydantic: ~70 MB under gVisor).
    containers = await gateway(app_config("docker", docker={**docker_settings, "memory_limit": "256m"}))
    in_threads, in_containers = await answers(threads, mount), await answers(containers, mount)
    assert [status for status, _, _ in in_threads] == [200, 200, 200, 404, 500, 200, 200]
    for request, thread, container in zip(REQUESTS, in_threads, in_containers, strict=True):
        assert thread == container, request[:2]
    response = await containers.get(f"{mount}/items/1", headers=TRUSTED)
    assert response.headers["X-Isogate-Mode"] == "docker"


async def test_a_handler_importing_a_third_party_package_runs_in_both_modes(
    gateway: Gateway, docker_settings: dict[str, Any]
) -> None:
    route = [{"path": "/escape", "handler": "third_party"}]
    for mode, extra in (("thread", {}), ("docker", {"docker": docker_settings})):
        client = await gateway({"execution_mode": mode, "routes": route, **extra})
        response = await client.get("/escape?text=%3Cb%3E", headers=TRUSTED)
        assert (response.status, await response.json()) == (200, {"escaped": "&lt;b&gt;"}), mode
        assert response.headers["X-Isogate-Mode"] == mode
