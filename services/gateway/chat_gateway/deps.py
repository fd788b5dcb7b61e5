"""FastAPI dependencies, as `Annotated` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, WebSocket
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_gateway.access import AccessControl
from chat_gateway.auth import Identity, bearer_token
from chat_gateway.bridge import BrokerBridge
from chat_gateway.hub import SessionHub
from chat_gateway.settings import GatewaySettings


def get_settings(request: Request) -> GatewaySettings:
    settings: GatewaySettings = request.app.state.settings
    return settings


def token_from(
    connection: Request | WebSocket, settings: GatewaySettings
) -> tuple[str | None, bool]:
    """The access token and whether it came from the cookie (a browser's credential)."""
    bearer = bearer_token(connection.headers.get("authorization"))
    if bearer is not None:
        return bearer, False
    cookie = connection.cookies.get(settings.auth_cookie_name)
    return cookie, cookie is not None


async def optional_identity(request: Request) -> Identity | None:
    token, _ = token_from(request, get_settings(request))
    access: AccessControl = request.app.state.access
    return await access.identify(token)


async def current_identity(request: Request) -> Identity:
    who = await optional_identity(request)
    if who is None:
        raise HTTPException(status_code=401, detail="Not signed in.")
    return who


def get_engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


def get_bridge(request: Request) -> BrokerBridge:
    bridge: BrokerBridge = request.app.state.bridge
    return bridge


Settings = Annotated[GatewaySettings, Depends(get_settings)]
CurrentIdentity = Annotated[Identity, Depends(current_identity)]
OptionalIdentity = Annotated[Identity | None, Depends(optional_identity)]
Engine = Annotated[AsyncEngine, Depends(get_engine)]
Bridge = Annotated[BrokerBridge, Depends(get_bridge)]


def websocket_state(
    websocket: WebSocket,
) -> tuple[GatewaySettings, SessionHub, BrokerBridge, AccessControl]:
    state = websocket.app.state
    return state.settings, state.hub, state.bridge, state.access
