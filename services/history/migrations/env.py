"""Alembic environment of the history service's `chat` schema."""

from chat_history.tables import SCHEMA, metadata
from chat_runtime.migrations import run_env

run_env(metadata, SCHEMA)
