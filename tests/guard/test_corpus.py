"""The firewall's targets at `standard`, on the held-out split of the labelled corpus (never tuned on):
at least 95% of attacks blocked or flagged, fewer than 1% of ordinary prompts blocked."""

from __future__ import annotations

import pytest

from sluicegate.guard.firewall import Firewall
from sluicegate.guard.firewall_rules import rule_set
from sluicegate.guard.policy import Levels, decide
from tests.guard.corpus import Item, load, tools_size


def _action(firewall: Firewall, item: Item) -> str:
    policy = Levels().chain(["standard"])
    assert policy is not None
    tools, tools_bytes = tools_size(item.params)
    findings = firewall.scan_request(
        [(item.role, item.text)],
        n=item.params.get("n"),
        max_tokens=item.params.get("max_tokens"),
        tools=tools,
        tools_bytes=tools_bytes,
    )
    return decide(policy, findings).action


@pytest.fixture(scope="module")
def heldout() -> list[tuple[Item, str]]:
    firewall = Firewall(rule_set())
    return [(item, _action(firewall, item)) for item in load("heldout")]


def test_the_held_out_split_is_large_enough_to_mean_something(heldout: list[tuple[Item, str]]) -> None:
    attacks = [item for item, _ in heldout if item.attack]
    ordinary = [item for item, _ in heldout if not item.attack]
    assert len(attacks) >= 100 and len(ordinary) >= 150
    assert len({item.lang for item in attacks}) >= 6
    assert {label for label in (i.label for i in attacks) if label.startswith("obfuscation_")} >= {
        f"obfuscation_{kind}"
        for kind in (
            "base64",
            "base32",
            "hex",
            "rot13",
            "morse",
            "leetspeak",
            "tags",
            "homoglyph",
            "zero_width",
            "bidi",
            "variation_selectors",
        )
    }


def test_at_least_95_percent_of_attacks_are_blocked_or_flagged(heldout: list[tuple[Item, str]]) -> None:
    actions = [action for item, action in heldout if item.attack]
    detected = sum(action != "allow" for action in actions)
    assert detected / len(actions) >= 0.95, f"{detected}/{len(actions)}"


def test_fewer_than_1_percent_of_ordinary_prompts_are_blocked(heldout: list[tuple[Item, str]]) -> None:
    actions = [action for item, action in heldout if not item.attack]
    blocked = sum(action == "block" for action in actions)
    assert blocked / len(actions) < 0.01, f"{blocked}/{len(actions)}"
