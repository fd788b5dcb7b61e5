"""Infrastructure fixtures: one per piece, session-scoped; per-module databases and prefixes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from chat_devtools.infra import (
    Databases,
    delete_topology,
    fresh_database,
    postgres_server_url,
    rabbitmq_url,
    unique_prefix,
)
from chat_devtools.seed import TEST_JWT_SECRET
from chat_devtools.stack import Stack, StackFactory
from tests.support.paths import ARTIFACTS


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    with rabbitmq_url() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with postgres_server_url() as url:
        yield url


@pytest.fixture(scope="module")
def databases(postgres_url: str) -> Iterator[Databases]:
    with fresh_database(postgres_url) as created:
        yield created


@pytest.fixture(scope="module")
def database_url(databases: Databases) -> str:
    """The owner's URL: for seeding and for assertions that look across orgs."""
    return databases.admin_url


@pytest.fixture(scope="module")
def app_database_url(databases: Databases) -> str:
    """The services' URL: a role that row-level security applies to."""
    return databases.app_url


@pytest.fixture(scope="module")
def stack_factory(
    amqp_url: str, app_database_url: str, request: pytest.FixtureRequest
) -> Iterator[StackFactory]:
    """Start the services as processes, with test settings plus `overrides`."""
    stacks: list[tuple[Stack, str]] = []
    module = request.module.__name__.rsplit(".", 1)[-1]

    def start(services: tuple[str, ...] | None = None, **overrides: str) -> Stack:
        prefix = unique_prefix()
        log_dir = ARTIFACTS / "logs" / f"{module}-{prefix}"
        log_dir.mkdir(parents=True, exist_ok=True)
        env = {
            "APP_ENV": "test",
            "AMQP_URL": amqp_url,
            "DATABASE_URL": app_database_url,
            "BROKER_PREFIX": prefix,
            "JWT_SECRET": TEST_JWT_SECRET,
            "LLM_PROVIDER": "scripted",
            "SCRIPTED_TTFT_MS": "50",
            "SCRIPTED_TOKENS_PER_SECOND": "400",
            "LOG_LEVEL": "INFO",
            **overrides,
        }
        stack = Stack(env=env, log_dir=log_dir)
        if services is not None:
            stack.services = services
        stacks.append((stack, prefix))
        stack.start_all()
        return stack

    yield start
    for stack, prefix in stacks:
        stack.stop_all()
        asyncio.run(delete_topology(amqp_url, prefix))
