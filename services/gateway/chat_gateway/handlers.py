"""Health routes and the WebSocket endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy import text
from starlette.websockets import WebSocketDisconnect

from chat_contracts.codes import CloseCode, ErrorCode
from chat_contracts.protocol import ErrorFrame
from chat_gateway.conversation import Conversation
from chat_gateway.deps import token_from, websocket_state
from chat_gateway.drain import Drain
from chat_gateway.hub import Client
from chat_runtime.telemetry import PROMETHEUS_CONTENT_TYPE, current_telemetry

log = logging.getLogger("chat_gateway.handlers")

router = APIRouter()


@router.get("/livez", include_in_schema=False)
async def livez() -> PlainTextResponse:
    return PlainTextResponse("ok")


@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> PlainTextResponse:
    if request.app.state.drain.draining:
        return PlainTextResponse("stopping", status_code=503)
    if not await request.app.state.bridge.consuming():
        return PlainTextResponse("broker not connected", status_code=503)
    try:
        async with request.app.state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        return PlainTextResponse("database not answering", status_code=503)
    return PlainTextResponse("ready")


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """Prometheus text (docs/observability.md). Keep it off the public ingress."""
    telemetry = current_telemetry()
    if telemetry is None:
        return PlainTextResponse("telemetry is not set up", status_code=503)
    return Response(telemetry.metrics_text(), media_type=PROMETHEUS_CONTENT_TYPE)


async def _expire(client: Client, expires_at: float) -> None:
    await asyncio.sleep(max(0.0, expires_at - time.time()))
    client.close(CloseCode.SIGNED_OUT, "token expired")


@router.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    settings, hub, bridge, access = websocket_state(websocket)
    origin = websocket.headers.get("origin")
    token, from_cookie = token_from(websocket, settings)
    # Cross-site WebSocket hijacking: a foreign page's handshake carries the victim's cookie but
    # its own Origin. Browsers always send Origin; the cookie is accepted only with an allowed one.
    if (origin is not None and origin not in settings.origins) or (from_cookie and origin is None):
        await websocket.close(code=CloseCode.REFUSED)
        return
    who = await access.identify(token)
    if who is None:
        await websocket.close(code=CloseCode.REFUSED)
        return
    await websocket.accept()
    drain: Drain = websocket.app.state.drain
    if drain.draining:  # this replica is stopping: reconnect to another one
        await websocket.close(code=CloseCode.SERVICE_RESTART)
        return
    if hub.sockets_of(who.user.user_id) >= settings.max_sockets_per_user:
        await websocket.close(code=CloseCode.TOO_MANY_SOCKETS, reason="too many connections")
        return
    client = Client(websocket, who.user, settings.socket_send_queue)
    hub.connect(client)
    expiry = asyncio.create_task(_expire(client, who.expires_at))
    conversation = Conversation(client, hub, bridge, settings)
    drain.track(client)
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            client.heard()
            async with drain.handling(client) as may_handle:
                if not may_handle:  # stopping: the socket is being closed with 1012
                    continue
                text = message.get("text")
                if text is None:
                    conversation.reply(
                        ErrorFrame(
                            code=ErrorCode.BAD_REQUEST, message="binary frames are not supported"
                        )
                    )
                    continue
                await conversation.on_text(text)
    except WebSocketDisconnect:
        pass
    finally:
        drain.forget(client)
        expiry.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await expiry
        hub.disconnect(client)
        await hub.detach(client)
        await client.drain_and_stop()
