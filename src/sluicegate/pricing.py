"""Model prices and the cost of a call, in integer micro-dollars.

A price is US dollars per million tokens, so `tokens x price` is exactly micro-dollars; the sum is kept
as a `Decimal` and rounded up once per call, so a budget is never undercounted by rounding.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources

import yaml

from sluicegate.canonical import Usage


@dataclass(frozen=True, slots=True)
class Price:
    input: Decimal  # USD per million prompt tokens
    output: Decimal  # USD per million completion tokens
    cached_input: Decimal | None = None  # USD per million prompt tokens read from a cache
    cache_write: Decimal | None = None  # USD per million prompt tokens written to a cache
    as_of: dt.date | None = None

    def cost_micros(self, usage: Usage) -> int:
        return cost_micros(usage, self)

    @property
    def top_input(self) -> Decimal:
        """The dearest a prompt token can be (a cache write may cost more than plain input): what a
        worst-case reservation must price prompt tokens at."""
        return max(self.input, self.cache_write or self.input)


def cost_micros(usage: Usage, price: Price) -> int:
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    written = min(usage.cache_write_tokens, usage.input_tokens - cached)
    plain = usage.input_tokens - cached - written
    total = (
        Decimal(plain) * price.input
        + Decimal(cached) * (price.cached_input if price.cached_input is not None else price.input)
        + Decimal(written) * (price.cache_write if price.cache_write is not None else price.input)
        + Decimal(usage.output_tokens) * price.output
    )
    return math.ceil(total)


def micros_to_usd(micros: int) -> str:
    """Exact decimal dollars, e.g. 1234 -> "0.001234"."""
    return str(Decimal(micros).scaleb(-6).quantize(Decimal("0.000001")))


def _decimal(value: object) -> Decimal:
    return Decimal(str(value))


def price_from_mapping(entry: Mapping[str, object]) -> Price:
    as_of = entry.get("as_of")
    return Price(
        input=_decimal(entry["input"]),
        output=_decimal(entry.get("output", 0)),
        cached_input=_decimal(entry["cached_input"]) if entry.get("cached_input") is not None else None,
        cache_write=_decimal(entry["cache_write"]) if entry.get("cache_write") is not None else None,
        as_of=as_of if isinstance(as_of, dt.date) else None,
    )


class PriceTable:
    def __init__(self, prices: Mapping[str, Price]) -> None:
        self._prices = dict(prices)
        self._by_length = sorted(self._prices, key=len, reverse=True)

    @classmethod
    def default(cls) -> PriceTable:
        text = (resources.files("sluicegate") / "data" / "prices.yaml").read_text(encoding="utf-8")
        data = yaml.safe_load(text)
        return cls({name: price_from_mapping(entry) for name, entry in data["models"].items()})

    def lookup(self, model: str) -> Price | None:
        """The price of a provider model name, or None when it is unknown."""
        for name in _candidates(model):
            price = self._prices.get(name)
            if price is not None:
                return price
            for entry in self._by_length:
                if name.startswith(entry):
                    return self._prices[entry]
        return None


def _candidates(model: str) -> list[str]:
    names = [model]
    for separator in ("/", "."):
        if separator in model:
            names.append(model.split(separator, 1)[1])
    return names
