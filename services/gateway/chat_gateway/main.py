"""Gateway service: app factory and entry point."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

import uvicorn
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import create_async_engine

from chat_gateway import api, handlers
from chat_gateway.access import AccessControl
from chat_gateway.auth import TokenVerifier
from chat_gateway.bridge import BrokerBridge
from chat_gateway.drain import CLOSE_SERVICE_RESTART, Drain, DrainingServer
from chat_gateway.frames import outgoing
from chat_gateway.headers import SecurityHeaders
from chat_gateway.hub import CLOSE_SIGNED_OUT, SessionHub
from chat_gateway.settings import GatewaySettings
from chat_gateway.telemetry import Deliveries, watch_sockets
from chat_shared import amqp_writer
from chat_shared.contracts import (
    SessionEndedEvent,
    StreamEvent,
    UserSignedOut,
    session_event_adapter,
)
from chat_shared.logs import configure_logging
from chat_shared.runtime import freeze_startup_heap
from chat_shared.telemetry import setup_telemetry
from chat_shared.topology import session_id_from_key

SERVICE = "gateway"
log = logging.getLogger("chat_gateway")


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    amqp_writer.install()
    setup_telemetry(SERVICE, settings.otel_exporter_otlp_endpoint)
    hub: SessionHub | None = None
    deliveries: Deliveries | None = None

    def on_event(routing_key: str, body: bytes) -> None:
        assert hub is not None
        try:
            session_id = UUID(session_id_from_key(routing_key))
            if not hub.clients(session_id):
                return
            event = session_event_adapter.validate_json(body)
        except (ValueError, ValidationError):
            log.warning("dropped an event that does not match its contract")
            return
        frame = outgoing(event)
        if frame is None:
            return
        # Each socket drops an answer's event it was already sent (see hub.Client).
        hub.deliver(session_id, frame, ends_session=isinstance(event, SessionEndedEvent))
        if isinstance(event, StreamEvent):
            assert deliveries is not None
            deliveries.delivered(event)

    def on_control(body: bytes) -> None:
        assert hub is not None
        try:
            signed_out = UserSignedOut.model_validate_json(body)
        except ValidationError:
            log.warning("dropped a control message that does not match its contract")
            return
        closed = hub.close_user(signed_out.user_id, CLOSE_SIGNED_OUT, signed_out.reason)
        if closed:
            log.info("closed the sockets of a signed-out user", extra={"sockets": closed})

    def on_reconnect() -> None:
        # The broker connection was lost (and again when it is back): this replica's queue
        # misses what is published meanwhile. The clients rejoin (here or elsewhere) with
        # `after`, and the workers replay it.
        assert hub is not None
        closed = hub.close_all(CLOSE_SERVICE_RESTART, "reconnect")
        if closed:
            log.warning(
                "closed every socket: the broker connection was lost", extra={"sockets": closed}
            )

    bridge = BrokerBridge(settings, on_event, on_control, on_reconnect)
    hub = SessionHub(bridge.bind, bridge.unbind)
    engine = create_async_engine(settings.database_url, pool_size=settings.database_pool_size)
    deliveries = Deliveries(bridge.publish_delivered, org_of=hub.org_of)
    watch_sockets(hub)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await bridge.start()
        assert hub is not None
        ticker = asyncio.create_task(
            hub.keep_alive(settings.heartbeat_seconds, settings.client_silence_seconds)
        )
        await freeze_startup_heap()
        log.info(
            "gateway ready",
            extra={"replica_id": bridge.replica_id, "llm_provider": settings.llm_provider_label},
        )
        yield
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        await bridge.stop()
        await engine.dispose()

    app = FastAPI(title="Agent chat gateway", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.bridge = bridge
    app.state.hub = hub
    app.state.engine = engine
    app.state.access = AccessControl(TokenVerifier(settings), engine)
    app.state.drain = Drain()
    app.add_middleware(SecurityHeaders, app_env=settings.app_env)
    app.include_router(handlers.router)
    app.include_router(api.router)
    assets = settings.web_dist_dir / "assets"
    if assets.is_dir():
        app.mount("/assets", StaticFiles(directory=assets), name="assets")
    return app


def run() -> None:
    settings = GatewaySettings()
    configure_logging(SERVICE, settings.log_level)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_config=None,
        ws_max_size=settings.max_frame_bytes,
        # Compression costs ~45% more CPU per frame and doubles memory per socket (FACTS.md).
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
    )
    # On SIGTERM: stop accepting, close every socket with 1012 once flushed, then stop.
    DrainingServer(config, app.state.drain, settings.shutdown_grace_seconds).run()
