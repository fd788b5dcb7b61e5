"""OpenTelemetry for every service, set up once per process, and the product's metrics.

- Traces are recorded and exported over OTLP/HTTP only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
  `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set. Otherwise no tracer provider is installed, no
  span is started and no trace header is written: tracing costs nothing.
- Metrics are always kept (in memory, a few counters and histograms) and served as Prometheus
  text on each service's health port at `/metrics`; with an endpoint they are also pushed over
  OTLP every `OTEL_METRIC_EXPORT_INTERVAL` ms.
- Both providers flush what they hold when the process exits (the SDK's exit hooks), so a
  service stopped with SIGTERM exports its last spans.
- The standard variables are honoured by the SDK itself: `OTEL_SERVICE_NAME`,
  `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER(_ARG)`, `OTEL_BSP_*`,
  `OTEL_EXPORTER_OTLP_HEADERS`/`_TIMEOUT`/`_COMPRESSION`/`_CERTIFICATE`, `OTEL_SDK_DISABLED`,
  `OTEL_TRACES_EXPORTER=none`, `OTEL_METRICS_EXPORTER=none`.

Per-token work is kept to what `chat_runtime.publisher.Publisher` and the gateway's delivery
do; see docs/observability.md for the cost.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Counter, Histogram, Meter, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from chat_contracts.events import (
    CompleteEvent,
    ErrorEvent,
    RoutedEvent,
    SessionEvent,
    ToolResultEvent,
)
from chat_runtime.tracing import ChatAttributesProcessor, enable_tracing

__all__ = [
    "PROMETHEUS_CONTENT_TYPE",
    "Instruments",
    "Telemetry",
    "current_telemetry",
    "instruments",
    "observe_event",
    "setup_telemetry",
]

log = logging.getLogger(__name__)

PROMETHEUS_CONTENT_TYPE = CONTENT_TYPE_LATEST
METER_NAME = "agentchat"
# Seconds. The SDK's default buckets are made for milliseconds.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


def _set(environ: Mapping[str, str], name: str) -> bool:
    return bool(environ.get(name, "").strip())


def _off(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "").strip().lower() == "none"


def traces_wanted(environ: Mapping[str, str]) -> bool:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if _off(environ, "OTEL_TRACES_EXPORTER"):
        return False
    return _set(environ, "OTEL_EXPORTER_OTLP_ENDPOINT") or _set(
        environ, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )


def otlp_metrics_wanted(environ: Mapping[str, str]) -> bool:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if _off(environ, "OTEL_METRICS_EXPORTER"):
        return False
    return _set(environ, "OTEL_EXPORTER_OTLP_ENDPOINT") or _set(
        environ, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
    )


@dataclass
class Telemetry:
    service: str
    tracing: bool
    otlp_metrics: bool
    registry: CollectorRegistry
    meter_provider: MeterProvider
    tracer_provider: TracerProvider | None

    def metrics_text(self) -> bytes:
        """The service's metrics in the Prometheus text format."""
        return generate_latest(self.registry)


_telemetry: Telemetry | None = None


def _frozen_objects(_options: CallbackOptions) -> Iterable[Observation]:
    yield Observation(gc.get_freeze_count())


