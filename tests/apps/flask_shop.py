"""A small Flask app, served unchanged by isogate in the tests (thread and container)."""

from flask import Flask, Response, jsonify, request, url_for

app = Flask(__name__)


@app.get("/items/<int:n>")
def item(n: int) -> Response:
    return jsonify(n=n, q=request.args.get("q"), root=request.script_root, url=url_for("item", n=n))


@app.post("/form")
def form() -> Response:
    return jsonify(dict(request.form))


@app.post("/upload")
def upload() -> Response:
    sent = request.files["file"]
    return jsonify(name=sent.filename, size=len(sent.read()))


@app.get("/boom")
def boom() -> Response:
    raise RuntimeError("a view that raises")


@app.get("/stream")
def stream() -> Response:
    return Response((f"line {i}\n" for i in range(1000)), mimetype="text/plain")


@app.get("/cookies")
def cookies() -> Response:
    response = jsonify(ok=True)
    response.set_cookie("a", "1")
    response.set_cookie("b", "2")
    return response
