"""Guardrail levels: what each does with findings, the strictest along the chain, custom policies."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sluicegate.guard.config import GuardrailsConfig
from sluicegate.guard.findings import Finding
from sluicegate.guard.policy import Levels, Policy, decide

INJECTION = Finding("injection", "inj.override.en.001", 0.95)
QUOTED = Finding("injection", "inj.override.en.001", 0.57)
EMAIL = Finding("pii_email", "pii.email", 0.99, 10, 27)
KEY = Finding("secret_openai_key", "secret.openai", 0.99, 30, 80)


def test_standard_blocks_attacks_flags_quotes_and_personal_data_and_redacts_secrets() -> None:
    standard = Levels().chain(["standard"])
    assert standard is not None
    assert decide(standard, [INJECTION]).action == "block"
    assert decide(standard, [INJECTION]).blocked_by == INJECTION
    assert decide(standard, [QUOTED]).action == "flag"  # under block_score: flagged, not blocked
    assert decide(standard, [EMAIL]).action == "flag"
    decision = decide(standard, [EMAIL, KEY])
    assert (decision.action, decision.categories, decision.redact) == (
        "redact",
        ("pii_email", "secret_openai_key"),
        (KEY,),
    )
    assert decide(standard, [Finding("injection", "x", 0.3)]).action == "allow"  # under flag_score: ignored


def test_off_is_no_policy_and_strict_blocks_what_standard_flags() -> None:
    levels = Levels()
    assert levels.chain(["off"]) is None and levels.chain([]) is None
    strict = levels.chain(["strict"])
    assert strict is not None
    assert decide(strict, [QUOTED]).action == "block"
    assert decide(strict, [EMAIL]).action == "redact"


def test_the_strictest_level_along_the_chain_applies_per_category() -> None:
    levels = Levels(
        {
            "pii-block": Policy(actions={"pii_*": "block"}, block_score=0.9),
            "lenient": Policy(extends="standard", actions={"injection": "flag"}),
        }
    )
    combined = levels.chain(["lenient", "pii-block"])
    assert combined is not None
    assert decide(combined, [INJECTION]).action == "flag"  # neither blocks injection
    assert decide(combined, [EMAIL]).action == "block"
    # a key cannot weaken its team: off or lenient below standard still gets standard's blocks
    assert decide(levels.chain(["standard", "off"]), [INJECTION]).action == "block"  # type: ignore[arg-type]
    assert decide(levels.chain(["standard", "lenient"]), [INJECTION]).action == "block"  # type: ignore[arg-type]
    # a level the configuration does not know (removed since it was set) is treated as strict
    assert decide(levels.chain(["gone"]), [QUOTED]).action == "block"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"default_level": "extreme"}, "unknown level 'extreme'"),
        ({"policies": {"standard": {}}}, "built-in level"),
        ({"policies": {"x": {"actions": {"injection": "redact"}}}}, "redact applies to PII and secrets only"),
        ({"policies": {"x": {"actions": {"injection": "shout"}}}}, "allow"),
        ({"policies": {"x": {"extends": "medium"}}}, "not standard or strict"),
        ({"policies": {"x": {"block_score": 0.4, "flag_score": 0.6}}}, "flag_score must not be above"),
        ({"policies": {"x": {"colour": "red"}}}, "colour"),
        (
            {"rules": {"add": [{"id": "a.b", "category": "x", "score": 1, "triggers": ["a"], "pattern": "[a"}]}},
            "compile",
        ),
    ],
)
def test_the_guardrails_section_is_validated_strictly(section: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValidationError, match=message):
        GuardrailsConfig.model_validate(section)


def test_the_firewall_must_come_before_the_stages_that_rely_on_it() -> None:
    from sluicegate.config.loader import ConfigError, parse_config

    with pytest.raises(ConfigError, match="firewall must be listed before response_cache"):
        parse_config("pipeline: {stages: [response_cache, firewall]}\nresponse_cache: {}\n", "g.yaml")
    parse_config("pipeline: {stages: [firewall, response_cache]}\nresponse_cache: {}\n", "g.yaml")
