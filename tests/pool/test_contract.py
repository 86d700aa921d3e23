"""The handler contract: Request helpers, Response validation, return-value normalisation."""

import pytest

from handlers import Request, Response, to_response


def test_request_helpers() -> None:
    request = Request("POST", "/p", (("a", "1"), ("a", "2")), (("x-k", "v"),), b'{"n": 1}', "e")
    assert request.arg("a") == "1" and request.arg("b", "d") == "d"
    assert request.header("X-K") == "v" and request.header("y") is None
    assert request.json() == {"n": 1}
    with pytest.raises(ValueError):
        Request("POST", "/p", body=b"{nope").json()


@pytest.mark.parametrize(
    ("value", "status", "ctype", "body"),
    [
        ({"a": "é"}, 200, "application/json", '{"a":"é"}'.encode()),
        ([1, 2], 200, "application/json", b"[1,2]"),
        ("hi", 200, "text/plain; charset=utf-8", b"hi"),
        (b"\x00\xff", 200, "application/octet-stream", b"\x00\xff"),
        (Response(201, {"Content-Type": "a/b"}, b"x"), 201, "a/b", b"x"),
    ],
)
def test_to_response(value: object, status: int, ctype: str, body: bytes) -> None:
    response = to_response(value)
    assert (response.status, dict(response.headers)["Content-Type"], response.body) == (status, ctype, body)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"status": 101},
        {"status": 600},
        {"status": "200"},
        {"body": "text"},
        {"headers": (("X-A", "1\r\nX-B: 2"),)},
        {"headers": (("Bad Name", "1"),)},
        {"headers": (("X-A",),)},
    ],
)
def test_invalid_responses_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Response(**kwargs)  # type: ignore[arg-type]


def test_other_return_types_are_refused() -> None:
    with pytest.raises(TypeError, match="int"):
        to_response(42)
