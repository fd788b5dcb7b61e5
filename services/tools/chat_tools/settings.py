"""Tools service settings."""

from chat_runtime.settings import ServiceSettings


class ToolsSettings(ServiceSettings):
    health_port: int = 8103
    tools_prefetch: int = 32
    # A tool that takes longer than this is stopped and reported as failed.
    tool_timeout_seconds: float = 10.0
