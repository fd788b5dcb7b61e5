"""Pages and the HTTP API: sign-in, sign-out, the current user, a message's timeline."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse
from pydantic import BaseModel, Field

from chat_contracts.control import UserSignedOut
from chat_contracts.history import GetTimeline, MessageTimeline, TimelineReply
from chat_contracts.protocol import UserInfo
from chat_gateway import identity
from chat_gateway.auth import mint_token
from chat_gateway.bridge import BackendUnavailable
from chat_gateway.deps import Bridge, CurrentIdentity, Engine, OptionalIdentity, Settings
from chat_gateway.passwords import verify_password
from chat_gateway.ratelimit import clear_login_failures, login_blocked_for, record_login_failure
from chat_gateway.settings import GatewaySettings

log = logging.getLogger("chat_gateway.api")

router = APIRouter()

WRONG_CREDENTIALS = "Incorrect email or password."


class LoginRequest(BaseModel):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


def _page(settings: GatewaySettings, name: str) -> Response:
    page: Path = settings.web_dist_dir / name
    if not page.is_file():
        return PlainTextResponse(
            "The chat page has not been built: run `make run` (or `npm run build` in web/).",
            status_code=503,
        )
    return FileResponse(page, headers={"Cache-Control": "no-cache"})


def _check_origin(request: Request, settings: GatewaySettings) -> None:
    """A browser request from a foreign page (login CSRF) is refused."""
    origin = request.headers.get("origin")
    if origin is not None and origin not in settings.origins:
        raise HTTPException(status_code=403, detail="This origin may not sign in here.")


@router.get("/", include_in_schema=False)
async def index(settings: Settings, who: OptionalIdentity) -> Response:
    if who is None:
        return RedirectResponse("/login", status_code=303)
    return _page(settings, "index.html")


@router.get("/login", include_in_schema=False)
async def login_page(settings: Settings, who: OptionalIdentity) -> Response:
    if who is not None:
        return RedirectResponse("/", status_code=303)
    return _page(settings, "login.html")


@router.get("/api/me")
async def me(who: CurrentIdentity) -> UserInfo:
    user = who.user
    return UserInfo(id=user.user_id, org_id=user.org_id, email=user.email, name=user.name)


@router.get("/api/messages/{message_id}/timeline")
async def message_timeline(
    message_id: UUID, who: CurrentIdentity, bridge: Bridge
) -> MessageTimeline:
    """Where an answer's time went; only for the user who owns the message."""
    user = who.user
    request = GetTimeline(org_id=user.org_id, user_id=user.user_id, message_id=message_id)
    try:
        reply = TimelineReply.model_validate_json(await bridge.ask_history(request))
    except BackendUnavailable as exc:
        raise HTTPException(
            status_code=503,
            detail="The chat history service is not answering. Try again in a moment.",
        ) from exc
    if reply.timeline is None:
        raise HTTPException(
            status_code=404,
            detail="No timeline for this message: it is not one of your answers, "
            "or nothing has been recorded for it yet.",
        )
    return reply.timeline


@router.post("/api/auth/login", response_model=UserInfo)
async def login(
    body: LoginRequest, request: Request, settings: Settings, engine: Engine
) -> Response:
    _check_origin(request, settings)
    email = body.email.strip().lower()
    client_ip = request.client.host if request.client else "unknown"
    account_key, ip_key = f"account:{email}", f"ip:{client_ip}"
    limits = [
        (account_key, settings.login_max_failures_per_account),
        (ip_key, settings.login_max_failures_per_ip),
    ]
    async with engine.begin() as conn:
        wait = await login_blocked_for(conn, limits, settings.login_window_seconds)
        found = None if wait else await identity.credentials(conn, email)
    if wait:
        retry_after = int(wait) + 1
        return JSONResponse(
            {
                "detail": f"Too many sign-in attempts. Try again in {retry_after} seconds.",
                "retry_after": retry_after,
            },
            status_code=429,
            headers={"Retry-After": str(retry_after)},
        )
    # Always one Argon2 verification, found or not: timing does not reveal which emails exist.
    matches = await asyncio.to_thread(
        verify_password, found.password_hash if found else None, body.password
    )
    if found is None or not matches or found.disabled:
        async with engine.begin() as conn:
            await record_login_failure(conn, [account_key, ip_key], settings.login_window_seconds)
        log.info("sign-in refused")
        return JSONResponse({"detail": WRONG_CREDENTIALS}, status_code=401)
    async with engine.begin() as conn:
        await clear_login_failures(conn, account_key)
    user = found.user
    response = JSONResponse(
        UserInfo(id=user.user_id, org_id=user.org_id, email=user.email, name=user.name).model_dump(
            mode="json"
        )
    )
    response.set_cookie(
        settings.auth_cookie_name,
        mint_token(user, settings),
        max_age=settings.access_token_ttl_seconds,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    log.info("signed in", extra={"user_id": str(user.user_id)})
    return response


@router.post("/api/auth/logout", status_code=204)
async def logout(
    request: Request, settings: Settings, who: OptionalIdentity, engine: Engine, bridge: Bridge
) -> Response:
    _check_origin(request, settings)
    response = Response(status_code=204)
    response.delete_cookie(settings.auth_cookie_name, path="/")
    if who is None:
        return response
    if who.jti is not None:
        async with engine.begin() as conn:
            await identity.revoke_token(
                conn, who.jti, who.user.user_id, datetime.fromtimestamp(who.expires_at, UTC)
            )
    await bridge.broadcast(UserSignedOut(user_id=who.user.user_id, reason="logout"))
    log.info("signed out", extra={"user_id": str(who.user.user_id)})
    return response
