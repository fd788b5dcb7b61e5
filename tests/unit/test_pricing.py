from decimal import Decimal

from chat_llm_worker.settings import LlmWorkerSettings, Price
from chat_runtime.pricing import cost, max_cost

SONNET = Price(input_per_mtok=Decimal(3), output_per_mtok=Decimal(15))


def test_cost_is_priced_per_million_tokens_and_rounded_up() -> None:
    assert cost(SONNET, 1_000_000, 0) == Decimal(3)
    assert cost(SONNET, 0, 1_000_000) == Decimal(15)
    assert cost(SONNET, 1, 0) == Decimal("0.000003")
    assert cost(SONNET, 0, 1) == Decimal("0.000015")
    assert cost(SONNET, 1, 1) == Decimal("0.000018")


def test_max_cost_bounds_any_call_of_that_prompt() -> None:
    bound = max_cost(SONNET, prompt_chars=4000, max_tokens=1024)
    # Real prompts run ~4 characters per token; the bound must exceed a full answer to any of them.
    assert bound > cost(SONNET, 1000, 1024)
    assert bound >= cost(SONNET, 2000, 1024)


def test_free_models_cost_nothing() -> None:
    free = LlmWorkerSettings().model_prices["scripted-offline-v1"]
    assert max_cost(free, 10_000, 4096) == 0


def test_every_default_anthropic_model_has_a_price() -> None:
    settings = LlmWorkerSettings(llm_provider="scripted")
    assert settings.anthropic_model in settings.model_prices