def setup_telemetry(
    service: str, endpoint: str | None = None, environ: Mapping[str, str] | None = None
) -> Telemetry:
    """Install the process's meter provider and, if an OTLP endpoint is set, its tracer
    provider. Called by every service at start; later calls return the first result.

    `endpoint` is the service's `OTEL_EXPORTER_OTLP_ENDPOINT` setting (which may come from a
    `.env` file); the SDK's exporters read the environment, so it is put there if missing.
    """
    global _telemetry
    if _telemetry is not None:
        return _telemetry
    if environ is None:
        if endpoint and not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
        environ = os.environ
    attributes = {"service.namespace": "agentchat"}
    if not _set(environ, "OTEL_SERVICE_NAME"):
        attributes["service.name"] = service
    resource = Resource.create(attributes)
    protocol = environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf").strip()
    if protocol not in ("", "http/protobuf"):
        log.warning(
            "OTEL_EXPORTER_OTLP_PROTOCOL=%s is not supported here; exporting http/protobuf",
            protocol,
        )

    # Prometheus text for /metrics, from the service's own registry.
    from opentelemetry.exporter.prometheus import PrometheusMetricReader

    registry = CollectorRegistry(auto_describe=True)
    readers: list[MetricReader] = [PrometheusMetricReader(registry=registry)]
    otlp_metrics = otlp_metrics_wanted(environ)
    if otlp_metrics:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    meter_provider = MeterProvider(metric_readers=readers, resource=resource)
    metrics.set_meter_provider(meter_provider)
    meter_provider.get_meter(METER_NAME).create_observable_gauge(
        "chat.process.gc_frozen_objects",
        callbacks=[_frozen_objects],
        unit="{object}",
        description="Objects the garbage collector skips: what starting the service allocated "
        "(runtime.freeze_startup_heap); 0 until the service has started.",
    )

    tracer_provider: TracerProvider | None = None
    if traces_wanted(environ):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(ChatAttributesProcessor())
        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(tracer_provider)
        enable_tracing()

    _telemetry = Telemetry(
        service=service,
        tracing=tracer_provider is not None,
        otlp_metrics=otlp_metrics,
        registry=registry,
        meter_provider=meter_provider,
        tracer_provider=tracer_provider,
    )
    log.info(
        "telemetry ready",
        extra={"tracing": _telemetry.tracing, "otlp_metrics": otlp_metrics},
    )
    return _telemetry


def current_telemetry() -> Telemetry | None:
    return _telemetry


# -- the product's metrics ----------------------------------------------------------------------


class Instruments:
    """Every metric the services record (docs/observability.md lists them with their labels).

    Created on the global meter: until `setup_telemetry` installs a provider they record
    nothing, at the cost of a no-op call.
    """

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.messages: Counter = meter.create_counter(
            "chat.messages", unit="{message}", description="User messages routed, by tier."
        )
        self.llm_tokens: Counter = meter.create_counter(
            "chat.llm.tokens",
            unit="{token}",
            description="Model tokens by org, model and direction (input or output).",
        )
        self.llm_cost: Counter = meter.create_counter(
            "chat.llm.cost_usd", unit="1", description="Model cost in US dollars, by org and model."
        )
        self.time_to_first_token: Histogram = meter.create_histogram(
            "chat.llm.time_to_first_token",
            unit="s",
            description="From asking the model to its first token.",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        )
        self.delivery_lag: Histogram = meter.create_histogram(
            "chat.gateway.delivery_lag",
            unit="s",
            description="From the worker publishing an answer's event to the gateway handing "
            "it to the socket (one sample per event: per token event on the token path).",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        )
        self.tool_duration: Histogram = meter.create_histogram(
            "chat.tool.duration",
            unit="s",
            description="Tool calls and their latency, by tool and outcome.",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        )
        self.errors: Counter = meter.create_counter(
            "chat.errors", unit="{error}", description="Errors reported to users, by code."
        )
        self.publish_duration: Histogram = meter.create_histogram(
            "chat.broker.publish.duration",
            unit="s",
            description="Publish until the broker's confirm, by message kind (tokens excluded).",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        )


@functools.cache
def instruments() -> Instruments:
    return Instruments(metrics.get_meter(METER_NAME))


def observe_event(event: SessionEvent) -> None:
    """Count what a published event tells: routing by tier, tool calls, model usage, errors.

    Called once per event by `publish_event`, never for tokens.
    """
    meters = instruments()
    match event:
        case RoutedEvent():
            meters.messages.add(1, {"tier": str(event.tier)})
        case ToolResultEvent():
            outcome = "error" if event.is_error else "ok"
            meters.tool_duration.record(
                event.latency_ms / 1000, {"tool": event.tool, "outcome": outcome}
            )
        case CompleteEvent() | ErrorEvent():
            if isinstance(event, ErrorEvent):
                meters.errors.add(1, {"code": event.code})
            call = event.llm_call
            if call is not None:
                org = {"org_id": str(event.org_id), "model": call.model}
                meters.llm_tokens.add(call.usage.input_tokens, {**org, "direction": "input"})
                meters.llm_tokens.add(call.usage.output_tokens, {**org, "direction": "output"})
                meters.llm_cost.add(float(call.usage.cost_usd), org)
                if call.ttft_ms is not None:
                    meters.time_to_first_token.record(call.ttft_ms / 1000, {"model": call.model})
