"""Settings as deployments give them: every variable listed, empty meaning "the default"."""

from __future__ import annotations

import pytest

from chat_gateway.settings import GatewaySettings
from chat_history.settings import HistorySettings
from chat_llm_worker.settings import LlmWorkerSettings
from chat_runtime.settings import DEFAULT_DATABASE_URL


def test_an_empty_variable_means_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LLM_PROVIDER", "SESSION_SWEEP_INTERVAL_SECONDS", "HISTORY_PREFETCH"):
        monkeypatch.setenv(name, "")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "")
    history = HistorySettings(_env_file=None)  # type: ignore[call-arg]
    assert history.history_prefetch == 32
    assert history.session_sweep_interval_seconds is None
    worker = LlmWorkerSettings(_env_file=None)  # type: ignore[call-arg]
    assert worker.llm_provider is None and worker.anthropic_api_key is None
    assert worker.provider == "scripted"


def test_a_set_variable_still_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HISTORY_PREFETCH", "7")
    assert HistorySettings(_env_file=None).history_prefetch == 7  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgresql://app:pw@db-rw.ns:5432/app", "postgresql+asyncpg://app:pw@db-rw.ns:5432/app"),
        ("postgres://app:pw@db:5432/app", "postgresql+asyncpg://app:pw@db:5432/app"),
        ("postgresql+asyncpg://u@h/d", "postgresql+asyncpg://u@h/d"),
    ],
)
def test_a_plain_postgresql_url_is_used_with_asyncpg(
    monkeypatch: pytest.MonkeyPatch, given: str, used: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", given)
    assert HistorySettings(_env_file=None).database_url == used  # type: ignore[call-arg]
    assert GatewaySettings(_env_file=None).database_url == used  # type: ignore[call-arg]


def test_the_default_database_url_is_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert HistorySettings(_env_file=None).database_url == DEFAULT_DATABASE_URL  # type: ignore[call-arg]


def test_chatctl_uses_a_plain_postgresql_admin_url_with_asyncpg(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chatctl.cli import ChatctlSettings

    monkeypatch.setenv("DATABASE_ADMIN_URL", "postgresql://agentchat:pw@pg-rw:5432/agentchat")
    settings = ChatctlSettings(_env_file=None)  # type: ignore[call-arg]
    assert settings.database_admin_url == "postgresql+asyncpg://agentchat:pw@pg-rw:5432/agentchat"
