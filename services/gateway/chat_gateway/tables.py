"""The tables the gateway owns: organisations and users, in the `identity` schema."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, ForeignKey, Index, Integer, MetaData, Table, Text, func
from sqlalchemy.dialects.postgresql import UUID

SCHEMA = "identity"
metadata = MetaData(schema=SCHEMA)

orgs = Table(
    "orgs",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

users = Table(
    "users",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("org_id", UUID(as_uuid=True), ForeignKey("orgs.id"), nullable=False),
    Column("email", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("password_hash", Text),
    Column("disabled_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Emails are unique whatever their case.
    Index("users_email_lower", func.lower(Column("email", Text)), unique=True),
)

# Failed sign-ins per key (`account:<email>` or `ip:<address>`) in the current window.
login_failures = Table(
    "login_failures",
    metadata,
    Column("key", Text, primary_key=True),
    Column("window_started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("failures", Integer, nullable=False, server_default="0"),
)

# Tokens signed out before their expiry; rows are useless (and deleted) once expired.
revoked_tokens = Table(
    "revoked_tokens",
    metadata,
    Column("jti", Text, primary_key=True),
    Column("user_id", UUID(as_uuid=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)
