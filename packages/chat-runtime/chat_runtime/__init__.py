"""How a service runs: settings base, broker links, publishing, work subscribers, telemetry.

The wire itself (messages, protocol, topology) is `chat_contracts`; this package is what sends
and receives it:
- `service`: a FastStream service's app, health port, start and stop;
- `work`: the work-queue subscriber (acknowledge once handed on, dead-letter poison);
- `wire`: the one encoder every publish uses; `publisher`: publishing through FastStream;
- `link`: a replica's raw aio-pika link (the gateway's and the LLM worker's hot path);
- `rpc`: request/reply; `declare`: the topology on the broker;
- `settings`, `logs`, `telemetry`, `tracing`, `timeline`: configuration and observability;
- `pricing`: what a model call costs; `migrations`: the Alembic runner of the owners' schemas.
"""

from chat_runtime.settings import DatabaseSettings, SecretSettings, ServiceSettings

__all__ = ["DatabaseSettings", "SecretSettings", "ServiceSettings"]
