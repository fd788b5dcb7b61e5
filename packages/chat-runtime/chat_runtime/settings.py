"""The settings base every service extends.

One naming scheme for the whole product: plain upper-case environment variables
(`AMQP_URL`, `DATABASE_URL`, `LOG_LEVEL`, ...), read from the environment and, in
development, from a `.env` file in the working directory.

A variable set to the empty string counts as unset (the default applies): deployments list
every setting, in `docker-compose.yml` and the Kubernetes ConfigMap, and leave empty those
they do not change.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
# The services' role (row-level security applies to it) and the owner's (migrations, chatctl).
DEFAULT_DATABASE_URL = "postgresql+asyncpg://agentchat_app@127.0.0.1:5432/agentchat"
DEFAULT_DATABASE_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/agentchat"
DEV_JWT_SECRET = "dev-only-insecure-jwt-secret-change-me"  # noqa: S105 - refused outside development  # nosec B105

Environment = Literal["development", "test", "production"]


class ServiceSettings(BaseSettings):
    """Settings every service reads."""

    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", frozen=True, env_ignore_empty=True
    )

    app_env: Environment = "development"
    amqp_url: str = DEFAULT_AMQP_URL
    # Prefix of every exchange and queue name: lets tests (and several deployments
    # sharing one vhost) keep their traffic apart.
    broker_prefix: str = Field(default="chat", pattern=r"^[a-z][a-z0-9-]{0,30}$")
    log_level: str = "INFO"
    # Where the service's health and metrics endpoints listen.
    health_host: str = "127.0.0.1"
    health_port: int = 0
    # How long a service waits for in-flight work when it is told to stop.
    shutdown_grace_seconds: float = 15.0
    # Where traces (and metrics) are exported over OTLP/HTTP, e.g. Jaeger's http://jaeger:4318.
    # Unset: nothing is traced. The other OTEL_* variables are read by the OpenTelemetry SDK
    # itself (docs/observability.md).
    otel_exporter_otlp_endpoint: str | None = None


def asyncpg_url(url: str) -> str:
    """The URL with the asyncpg driver: `postgresql://` and `postgres://` URLs (as PostgreSQL
    tools, managed services and CloudNativePG's `uri` secret give them) are accepted as is."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgresql", "postgres"):
        return f"postgresql+asyncpg://{rest}"
    return url


class DatabaseSettings(ServiceSettings):
    """Settings of a service that owns PostgreSQL tables."""

    database_url: str = DEFAULT_DATABASE_URL
    database_pool_size: int = 5

    @field_validator("database_url")
    @classmethod
    def _asyncpg(cls, value: str) -> str:
        return asyncpg_url(value)


class SecretSettings(ServiceSettings):
    """Settings of a service that signs or verifies access tokens."""

    jwt_secret: str = DEV_JWT_SECRET
    jwt_issuer: str = "agentchat"
    jwt_audience: str = "agentchat"

    @model_validator(mode="after")
    def _refuse_placeholder_secret(self) -> SecretSettings:
        if self.app_env == "production" and (
            self.jwt_secret == DEV_JWT_SECRET or len(self.jwt_secret) < 32
        ):
            raise ValueError("JWT_SECRET must be set to a random value of 32+ characters")
        return self
