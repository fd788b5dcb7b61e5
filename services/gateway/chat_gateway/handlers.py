"""HTTP routes and the WebSocket endpoint."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import FileResponse, PlainTextResponse, Response
from starlette.websockets import WebSocketDisconnect

from chat_gateway.conversation import Conversation
from chat_gateway.deps import CurrentUser, Settings, authenticate, websocket_state
from chat_gateway.hub import Client
from chat_shared.protocol import ErrorCode, ErrorFrame, UserInfo

log = logging.getLogger("chat_gateway.handlers")

router = APIRouter()


@router.get("/livez", include_in_schema=False)
async def livez() -> PlainTextResponse:
    return PlainTextResponse("ok")


@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> PlainTextResponse:
    if not request.app.state.bridge.connected:
        return PlainTextResponse("broker not connected", status_code=503)
    return PlainTextResponse("ready")


@router.get("/api/me")
async def me(user: CurrentUser) -> UserInfo:
    return UserInfo(id=user.user_id, org_id=user.org_id, email=user.email, name=user.name)


@router.get("/", include_in_schema=False)
async def index(settings: Settings) -> Response:
    page = settings.web_dist_dir / "index.html"
    if not page.is_file():
        return PlainTextResponse(
            "The chat page has not been built: run `make run` (or `npm run build` in web/).",
            status_code=503,
        )
    return FileResponse(page, headers={"Cache-Control": "no-cache"})


@router.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    settings, hub, bridge = websocket_state(websocket)
    user = authenticate(websocket, settings)
    if user is None:
        # Closing before accepting refuses the handshake (HTTP 403).
        await websocket.close(code=1008)
        return
    await websocket.accept()
    client = Client(websocket, user, settings.socket_send_queue)
    conversation = Conversation(client, hub, bridge, settings)
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
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
        await hub.detach(client)
        await client.drain_and_stop()
