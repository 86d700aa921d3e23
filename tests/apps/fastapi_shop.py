"""A small FastAPI app with a lifespan, served unchanged by isogate in the tests (thread and container)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, File, Form, Request, Response, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.started = "yes"  # lifespan startup ran before the first request
    yield


app = FastAPI(lifespan=lifespan)


@app.get("/items/{n}")
async def item(n: int, request: Request, q: str | None = None) -> dict[str, object]:
    url = str(request.url_for("item", n=n))
    return {"n": n, "q": q, "root": request.scope["root_path"], "started": app.state.started, "url": url}


@app.post("/form")
async def form(a: Annotated[str, Form()], b: Annotated[str, Form()]) -> dict[str, str]:
    return {"a": a, "b": b}


@app.post("/upload")
async def upload(file: Annotated[UploadFile, File()]) -> dict[str, object]:
    return {"name": file.filename, "size": len(await file.read())}


@app.get("/boom")
async def boom() -> dict[str, str]:
    raise RuntimeError("a view that raises")


@app.get("/stream")
async def stream() -> StreamingResponse:
    async def lines() -> AsyncIterator[bytes]:
        for i in range(1000):
            yield f"line {i}\n".encode()

    return StreamingResponse(lines(), media_type="text/plain")


@app.get("/cookies")
async def cookies() -> Response:
    response = JSONResponse({"ok": True})
    response.set_cookie("a", "1")
    response.set_cookie("b", "2")
    return response
