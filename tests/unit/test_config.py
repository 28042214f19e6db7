from __future__ import annotations

import pytest

from sluicegate.config.loader import ConfigError, demo_config_text, parse_config

GOOD = """
providers:
  p:
    kind: openai
    base_url: http://127.0.0.1:9/v1
models:
  - name: m
    deployments:
      - provider: p
        model: real-model
"""


def test_good_config_parses_with_defaults() -> None:
    config = parse_config(GOOD, "good.yaml")
    assert config.server.port == 4000
    assert config.models[0].deployments[0].name == "p/real-model"
    assert config.providers["p"].timeouts.connect == 5.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace("kind: openai", "kind: openai\n    secret: x"), "bad.yaml:5: providers.p.secret: unknown key"),
        (GOOD.replace("kind: openai", "kind: martian"), "bad.yaml:4: providers.p.kind: Input should be"),
        (GOOD + "server:\n  port: seventy\n", "bad.yaml:12: server.port: Input should be a valid integer"),
        (GOOD.replace("provider: p", "provider: q"), "bad.yaml:9: models[0].deployments[0].provider: unknown provider"),
        (GOOD.replace("        model: real-model\n", ""), "bad.yaml:9: models[0].deployments[0].model: required key"),
        ("models: [", "bad.yaml:1: (top level): not valid YAML"),
    ],
)
def test_problems_name_file_line_and_key(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "bad.yaml")
    assert any(str(p).startswith(expected) for p in info.value.problems), info.value.problems


def test_duplicate_model_names_are_refused() -> None:
    text = GOOD + "  - name: m\n    deployments: [{provider: p, model: other}]\n"
    with pytest.raises(ConfigError, match="defined twice"):
        parse_config(text, "dup.yaml")


def test_demo_config_is_valid() -> None:
    config = parse_config(demo_config_text().replace("SIMULATOR_URL", "http://127.0.0.1:1"), "<demo>")
    assert {m.name for m in config.models} >= {"gpt-4o-mini", "text-embedding-3-small"}


def test_a_hung_stream_is_left_within_seconds_by_default_while_whole_answers_keep_the_long_limit() -> None:
    timeouts = parse_config(GOOD, "good.yaml").providers["p"].timeouts
    assert timeouts.head(stream=True) == 10.0  # a provider starts a stream at once: silence means it hangs
    assert timeouts.head(stream=False) == timeouts.total == 600.0  # a whole answer's head comes when it is done
    explicit = parse_config(GOOD.replace("kind: openai", "kind: openai\n    timeouts: {first_byte: 3}"), "g.yaml")
    assert explicit.providers["p"].timeouts.head(stream=True) == explicit.providers["p"].timeouts.head(False) == 3.0


def test_demo_timeouts_fail_over_in_seconds() -> None:
    config = parse_config(demo_config_text().replace("SIMULATOR_URL", "http://127.0.0.1:1"), "<demo>")
    for name, provider in config.providers.items():
        assert provider.timeouts.head(stream=True) <= 10 and provider.timeouts.head(stream=False) <= 10, name
