"""Existing apps served unchanged: a real Flask app (WSGI) and a real FastAPI app (ASGI, with a lifespan) in
tests/apps, behind a real gateway, mounted under a route prefix. Thread mode here; the container runs the
same bridge (tests/proxy/test_apps_docker.py compares the two byte for byte)."""

from __future__ import annotations

import aiohttp
import pytest
from appsenv import app_config

from conftest import Gateway, bearer

TRUSTED = bearer("ops", trust="trusted")


@pytest.mark.parametrize("mount", ["/flask", "/fast"])
async def test_an_app_answers_under_its_mount(gateway: Gateway, mount: str) -> None:
    client = await gateway(app_config())
    response = await client.get(f"{mount}/items/7?q=a%20b", headers=TRUSTED)
    assert response.status == 200, await response.text()
    body = await response.json()
    assert (body["n"], body["q"], body["root"]) == (7, "a b", mount)
    assert body["url"].endswith(f"{mount}/items/7")  # the app builds its URLs under the mount
    if mount == "/fast":
        assert body["started"] == "yes"  # lifespan startup ran
    form = await client.post(f"{mount}/form", data={"a": "1", "b": "é"}, headers=TRUSTED)
    assert (form.status, await form.json()) == (200, {"a": "1", "b": "é"})
    upload = aiohttp.FormData()
    upload.add_field("file", bytes(range(256)) * 40, filename="blob.bin")
    sent = await client.post(f"{mount}/upload", data=upload, headers=TRUSTED)
    assert (sent.status, await sent.json()) == (200, {"name": "blob.bin", "size": 10240})
    assert (await client.get(f"{mount}/nope", headers=TRUSTED)).status == 404
    boom = await client.get(f"{mount}/boom", headers=TRUSTED)
    assert boom.status == 500 and "handler_error" not in await boom.text()  # the app's own 500
    stream = await client.get(f"{mount}/stream", headers=TRUSTED)
    assert await stream.text() == "".join(f"line {i}\n" for i in range(1000))
    cookies = await client.get(f"{mount}/cookies", headers=TRUSTED)
    assert [c.split(";")[0] for c in cookies.headers.getall("Set-Cookie")] == ["a=1", "b=2"]


async def test_an_app_that_does_not_import_is_refused_with_its_error(gateway: Gateway) -> None:
    from policy.errors import ConfigError

    broken = app_config()
    broken["apps"]["flaskshop"]["target"] = "no_such_module:app"
    with pytest.raises(ConfigError, match="apps.flaskshop: could not import it"):
        await gateway(broken)
