"""The security-headers middleware on a small app: every kind of HTTP response, and none of it on
a WebSocket. The gateway's own responses are checked in tests/integration/test_security.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI, HTTPException, WebSocket
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from chat_gateway.headers import (
    CONTENT_SECURITY_POLICY,
    PERMISSIONS_POLICY,
    STRICT_TRANSPORT_SECURITY,
    SecurityHeaders,
)
from chat_runtime.settings import Environment

EXPECTED = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "permissions-policy": PERMISSIONS_POLICY,
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "x-permitted-cross-domain-policies": "none",
}


def _app(app_env: Environment) -> FastAPI:
    app = FastAPI()
    app.add_middleware(SecurityHeaders, app_env=app_env)

    @app.get("/page")
    async def page() -> PlainTextResponse:
        # A route's own value of one of ours is replaced, not sent twice.
        return PlainTextResponse(
            "page", headers={"Cache-Control": "no-cache", "X-Frame-Options": "SAMEORIGIN"}
        )

    @app.get("/api/thing")
    async def thing() -> JSONResponse:
        return JSONResponse({"email": "ada@example.com"}, headers={"Cache-Control": "max-age=60"})

    @app.get("/api/refused")
    async def refused() -> None:
        raise HTTPException(status_code=403, detail="no")

    @app.get("/broken")
    async def broken() -> None:
        raise RuntimeError("a bug")

    @app.websocket("/ws")
    async def socket(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hello")
        await websocket.close()

    return app


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(_app("test"), raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize(
    ("path", "status"),
    [("/page", 200), ("/api/thing", 200), ("/api/refused", 403), ("/nowhere", 404)],
)
def test_every_response_carries_each_header_once(
    client: TestClient, path: str, status: int
) -> None:
    response = client.get(path)
    assert response.status_code == status
    for name, value in EXPECTED.items():
        assert response.headers.get_list(name) == [value], name
    assert "strict-transport-security" not in response.headers  # not production


def test_an_unhandled_error_still_carries_them(client: TestClient) -> None:
    response = client.get("/broken")
    assert response.status_code == 500 and response.text == "Internal Server Error"
    for name, value in EXPECTED.items():
        assert response.headers.get_list(name) == [value], name


def test_api_answers_are_not_stored_and_pages_keep_their_cache_control(
    client: TestClient,
) -> None:
    assert client.get("/api/thing").headers.get_list("cache-control") == ["no-store"]
    assert client.get("/api/refused").headers["cache-control"] == "no-store"
    assert client.get("/page").headers["cache-control"] == "no-cache"


def test_production_adds_strict_transport_security() -> None:
    with TestClient(_app("production")) as client:
        response = client.get("/page")
    assert response.headers["strict-transport-security"] == STRICT_TRANSPORT_SECURITY
    assert STRICT_TRANSPORT_SECURITY.startswith("max-age=31536000")


def test_the_csp_forbids_framing_and_allows_only_the_pages_own_origin() -> None:
    directives = dict(d.split(" ", 1) for d in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["frame-ancestors"] == "'none'"
    assert directives["base-uri"] == "'none'"
    assert directives["form-action"] == "'self'"
    assert directives["script-src"] == "'self'" and directives["connect-src"] == "'self'"


async def test_a_websocket_is_handed_the_servers_own_send() -> None:
    """No wrapper per frame: the socket's messages go straight to the server."""
    seen: list[Send] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(send)

    async def send(message: Message) -> None:
        raise AssertionError("not called")

    async def receive() -> Message:
        raise AssertionError("not called")

    await SecurityHeaders(inner, app_env="test")({"type": "websocket"}, receive, send)
    assert seen == [send]


def test_a_websocket_still_works_through_it(client: TestClient) -> None:
    with client.websocket_connect("/ws") as socket:
        assert socket.receive_text() == "hello"
