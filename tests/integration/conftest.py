"""Fixtures of the integration tests (the infrastructure ones are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The tables' owner's engine, on the module's database (row-level security does not apply:
    for seeding and for assertions across orgs)."""
    engine = create_async_engine(database_url, pool_size=10)
    yield engine
    await engine.dispose()
