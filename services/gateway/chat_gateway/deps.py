"""FastAPI dependencies, as `Annotated` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, WebSocket

from chat_gateway.auth import InvalidToken, bearer_token, verify_token
from chat_gateway.bridge import BrokerBridge
from chat_gateway.hub import SessionHub
from chat_gateway.settings import GatewaySettings
from chat_shared.contracts import UserRef


def get_settings(request: Request) -> GatewaySettings:
    settings: GatewaySettings = request.app.state.settings
    return settings


def token_from(connection: Request | WebSocket, settings: GatewaySettings) -> str | None:
    """The access token: `Authorization: Bearer` first, else the auth cookie."""
    return bearer_token(connection.headers.get("authorization")) or connection.cookies.get(
        settings.auth_cookie_name
    )


def authenticate(connection: Request | WebSocket, settings: GatewaySettings) -> UserRef | None:
    token = token_from(connection, settings)
    if token is None:
        return None
    try:
        user, _expires = verify_token(token, settings)
    except InvalidToken:
        return None
    return user


def current_user(request: Request) -> UserRef:
    user = authenticate(request, get_settings(request))
    if user is None:
        raise HTTPException(status_code=401, detail="not signed in")
    return user


Settings = Annotated[GatewaySettings, Depends(get_settings)]
CurrentUser = Annotated[UserRef, Depends(current_user)]


def websocket_state(websocket: WebSocket) -> tuple[GatewaySettings, SessionHub, BrokerBridge]:
    state = websocket.app.state
    return state.settings, state.hub, state.bridge
