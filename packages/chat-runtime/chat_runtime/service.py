"""How a FastStream service is built, reports health, runs and stops.

Each service's `main.create_app(settings)` calls `create_broker` (which sets up telemetry once
per process), registers its handlers (`chat_runtime.work.subscribe_work` for its work queue) and
returns `service_app(...)`: an ASGI app whose lifespan starts and stops the broker and whose
HTTP routes are the service's health port (`/livez`, `/readyz`, `/metrics`).

Stopping (SIGTERM): the service first cancels its consumers, so RabbitMQ sends it nothing more;
then the messages it is handling get `SHUTDOWN_GRACE_SECONDS` to finish and be acknowledged;
whatever is still unfinished then is cancelled, its channel closes, and RabbitMQ puts the
unacknowledged messages back in their queue for another replica (`docs/deploy.md`).
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import uvicorn
from aio_pika.abc import AbstractChannel
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.asgi.types import Scope
from faststream.rabbit import RabbitBroker
from faststream.rabbit.subscriber import RabbitSubscriber

from chat_contracts.topology import Topology
from chat_runtime import amqp_writer
from chat_runtime.declare import declare_topology_at
from chat_runtime.logs import configure_logging
from chat_runtime.settings import ServiceSettings
from chat_runtime.telemetry import PROMETHEUS_CONTENT_TYPE, current_telemetry, setup_telemetry
from chat_runtime.tracing import ChatTelemetryMiddleware

ReadyCheck = Callable[[], Awaitable[bool]]

log = logging.getLogger(__name__)


def create_broker(settings: ServiceSettings, service: str) -> RabbitBroker:
    telemetry = setup_telemetry(service, settings.otel_exporter_otlp_endpoint)
    # Without an OTLP endpoint there is no tracing middleware at all: no span, no header.
    middlewares = (ChatTelemetryMiddleware(),) if telemetry.tracing else ()
    return RabbitBroker(
        settings.amqp_url,
        graceful_timeout=settings.shutdown_grace_seconds,
        logger=logging.getLogger(service),
        # FastStream's "Received"/"Processed" lines, two per message: at DEBUG (LOG_LEVEL=DEBUG
        # shows them). At INFO they were a measurable share of a consumer's CPU under load
        # (docs/benchmarks.md); each handler logs what it did with the message's correlation id.
        log_level=logging.DEBUG,
        middlewares=middlewares,
    )


def _consuming(broker: RabbitBroker) -> list[RabbitSubscriber]:
    return [sub for sub in broker.subscribers if isinstance(sub, RabbitSubscriber) and sub.calls]


async def consumers_up(broker: RabbitBroker) -> bool:
    """Is every subscriber consuming? RabbitMQ cancels a consumer whose queue is deleted (or
    whose quorum queue loses its members) and the connection stays up: the ping alone misses it.
    """
    for sub in _consuming(broker):
        queue, tag = sub._queue_obj, sub._consumer_tag
        if not sub.running or queue is None or not await is_consuming(queue.channel, tag):
            return False
    return True


async def is_consuming(channel: AbstractChannel, consumer_tag: str | None) -> bool:
    """Does RabbitMQ still deliver to this consumer (aio-pika forgets a consumer the server
    cancelled, and restores it under the same tag after a reconnection)?"""
    if consumer_tag is None or channel.is_closed:
        return False
    try:
        underlay = await channel.get_underlay_channel()
    except Exception:
        return False
    return consumer_tag in getattr(underlay, "consumers", {})


async def stop_consuming(broker: RabbitBroker) -> None:
    """Cancel every consumer, so that during the grace period RabbitMQ delivers nothing more
    to this replica: a message delivered now would wait, unhandled, until the channel closes.
    (FastStream alone cancels its consumers only after the grace period.)"""
    for sub in _consuming(broker):
        queue, tag = sub._queue_obj, sub._consumer_tag
        if queue is None or tag is None or queue.channel.is_closed:
            continue
        with contextlib.suppress(Exception):
            await queue.cancel(tag)
            # Cancelled: FastStream's own stop must not cancel it again.
            sub._consumer_tag = None
            log.info("stopped consuming %s", queue.name)


async def freeze_startup_heap() -> None:
    """Take what starting the service allocated (modules, pydantic schemas, SDK and SQLAlchemy
    objects: most of the heap, and alive for good) out of the cyclic garbage collector's sight.

    Every full (generation 2) collection walked all of it: pauses of tens of milliseconds in the
    LLM worker and the gateway under load, every few seconds, each one a stall of every stream
    the process carries (the token lag's p99). `gc.freeze()` moves them to a permanent generation
    that collections skip (docs/benchmarks.md).
    """
    gc.collect()
    gc.freeze()


def service_app(
    broker: RabbitBroker,
    settings: ServiceSettings,
    *,
    ready_checks: Sequence[ReadyCheck] = (),
    on_startup: Sequence[Callable[[], Awaitable[Any]]] = (),
    after_startup: Sequence[Callable[[], Awaitable[Any]]] = (),
    on_shutdown: Sequence[Callable[[], Awaitable[Any]]] = (),
    after_shutdown: Sequence[Callable[[], Awaitable[Any]]] = (),
) -> AsgiFastStream:
    """The service's ASGI app: broker lifecycle plus its health endpoints.

    `on_shutdown` runs before the broker stops (in-flight messages are still being handled);
    `after_shutdown` once they are done (e.g. to close a connection the handlers publish on).
    """
    topology = Topology(settings.broker_prefix)
    amqp_writer.install()

    @get(include_in_schema=False)
    async def livez(scope: Scope) -> AsgiResponse:
        return AsgiResponse(b"ok", 200)

    @get(include_in_schema=False)
    async def readyz(scope: Scope) -> AsgiResponse:
        if not await broker.ping(1.0):
            return AsgiResponse(b"broker not connected", 503)
        if not await consumers_up(broker):
            return AsgiResponse(b"not consuming", 503)
        for check in ready_checks:
            if not await check():
                return AsgiResponse(b"not ready", 503)
        return AsgiResponse(b"ready", 200)

    @get(include_in_schema=False)
    async def metrics(scope: Scope) -> AsgiResponse:
        telemetry = current_telemetry()
        if telemetry is None:
            return AsgiResponse(b"telemetry is not set up", 503)
        text = telemetry.metrics_text()
        return AsgiResponse(text, 200, headers={"content-type": PROMETHEUS_CONTENT_TYPE})

    async def declare() -> None:
        await declare_topology_at(settings.amqp_url, topology)

    async def stop() -> None:
        await stop_consuming(broker)
        log.info(
            "amqp writes",
            extra={"writes": amqp_writer.stats.writes, "frames": amqp_writer.stats.frames},
        )

    return AsgiFastStream(
        broker,
        asgi_routes=[("/livez", livez), ("/readyz", readyz), ("/metrics", metrics)],
        on_startup=[declare, *on_startup],
        after_startup=[*after_startup, freeze_startup_heap],
        on_shutdown=[stop, *on_shutdown],
        after_shutdown=list(after_shutdown),
        logger=logging.getLogger("faststream"),
    )


def serve(app: Any, settings: ServiceSettings, service: str) -> None:
    """Run an ASGI app on the service's health port until SIGTERM or SIGINT."""
    configure_logging(service, settings.log_level)
    config = uvicorn.Config(
        app,
        host=settings.health_host,
        port=settings.health_port,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
    )
    uvicorn.Server(config).run()
