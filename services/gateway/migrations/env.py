"""Alembic environment of the gateway's `identity` schema."""

from chat_gateway.tables import SCHEMA, metadata
from chat_runtime.migrations import run_env

run_env(metadata, SCHEMA)
