"""Orchestrator settings."""

from chat_runtime.settings import ServiceSettings


class OrchestratorSettings(ServiceSettings):
    health_port: int = 8101
    # Unacknowledged user messages one replica holds at once. Routing is cheap, so a few
    # dozen keep the replica busy without hoarding work that another replica could take.
    orchestrator_prefetch: int = 32
