"""Configuration loading and the pure parts: distributions, vocabulary, corpus, tool arguments, lifespan."""

from __future__ import annotations

import random
import re
import statistics
from pathlib import Path
from typing import Any

import pytest

from sluicegate.providers.simulator import (
    SimulatorConfig,
    create_app,
    demo_simulator_config,
    load_simulator_config,
    parse_simulator_config,
)
from sluicegate.providers.simulator.config import Fixed, LogNormal, TokenRange, Uniform
from sluicegate.providers.simulator.seeded import SplitMix64, seeded_rng
from sluicegate.providers.simulator.text import Corpus, verify_vocabulary
from sluicegate.providers.simulator.tool_args import arguments_for
from sluicegate.tokens import cl100k, count_text

DOCS = Path(__file__).resolve().parents[3] / "docs" / "simulator.md"


def test_the_documented_example_loads(tmp_path: Path) -> None:
    example = re.search(r"```yaml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    assert example, "docs/simulator.md has a YAML example"
    path = tmp_path / "simulator.yaml"
    path.write_text(example.group(1), encoding="utf-8")
    config = load_simulator_config(path)
    assert config.models and any(behaviour.faults for behaviour in config.models.values())


def test_shorthands_and_distributions() -> None:
    config = parse_simulator_config(
        """
seed: 4
default:
  latency_ms: 25
  output_tokens: 12
models:
  a:
    ttft_ms: {dist: uniform, low: 10, high: 20}
    latency_ms: {dist: lognormal, median: 100, p99: 900}
    output_tokens: {min: 3, max: 9}
"""
    )
    assert config.default.latency_ms == Fixed(value=25)
    assert config.default.output_tokens == TokenRange(min=12, max=12)
    assert isinstance(config.models["a"].ttft_ms, Uniform)
    assert config.behaviour_for("unlisted") is config.default
    assert config.models["a"].output_tokens == TokenRange(min=3, max=9)  # its own
    assert config.models["a"].latency_ms == LogNormal(dist="lognormal", median=100, p99=900)
    inherited = parse_simulator_config("default: {latency_ms: 25, context_window: 99}\nmodels: {b: {}}")
    assert inherited.models["b"].latency_ms == Fixed(value=25) and inherited.models["b"].context_window == 99
    assert config.default.instant is False and SimulatorConfig().default.instant is True


def test_errors_name_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "sim.yaml"
    path.write_text(
        "seed: 1\nmodels:\n  a:\n    ttft_ms: {dist: uniform, low: 9, high: 2}\n"
        "    faults:\n      - type: reset\n        after_tokenz: 3\n  b:\n    colour: red\n",
        encoding="utf-8",
    )
    with pytest.raises(ValueError) as info:
        load_simulator_config(path)
    lines = str(info.value).splitlines()
    assert f"{path}:4: models.a.ttft_ms: Value error, high must be >= low" in lines
    assert f"{path}:7: models.a.faults[0].after_tokenz: unknown key" in lines
    assert f"{path}:9: models.b.colour: unknown key" in lines
    with pytest.raises(ValueError, match="not valid YAML"):
        parse_simulator_config("models: [unclosed", "x.yaml")
    with pytest.raises(ValueError, match="cannot read file"):
        load_simulator_config(tmp_path / "missing.yaml")


def test_demo_config_feels_real() -> None:
    config = demo_simulator_config()
    assert not config.default.instant and config.default.tokens_per_second > 0
    assert config.models


def test_distributions_sample_their_shape() -> None:
    rng = random.Random(0)
    uniform = Uniform(dist="uniform", low=30, high=80)
    assert all(30 <= uniform.sample(rng) <= 80 for _ in range(1000))
    lognormal = LogNormal(dist="lognormal", median=100, p99=400)
    samples = sorted(lognormal.sample(rng) for _ in range(20000))
    assert statistics.median(samples) == pytest.approx(100, rel=0.05)
    assert samples[int(len(samples) * 0.99)] == pytest.approx(400, rel=0.1)


def test_vocabulary_pieces_are_single_tokens() -> None:
    verify_vocabulary(cl100k())

    class Splitting:
        def encode_ordinary(self, text: str) -> list[int]:
            return [1, 2] if text == " river" else [1]

    with pytest.raises(ValueError, match="' river'"):
        verify_vocabulary(Splitting())  # type: ignore[arg-type]


def test_corpus_replies_have_exactly_the_requested_tokens() -> None:
    corpus = Corpus(seed=9, size=500)  # small, so long replies wrap around
    rng = random.Random(1)
    for count in [*range(0, 40), 499, 500, 501, 1777]:
        pieces = corpus.reply(rng, count)
        text = "".join(pieces)
        assert len(pieces) == count == count_text(text)
        if count:
            assert text[0].isupper() and not text.startswith(" ")
        if count > 2:
            assert text.endswith(".") and ".." not in text
    assert Corpus(seed=9).reply(random.Random(5), 30) == Corpus(seed=9).reply(random.Random(5), 30)


def test_seeded_generators_are_deterministic_and_uniform() -> None:
    assert seeded_rng(1, "m", [{"a": 1, "b": 2}]).random() == seeded_rng(1, "m", [{"b": 2, "a": 1}]).random()
    assert seeded_rng(1, "m", []).random() != seeded_rng(2, "m", []).random()
    rng = SplitMix64(42)
    counts = [0] * 6
    for _ in range(60000):
        counts[rng.randint(0, 5)] += 1
    assert all(9500 < count < 10500 for count in counts)
    assert rng.getrandbits(130) < 2**130 and isinstance(rng.lognormvariate(0, 1), float)


SCHEMAS: list[dict[str, Any]] = [
    {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
    {
        "type": "object",
        "properties": {
            "when": {"type": "string", "format": "date-time"},
            "count": {"type": "integer", "exclusiveMinimum": 10, "exclusiveMaximum": 13},
            "ratio": {"type": "number", "minimum": 0.5, "maximum": 0.9},
            "mode": {"const": "fast"},
            "maybe": {"type": ["null", "string"], "maxLength": 2},
            "either": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
            "grid": {"type": "array", "items": {"type": "array", "items": {"type": "boolean"}}, "minItems": 3},
            "person": {"$ref": "#/$defs/person"},
            "merged": {"allOf": [{"properties": {"x": {"type": "integer"}}, "required": ["x"]}]},
        },
        "required": ["when", "count", "ratio", "mode", "maybe", "either", "grid", "person", "merged"],
        "additionalProperties": False,
        "$defs": {
            "person": {
                "type": "object",
                "properties": {"name": {"type": "string", "minLength": 12}, "email": {"format": "email"}},
                "required": ["name", "email"],
            }
        },
    },
    {"type": "object", "properties": {}},
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_tool_arguments_validate_against_their_schema(schema: dict[str, Any]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    for seed in range(20):
        arguments = arguments_for(schema, random.Random(seed))
        jsonschema.validate(arguments, schema)
        assert set(arguments) == set(schema.get("required", []))
    assert arguments_for(None, random.Random(0)) == {}


async def test_lifespan_startup_and_shutdown_complete() -> None:
    app = create_app(SimulatorConfig())
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
