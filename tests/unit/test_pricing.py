from __future__ import annotations

import math
from decimal import Decimal

from sluicegate.canonical import Usage
from sluicegate.pricing import Price, PriceTable, micros_to_usd

TABLE = PriceTable.default()


def test_versioned_and_provider_prefixed_names_find_their_price() -> None:
    assert TABLE.lookup("gpt-4o-mini-2024-07-18") == TABLE.lookup("gpt-4o-mini")
    assert TABLE.lookup("gpt-4o-2024-08-06") == TABLE.lookup("gpt-4o")
    assert TABLE.lookup("gpt-4o-mini") != TABLE.lookup("gpt-4o")
    assert TABLE.lookup("anthropic.claude-3-5-sonnet-20241022-v2:0") == TABLE.lookup("claude-3-5-sonnet")


def test_unknown_model_has_unknown_price_not_zero() -> None:
    assert TABLE.lookup("my-local-llama") is None


def test_cost_is_exact_micro_dollars_with_cache_reads_and_writes_counted_once() -> None:
    price = Price(input=Decimal("3"), output=Decimal("15"), cached_input=Decimal("0.3"), cache_write=Decimal("3.75"))
    usage = Usage(input_tokens=1000, output_tokens=100, cached_input_tokens=600, cache_write_tokens=300)
    # 100 plain x 3 + 600 cached x 0.3 + 300 written x 3.75 + 100 out x 15
    assert price.cost_micros(usage) == 300 + 180 + 1125 + 1500


def test_fractional_micro_dollars_round_up_once_per_call() -> None:
    price = Price(input=Decimal("0.075"), output=Decimal("0.3"))
    assert price.cost_micros(Usage(input_tokens=1, output_tokens=0)) == 1
    assert price.cost_micros(Usage(input_tokens=40, output_tokens=0)) == 3
    assert micros_to_usd(1234) == "0.001234"


def test_worst_case_bounds_every_actual_cost() -> None:
    price = TABLE.lookup("claude-3-5-sonnet")
    assert price is not None
    worst = math.ceil(2000 * price.top_input + 500 * price.output)
    for cached, written in ((0, 0), (2000, 0), (0, 2000), (1000, 1000)):
        usage = Usage(2000, 500, cached_input_tokens=cached, cache_write_tokens=written)
        assert price.cost_micros(usage) <= worst
