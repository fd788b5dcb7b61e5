"""Gateway service: app factory and entry point."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy.ext.asyncio import create_async_engine

from chat_gateway import api, handlers
from chat_gateway.access import AccessControl
from chat_gateway.auth import TokenVerifier
from chat_gateway.bridge import BrokerBridge
from chat_gateway.delivery import EventDelivery
from chat_gateway.drain import Drain, DrainingServer
from chat_gateway.headers import SecurityHeaders
from chat_gateway.hub import SessionHub
from chat_gateway.settings import GatewaySettings
from chat_gateway.telemetry import Deliveries, watch_sockets
from chat_runtime import amqp_writer
from chat_runtime.logs import configure_logging
from chat_runtime.service import freeze_startup_heap
from chat_runtime.telemetry import setup_telemetry

SERVICE = "gateway"
log = logging.getLogger("chat_gateway")


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    amqp_writer.install()
    setup_telemetry(SERVICE, settings.otel_exporter_otlp_endpoint)
    bridge = BrokerBridge(settings)
    hub = SessionHub(bridge.bind, bridge.unbind)
    bridge.inbound = EventDelivery(hub, Deliveries(bridge.publish_delivered, org_of=hub.org_of))
    engine = create_async_engine(settings.database_url, pool_size=settings.database_pool_size)
    watch_sockets(hub)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await bridge.start()
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
        # Compression costs much more CPU per frame and memory per socket (docs/benchmarks.md).
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
    )
    # On SIGTERM: stop accepting, close every socket with 1012 once flushed, then stop.
    DrainingServer(config, app.state.drain, settings.shutdown_grace_seconds).run()
