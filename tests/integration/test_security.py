"""The hardened gateway, attacked through real requests against the five services."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import random
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from chat_contracts.base import UserRef
from chat_devtools.client import ChatClient
from chat_devtools.seed import TEST_JWT_SECRET, create_user, gateway_settings, token_for
from chat_devtools.stack import Stack, StackFactory
from tests.support.jwks import AUDIENCE, ISSUER, IdentityProvider, running_identity_provider

PASSWORD = "correct horse battery staple"
MESSAGES_PER_MINUTE = 5
MAX_SOCKETS = 3


@pytest.fixture(scope="module")
def idp() -> Iterator[IdentityProvider]:
    with running_identity_provider() as provider:
        yield provider


@pytest.fixture(scope="module")
def stack(stack_factory: StackFactory, idp: IdentityProvider) -> Stack:
    return stack_factory(
        OIDC_JWKS_URL=idp.jwks_url,
        OIDC_ISSUER=ISSUER,
        OIDC_AUDIENCE=AUDIENCE,
        MESSAGES_PER_MINUTE=str(MESSAGES_PER_MINUTE),
        MAX_SOCKETS_PER_USER=str(MAX_SOCKETS),
        LOGIN_MAX_FAILURES_PER_ACCOUNT="3",
        LOGIN_MAX_FAILURES_PER_IP="6",
    )


@pytest.fixture
async def user(database_url: str) -> UserRef:
    return await create_user(database_url, password=PASSWORD)


def client_from_own_address(stack: Stack) -> httpx.AsyncClient:
    """An HTTP client on a loopback address of its own: its own per-IP sign-in budget."""
    address = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=stack.gateway_url, transport=transport)


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with client_from_own_address(stack) as client:
        yield client


def origin(stack: Stack) -> str:
    return stack.gateway_url


async def login(
    http: httpx.AsyncClient, email: str, password: str, **headers: str
) -> httpx.Response:
    return await http.post(
        "/api/auth/login", json={"email": email, "password": password}, headers=headers
    )


async def open_socket(stack: Stack, headers: dict[str, str]) -> ClientConnection:
    return await websockets.connect(stack.ws_url, additional_headers=headers)


async def refused(stack: Stack, headers: dict[str, str]) -> int:
    with pytest.raises(websockets.InvalidStatus) as refusal:
        await open_socket(stack, headers)
    return refusal.value.response.status_code


async def closed_with(connection: ClientConnection, timeout: float) -> tuple[int | None, float]:
    """The close code the server sent, and how long it took to arrive."""
    started = time.monotonic()

    async def drain() -> None:
        while True:
            await asyncio.wait_for(connection.recv(), timeout)

    with pytest.raises(websockets.ConnectionClosed):
        await drain()
    return connection.close_code, time.monotonic() - started


# -- sign-in ---------------------------------------------------------------------------------


async def test_sign_in_sets_a_strict_http_only_cookie_that_authenticates(
    http: httpx.AsyncClient, user: UserRef, stack: Stack
) -> None:
    response = await login(http, user.email.upper(), PASSWORD)
    assert response.status_code == 200
    assert response.json()["email"] == user.email
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http here; Secure is set when served over https
    token = response.cookies["agentchat_token"]
    claims = jwt.decode(token, TEST_JWT_SECRET, algorithms=["HS256"], audience="agentchat")
    assert {"iss", "aud", "exp", "iat", "jti"} <= claims.keys()

    me = await http.get("/api/me")
    assert me.status_code == 200 and me.json()["id"] == str(user.user_id)
    page = await http.get("/", follow_redirects=False)
    assert page.status_code != 303  # signed in: no redirect to /login


async def test_signed_out_visitors_are_sent_to_the_login_page(http: httpx.AsyncClient) -> None:
    response = await http.get("/", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert (await http.get("/api/me")).status_code == 401


async def test_wrong_password_and_unknown_email_get_the_same_answer(
    http: httpx.AsyncClient, user: UserRef
) -> None:
    wrong = await login(http, user.email, "not the password")
    unknown = await login(http, "nobody@example.com", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"detail": "Incorrect email or password."}
    assert "set-cookie" not in wrong.headers


async def test_failed_sign_ins_are_rate_limited_per_account(
    http: httpx.AsyncClient, user: UserRef
) -> None:
    for _ in range(3):
        assert (await login(http, user.email, "wrong")).status_code == 401
    blocked = await login(http, user.email, PASSWORD)  # even the right password, for now
    assert blocked.status_code == 429
    assert blocked.json()["retry_after"] > 0 and int(blocked.headers["retry-after"]) > 0


async def test_failed_sign_ins_are_rate_limited_per_ip(
    http: httpx.AsyncClient, database_url: str
) -> None:
    for attempt in range(6):
        response = await login(http, f"nobody-{attempt}@example.com", "wrong")
        assert response.status_code == 401
    other = await create_user(database_url, password=PASSWORD)
    assert (await login(http, other.email, PASSWORD)).status_code == 429


async def test_a_disabled_user_cannot_sign_in(
    http: httpx.AsyncClient, user: UserRef, stack: Stack, database_url: str
) -> None:
    chatctl(stack, database_url, "user", "disable", "--email", user.email)
    assert (await login(http, user.email, PASSWORD)).status_code == 401


async def test_sign_in_from_a_foreign_page_is_refused(
    http: httpx.AsyncClient, user: UserRef
) -> None:
    response = await login(http, user.email, PASSWORD, Origin="https://evil.example")
    assert response.status_code == 403


# -- response headers (docs/security.md) ------------------------------------------------------

# What a browser must be told on every HTTP response, written out here rather than imported from
# chat_gateway.headers, so that a weakened value there fails this test.
SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}
CSP_DIRECTIVES = {
    "default-src": "'self'",
    "script-src": "'self'",
    "connect-src": "'self'",
    "object-src": "'none'",
    "frame-ancestors": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
}


def assert_security_headers(response: httpx.Response) -> None:
    what = f"{response.request.method} {response.request.url.path} ({response.status_code})"
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get_list(name) == [value], f"{name} on {what}"
    policy = response.headers.get_list("content-security-policy")
    assert len(policy) == 1, what
    directives = dict(d.strip().split(" ", 1) for d in policy[0].split(";"))
    assert CSP_DIRECTIVES.items() <= directives.items(), what
    permissions = response.headers["permissions-policy"]
    assert "camera=()" in permissions and "microphone=()" in permissions, what
    assert "geolocation=()" in permissions and "clipboard-write=(self)" in permissions, what
    assert "strict-transport-security" not in response.headers, what  # APP_ENV is not production


async def test_every_kind_of_response_carries_the_security_headers(
    http: httpx.AsyncClient, user: UserRef
) -> None:
    signed_out = [
        await http.get("/login"),
        await http.get("/", follow_redirects=False),  # 303 to /login
        await http.get("/no-such-page"),  # 404
        await http.get("/api/me"),  # 401
        await login(http, user.email, PASSWORD, Origin="https://evil.example"),  # 403
        await http.post("/api/auth/login", json={"email": user.email}),  # 422
    ]
    assert [r.status_code for r in signed_out] == [200, 303, 404, 401, 403, 422]
    assert (await login(http, user.email, PASSWORD)).status_code == 200
    page = await http.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    script = re.search(r'src="(/assets/[^"]+\.js)"', page.text)
    assert script is not None
    signed_in = [page, await http.get(script[1]), await http.get("/api/me")]
    assert [r.status_code for r in signed_in] == [200, 200, 200]
    for response in signed_out + signed_in:
        assert_security_headers(response)


async def test_api_answers_are_never_stored_and_the_pages_are_revalidated(
    http: httpx.AsyncClient, user: UserRef
) -> None:
    signed_in = await login(http, user.email, PASSWORD)
    me = await http.get("/api/me")
    timeline = await http.get(f"/api/messages/{uuid.uuid4()}/timeline")
    assert me.status_code == 200 and timeline.status_code == 404
    for response in (signed_in, me, timeline):
        assert response.headers.get_list("cache-control") == ["no-store"]
    assert (await http.get("/")).headers["cache-control"] == "no-cache"


# -- tokens ----------------------------------------------------------------------------------


def _forge(claims: dict[str, Any], key: Any, algorithm: str, **headers: Any) -> str:
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers or None)


def _hs256_with_public_key(claims: dict[str, Any], public_pem: bytes, kid: str) -> str:
    """The algorithm-confusion attack, built by hand (PyJWT refuses to make it)."""
    encode = jwt.utils.base64url_encode
    header = encode(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = encode(json.dumps(claims).encode())
    signature = hmac.new(public_pem, header + b"." + payload, hashlib.sha256).digest()
    return b".".join([header, payload, encode(signature)]).decode()


def _local_claims(user: UserRef, **overrides: Any) -> dict[str, Any]:
    claims = jwt.decode(token_for(user), options={"verify_signature": False})
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


def attacks(user: UserRef, idp: IdentityProvider) -> dict[str, str]:
    now = int(time.time())
    secret = TEST_JWT_SECRET
    good = token_for(user)
    header, payload, signature = good.split(".")
    tampered_payload = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(payload).replace(user.email.encode(), b"admin@example.com")
    ).decode()
    return {
        "alg none": _forge(_local_claims(user), None, "none"),
        "HS256 signed with the RS public key": _hs256_with_public_key(
            idp.claims(), idp.rsa_public_pem(), "rsa-1"
        ),
        "expired": _forge(_local_claims(user, exp=now - 10), secret, "HS256"),
        "nbf in the future": _forge(_local_claims(user, nbf=now + 3600), secret, "HS256"),
        "wrong iss": _forge(_local_claims(user, iss="someone-else"), secret, "HS256"),
        "wrong aud": _forge(_local_claims(user, aud="another-app"), secret, "HS256"),
        "missing exp": _forge(_local_claims(user, exp=None), secret, "HS256"),
        "tampered payload": f"{header}.{tampered_payload}.{signature}",
        "unknown kid": idp.token(kid="rsa-unknown"),
        "external, wrong iss": idp.token(iss="https://other-idp.example"),
        "external, wrong aud": idp.token(aud="someone-else"),
        "external, expired": idp.token(exp=now - 10),
        "RSA key used with another algorithm": idp.token(kind="rsa", alg="RS512"),
        "EC key under the RSA key's id": idp.token(kind="ec", kid="rsa-1", alg="ES256"),
    }


async def test_forged_and_invalid_tokens_are_refused_everywhere(
    stack: Stack, user: UserRef, idp: IdentityProvider, http: httpx.AsyncClient
) -> None:
    for name, token in attacks(user, idp).items():
        me = await http.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 401, name
        assert await refused(stack, {"Authorization": f"Bearer {token}"}) == 403, name
    # The genuine tokens work.
    for token in (token_for(user), idp.token("rsa"), idp.token("ec")):
        me = await http.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200


async def test_an_external_providers_user_can_chat(stack: Stack, idp: IdentityProvider) -> None:
    chat = await ChatClient.connect(stack.ws_url, idp.token("ec", sub="ext-42", name="Ext"))
    try:
        joined = await chat.join()
        assert joined["user"]["name"] == "Ext"
        _, frames = await chat.ask("whoami")
        assert "Ext" in frames[-1]["text"]
    finally:
        await chat.close()


async def test_a_disabled_users_tokens_and_sockets_stop_working(
    stack: Stack, user: UserRef, database_url: str
) -> None:
    token = token_for(user)
    socket = await open_socket(stack, {"Authorization": f"Bearer {token}"})
    chatctl(stack, database_url, "user", "disable", "--email", user.email)
    code, _ = await closed_with(socket, timeout=5)
    assert code == 4401
    assert await refused(stack, {"Authorization": f"Bearer {token}"}) == 403


# -- the WebSocket handshake and the socket's life -------------------------------------------------


async def test_cross_site_websocket_hijacking_is_refused(
    stack: Stack, user: UserRef, http: httpx.AsyncClient
) -> None:
    token = (await login(http, user.email, PASSWORD)).cookies["agentchat_token"]
    cookie = f"agentchat_token={token}"
    assert await refused(stack, {"Cookie": cookie, "Origin": "https://evil.example"}) == 403
    assert await refused(stack, {"Cookie": cookie}) == 403  # a cookie without any Origin
    socket = await open_socket(stack, {"Cookie": cookie, "Origin": origin(stack)})
    await socket.close()


async def test_sign_out_closes_every_socket_of_the_user_within_a_second(
    stack: Stack, user: UserRef, http: httpx.AsyncClient
) -> None:
    token = (await login(http, user.email, PASSWORD)).cookies["agentchat_token"]
    headers = {"Cookie": f"agentchat_token={token}", "Origin": origin(stack)}
    sockets = [await open_socket(stack, headers) for _ in range(2)]
    bearer = await open_socket(stack, {"Authorization": f"Bearer {token_for(user)}"})
    response = await http.post("/api/auth/logout", headers={"Origin": origin(stack)})
    assert response.status_code == 204
    for socket in (*sockets, bearer):
        code, seconds = await closed_with(socket, timeout=1.0)
        assert code == 4401, seconds
    assert await refused(stack, headers) == 403  # the signed-out token is revoked
    assert (
        await http.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    ).status_code == 401


async def test_token_expiry_closes_the_socket_within_a_second(stack: Stack, user: UserRef) -> None:
    token = token_for(user, ttl_seconds=2)
    expires_at = jwt.decode(token, options={"verify_signature": False})["exp"]
    socket = await open_socket(stack, {"Authorization": f"Bearer {token}"})
    code, _ = await closed_with(socket, timeout=5)
    assert code == 4401
    assert time.time() - expires_at < 1.0


async def test_an_oversized_frame_closes_the_socket_with_1009(stack: Stack, user: UserRef) -> None:
    socket = await open_socket(stack, {"Authorization": f"Bearer {token_for(user)}"})
    await socket.send("x" * (64 * 1024 + 1))
    code, _ = await closed_with(socket, timeout=5)
    assert code == 1009


async def test_a_message_flood_is_rate_limited_and_others_are_not_slowed(
    stack: Stack, user: UserRef, database_url: str
) -> None:
    flooder = await ChatClient.connect(stack.ws_url, token_for(user))
    bystander = await ChatClient.connect(stack.ws_url, token_for(await create_user(database_url)))
    try:
        await flooder.join()
        await bystander.join()
        answers = [await flooder.send(f"whoami {n}") for n in range(MESSAGES_PER_MINUTE + 3)]
        limited = [a for a in answers if a["type"] == "error"]
        assert [a["type"] for a in answers[:MESSAGES_PER_MINUTE]] == [
            "accepted"
        ] * MESSAGES_PER_MINUTE
        assert len(limited) == 3
        assert all(a["code"] == "rate_limited" and a["retry_after"] > 0 for a in limited)
        _, frames = await bystander.ask("whoami")
        assert frames[-1]["type"] == "complete"
    finally:
        await flooder.close()
        await bystander.close()


async def test_too_many_sockets_for_one_user_are_refused(stack: Stack, user: UserRef) -> None:
    headers = {"Authorization": f"Bearer {token_for(user)}"}
    sockets = [await open_socket(stack, headers) for _ in range(MAX_SOCKETS)]
    extra = await open_socket(stack, headers)
    code, _ = await closed_with(extra, timeout=5)
    assert code == 4429
    await sockets[0].close()
    await asyncio.sleep(0.2)
    replacement = await open_socket(stack, headers)
    await replacement.send('{"type": "ping"}')
    assert "pong" in str(await asyncio.wait_for(replacement.recv(), 5))
    for socket in (*sockets[1:], replacement):
        await socket.close()


# -- tenants -------------------------------------------------------------------------------------


async def test_no_event_crosses_tenants_under_concurrent_streaming(
    stack: Stack, database_url: str
) -> None:
    alice = await ChatClient.connect(stack.ws_url, token_for(await create_user(database_url)))
    bob = await ChatClient.connect(stack.ws_url, token_for(await create_user(database_url)))
    try:
        alice_session = (await alice.join())["session_id"]
        await bob.join()
        assert (await bob.join(alice_session))["code"] == "forbidden"
        await bob.join()
        a_accepted, b_accepted = await asyncio.gather(
            alice.send("summarise what Finnest does"), bob.send("summarise what Finnest does")
        )
        a_frames, b_frames = await asyncio.gather(
            alice.answer(a_accepted["reply_message_id"]), bob.answer(b_accepted["reply_message_id"])
        )
        assert a_frames[-1]["type"] == b_frames[-1]["type"] == "complete"
        a_ids = {f.get("message_id") for f in alice.frames} - {None}
        b_ids = {f.get("message_id") for f in bob.frames} - {None}
        assert a_accepted["reply_message_id"] not in b_ids
        assert b_accepted["reply_message_id"] not in a_ids
    finally:
        await alice.close()
        await bob.close()


# -- what is logged ------------------------------------------------------------------------------


async def test_logs_hold_no_tokens_passwords_or_cookies(
    stack: Stack, user: UserRef, http: httpx.AsyncClient
) -> None:
    response = await login(http, user.email, PASSWORD)
    cookie_token = response.cookies["agentchat_token"]
    bearer = token_for(user)
    chat = await ChatClient.connect(stack.ws_url, bearer)
    await chat.join()
    await chat.ask("whoami")
    await chat.close()
    await login(http, user.email, "a wrong password that must not be logged")
    logs = stack.all_logs()
    for secret in (
        PASSWORD,
        "a wrong password that must not be logged",
        cookie_token,
        bearer,
        TEST_JWT_SECRET,
    ):
        assert secret not in logs


def chatctl(stack: Stack, database_url: str, *args: str) -> None:
    """Run the operator CLI against this stack's database and broker."""
    env = {
        **os.environ,
        **stack.env,
        "DATABASE_ADMIN_URL": database_url,
        "JWT_SECRET": gateway_settings().jwt_secret,
    }
    subprocess.run(
        [str(Path(sys.executable).parent / "chatctl"), *args],
        env=env,
        check=True,
        capture_output=True,
    )
