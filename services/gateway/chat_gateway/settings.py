"""Gateway settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from chat_runtime.settings import DEFAULT_DATABASE_URL, SecretSettings, asyncpg_url

WEB_DIST = Path(__file__).resolve().parents[3] / "web" / "dist"


class GatewaySettings(SecretSettings):
    """The gateway's settings. Its database role reads and writes the `identity` schema."""

    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    database_url: str = DEFAULT_DATABASE_URL
    database_pool_size: int = 5
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
    # Streams that survive (docs/decisions/0006): how long a join waits for the LLM worker
    # holding a streaming answer to replay what the client missed (no reply: no worker holds it).
    replay_timeout_seconds: float = Field(default=1.0, gt=0)
    # A `heartbeat` frame on every socket this often; a socket the client sent nothing on for
    # CLIENT_SILENCE_SECONDS is closed with 4408 (checked at each heartbeat).
    heartbeat_seconds: float = Field(default=15.0, gt=0)
    client_silence_seconds: float = Field(default=45.0, gt=0)
    # Browser origins allowed to open a WebSocket or sign in (exact match). Empty: the
    # gateway's own address (http://GATEWAY_HOST:GATEWAY_PORT, and localhost for 127.0.0.1).
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Limits (docs/security.md lists their answers and close codes).
    messages_per_minute: int = Field(default=30, gt=0)
    max_sockets_per_user: int = Field(default=10, gt=0)
    login_window_seconds: int = Field(default=900, gt=0)
    login_max_failures_per_account: int = Field(default=5, gt=0)
    login_max_failures_per_ip: int = Field(default=20, gt=0)
    # An external identity provider whose RS256/ES256 tokens are accepted as well.
    oidc_jwks_url: str | None = None
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_cache_seconds: int = 300
    oidc_user_claim: str = "sub"
    oidc_org_claim: str = "org_id"
    oidc_email_claim: str = "email"
    oidc_name_claim: str = "name"
    # Where the built chat page lives (`npm run build` in web/).
    web_dist_dir: Path = WEB_DIST
    # Read only to log, at start, which provider the LLM workers will pick by the same rule
    # (the worker decides; the gateway never calls a model and keeps no key).
    llm_provider: str | None = None
    anthropic_api_key_set: bool = Field(default=False, validation_alias="ANTHROPIC_API_KEY")

    @field_validator("database_url")
    @classmethod
    def _asyncpg(cls, value: str) -> str:
        return asyncpg_url(value)

    @field_validator("anthropic_api_key_set", mode="before")
    @classmethod
    def _key_present(cls, value: object) -> bool:
        return bool(value)

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str) and not value.lstrip().startswith("["):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @model_validator(mode="after")
    def _complete_identity_provider(self) -> GatewaySettings:
        if self.oidc_jwks_url and not (self.oidc_issuer and self.oidc_audience):
            raise ValueError("OIDC_JWKS_URL needs OIDC_ISSUER and OIDC_AUDIENCE")
        return self

    @property
    def origins(self) -> frozenset[str]:
        if self.allowed_origins:
            return frozenset(self.allowed_origins)
        port = self.gateway_port
        own = {f"http://{self.gateway_host}:{port}"}
        if self.gateway_host in ("127.0.0.1", "0.0.0.0", "localhost"):
            own |= {f"http://127.0.0.1:{port}", f"http://localhost:{port}"}
        return frozenset(own)

    @property
    def llm_provider_label(self) -> str:
        if self.llm_provider:
            return self.llm_provider
        return "anthropic" if self.anthropic_api_key_set else "scripted"
