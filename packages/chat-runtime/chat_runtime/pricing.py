"""What a call costs, and how much of the budget to hold before making one.

Shared: the LLM worker prices calls, and the history service sizes a budget hold once it knows
the length of the answer's earlier messages (`StartAnswer`, one round trip before the model call).
"""

from __future__ import annotations

from decimal import ROUND_UP, Decimal
from typing import Protocol


class Price(Protocol):
    """US dollars per million tokens."""

    @property
    def input_per_mtok(self) -> Decimal: ...

    @property
    def output_per_mtok(self) -> Decimal: ...


MILLION = Decimal(1_000_000)
CENT_FRACTION = Decimal("0.000001")
# A deliberately pessimistic tokens-per-character ratio for the budget hold: a hold that is too
# large only delays a request near the limit; one that is too small lets an org overspend.
TOKENS_PER_CHAR_BOUND = Decimal("0.5")


def cost(price: Price, input_tokens: int, output_tokens: int) -> Decimal:
    total = (price.input_per_mtok * input_tokens + price.output_per_mtok * output_tokens) / MILLION
    return total.quantize(CENT_FRACTION, rounding=ROUND_UP)


def max_cost(price: Price, prompt_chars: int, max_tokens: int) -> Decimal:
    """An upper bound of one call's cost: a pessimistic prompt size and a full-length answer."""
    input_bound = int((Decimal(prompt_chars) * TOKENS_PER_CHAR_BOUND).to_integral_value(ROUND_UP))
    # A few tokens of message framing that the characters do not show.
    return cost(price, input_bound + 16, max_tokens)
