"""Gateway settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from chat_shared.settings import DEFAULT_DATABASE_URL, SecretSettings

WEB_DIST = Path(__file__).resolve().parents[3] / "web" / "dist"


class GatewaySettings(SecretSettings):
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    database_url: str = DEFAULT_DATABASE_URL
    # The cookie that carries the access token for browsers.
    auth_cookie_name: str = "agentchat_token"
    access_token_ttl_seconds: int = Field(default=12 * 3600, gt=0)
    # Limits on what a client may send.
    max_message_chars: int = Field(default=8000, gt=0)
    max_frame_bytes: int = Field(default=64 * 1024, gt=0)
    # Frames queued for one socket before the client is considered too slow and disconnected.
    socket_send_queue: int = Field(default=4096, gt=0)
    history_rpc_timeout_seconds: float = 5.0
    history_limit: int = 200
    # Where the built chat page lives (`npm run build` in web/).
    web_dist_dir: Path = WEB_DIST
    # Read only to log, at start, which provider the LLM workers will pick by the same rule
    # (the worker decides; the gateway never calls a model and keeps no key).
    llm_provider: str | None = None
    anthropic_api_key_set: bool = Field(default=False, validation_alias="ANTHROPIC_API_KEY")

    @field_validator("anthropic_api_key_set", mode="before")
    @classmethod
    def _key_present(cls, value: object) -> bool:
        return bool(value)

    @property
    def llm_provider_label(self) -> str:
        if self.llm_provider:
            return self.llm_provider
        return "anthropic" if self.anthropic_api_key_set else "scripted"
