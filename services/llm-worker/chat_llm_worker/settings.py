"""LLM worker settings."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator

from chat_runtime.settings import ServiceSettings

DEFAULT_SYSTEM_PROMPT = (
    "You are the assistant of Finnest's agent chat. Answer clearly and concisely, in Markdown. "
    "If you do not know something, say so rather than guessing."
)


class Price(BaseModel):
    """US dollars per million tokens."""

    input_per_mtok: Decimal
    output_per_mtok: Decimal


def _default_prices() -> dict[str, Price]:
    # Anthropic list prices. The scripted provider is free: nothing is called.
    def price(input_usd: int, output_usd: int) -> Price:
        return Price(input_per_mtok=Decimal(input_usd), output_per_mtok=Decimal(output_usd))

    return {
        "claude-sonnet-4-6": price(3, 15),
        "claude-sonnet-4-5": price(3, 15),  # end of life 30 Nov 2026 (the SDK warns)
        "claude-opus-4-1": price(15, 75),
        "claude-haiku-4-5": price(1, 5),
        "scripted-offline-v1": price(0, 0),
    }


class LlmWorkerSettings(ServiceSettings):
    health_port: int = 8102
    # None: `anthropic` when ANTHROPIC_API_KEY is set, otherwise `scripted`.
    llm_provider: Literal["anthropic", "scripted"] | None = None
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    anthropic_model: str = "claude-sonnet-4-6"
    anthropic_max_retries: int = 2
    anthropic_timeout_seconds: float = 120.0
    llm_max_tokens: int = Field(default=1024, ge=1)
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    scripted_ttft_ms: float = Field(default=300, ge=0)
    scripted_tokens_per_second: float = Field(default=60, gt=0)
    # How many answers one worker streams at once.
    llm_concurrency: int = Field(default=16, ge=1)
    # Token publishes in flight at once for the whole worker (0: no limit; each answer still has
    # at most one). Deltas of an answer waiting for a slot are coalesced: docs/benchmarks.md.
    token_publish_window: int = Field(default=0, ge=0)
    # Earlier messages of the session (questions and answers) sent to the model as context.
    context_messages: int = Field(default=20, ge=0)
    history_rpc_timeout_seconds: float = 5.0
    model_prices: dict[str, Price] = Field(default_factory=_default_prices)
    # Answers that survive (docs/decisions/0006-streams-that-survive.md).
    # How long an answer's events stay replayable after it ended (and a stop for a message this
    # worker does not hold is remembered, in case its request is still queued).
    replay_grace_seconds: float = Field(default=60, gt=0)
    # A streaming call's usage is reported (a `progress` event) this often.
    progress_interval_seconds: float = Field(default=2, gt=0)
    # A message sent while the session's answer streams: wait for it, refuse it, or stop it.
    busy_policy: Literal["queue", "reject", "interrupt"] = "queue"
    # An answer holding its session's turn longer than this is taken over (its worker is gone).
    turn_stale_seconds: float = Field(default=300, gt=0)
    # After a history question times out, history is not asked for this long.
    history_breaker_seconds: float = Field(default=10, gt=0)
    # What each org may hold per worker for Tier-2 answers while history is down (0: none).
    budget_outage_allowance_usd: Decimal = Field(default=Decimal("0.50"), ge=0)

    @property
    def provider(self) -> Literal["anthropic", "scripted"]:
        if self.llm_provider is not None:
            return self.llm_provider
        return "anthropic" if self.anthropic_api_key else "scripted"

    @model_validator(mode="after")
    def _check(self) -> LlmWorkerSettings:
        if self.provider == "anthropic":
            if self.anthropic_api_key is None:
                raise ValueError("LLM_PROVIDER=anthropic needs ANTHROPIC_API_KEY")
            if self.anthropic_model not in self.model_prices:
                raise ValueError(
                    f"ANTHROPIC_MODEL {self.anthropic_model!r} has no price in MODEL_PRICES"
                )
        return self
