"""The simulator's typed, strict configuration: per-model behaviour, latency distributions, fault rules."""

from __future__ import annotations

import math
import random
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

# z-score of the 99th percentile of a standard normal: lognormal sigma = ln(p99 / median) / Z99.
_Z99 = 2.326347874


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Fixed(_Strict):
    """Always the same value (milliseconds)."""

    dist: Literal["fixed"] = "fixed"
    value: float = Field(default=0.0, ge=0)

    def sample(self, rng: random.Random) -> float:
        return self.value

    @property
    def always_zero(self) -> bool:
        return self.value == 0


class Uniform(_Strict):
    """Uniform between `low` and `high` (milliseconds)."""

    dist: Literal["uniform"]
    low: float = Field(ge=0)
    high: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.high < self.low:
            raise ValueError("high must be >= low")
        return self

    def sample(self, rng: random.Random) -> float:
        return rng.uniform(self.low, self.high)

    @property
    def always_zero(self) -> bool:
        return self.high == 0


class LogNormal(_Strict):
    """Lognormal given by its median and 99th percentile (milliseconds): the usual shape of API latency."""

    dist: Literal["lognormal"]
    median: float = Field(gt=0)
    p99: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> LogNormal:
        if self.p99 < self.median:
            raise ValueError("p99 must be >= median")
        return self

    def sample(self, rng: random.Random) -> float:
        sigma = math.log(self.p99 / self.median) / _Z99
        return rng.lognormvariate(math.log(self.median), sigma)

    @property
    def always_zero(self) -> bool:
        return False


def _number_as_fixed(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"dist": "fixed", "value": value}
    return value


Distribution = Annotated[Fixed | Uniform | LogNormal, Field(discriminator="dist"), BeforeValidator(_number_as_fixed)]


class TokenRange(_Strict):
    """How many tokens a reply has: drawn uniformly from `min`..`max` inclusive."""

    min: int = Field(ge=0)
    max: int = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> TokenRange:
        if self.max < self.min:
            raise ValueError("max must be >= min")
        return self


def _number_as_range(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return {"min": value, "max": value}
    return value


OutputTokens = Annotated[TokenRange, BeforeValidator(_number_as_range)]

FaultType = Literal["rate_limit", "server_error", "unavailable", "hang", "malformed_sse", "reset", "outage", "slow"]
_MID_STREAM = frozenset({"hang", "malformed_sse", "reset"})


class FaultRule(_Strict):
    """One way for a request to go wrong, drawn with `probability` per request."""

    type: FaultType
    probability: float = Field(default=1.0, ge=0, le=1)
    after_tokens: int | None = Field(default=None, ge=0)
    retry_after: float | None = Field(default=None, ge=0)
    duration_s: float | None = Field(default=None, gt=0)
    factor: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _knobs_fit_type(self) -> FaultRule:
        if self.after_tokens is not None and self.type not in _MID_STREAM:
            raise ValueError(f"after_tokens applies only to {sorted(_MID_STREAM)}, not {self.type!r}")
        if self.factor is not None and self.type != "slow":
            raise ValueError(f"factor applies only to 'slow', not {self.type!r}")
        if self.type == "slow" and self.factor is None:
            raise ValueError("a 'slow' fault needs a factor (latency multiplier)")
        return self


ReplyType = Literal["generated", "echo", "fixed", "json", "refusal", "content_filter"]
_REFUSAL = "I'm sorry, but I can't help with that."


class ScriptedReply(_Strict):
    """What a model says instead of its generated text: `echo` (the last user message), `fixed` (`text`),
    `json` (an object valid for the request's JSON schema), `refusal` (`text`, or a stock sentence) or
    `content_filter` (`text`, possibly empty, then the provider's content-filter stop)."""

    type: ReplyType = "generated"
    text: str | None = Field(default=None, max_length=100_000)

    @model_validator(mode="after")
    def _text_fits_type(self) -> ScriptedReply:
        if self.type == "fixed" and self.text is None:
            raise ValueError("a 'fixed' reply needs a text")
        if self.text is not None and self.type not in ("fixed", "refusal", "content_filter"):
            raise ValueError(f"text applies only to 'fixed', 'refusal' and 'content_filter', not {self.type!r}")
        return self

    @property
    def refusal_text(self) -> str:
        return self.text if self.text is not None else _REFUSAL


def _name_as_reply(value: Any) -> Any:
    return {"type": value} if isinstance(value, str) else value


def parse_reply_header(value: str) -> ScriptedReply:
    """The `x-sim-reply` header: a type, or `fixed:<text>` / `refusal:<text>` / `content_filter:<text>`."""
    kind, sep, text = value.partition(":")
    return ScriptedReply.model_validate({"type": kind.strip(), **({"text": text} if sep else {})})


class ModelBehaviour(_Strict):
    """How one simulated model answers. Latencies are in milliseconds."""

    latency_ms: Distribution | None = None
    ttft_ms: Distribution = Fixed()
    tokens_per_second: float = Field(default=0.0, ge=0)
    output_tokens: OutputTokens = TokenRange(min=16, max=64)
    context_window: int = Field(default=128_000, gt=0)
    embedding_dimensions: int = Field(default=1536, gt=0, le=16_384)
    faults: list[FaultRule] = Field(default_factory=list)
    reply: Annotated[ScriptedReply, BeforeValidator(_name_as_reply)] = ScriptedReply()

    @property
    def instant(self) -> bool:
        """True when this model never waits: the hot path skips all timing work."""
        latency_zero = self.latency_ms is None or self.latency_ms.always_zero
        return latency_zero and self.ttft_ms.always_zero and self.tokens_per_second == 0


class SimulatorConfig(_Strict):
    """The whole simulator: a seed for determinism, named models, and `default` for the rest.

    A listed model inherits every key of `default` that it does not set.
    """

    seed: int = 0
    models: dict[str, ModelBehaviour] = Field(default_factory=dict)
    default: ModelBehaviour = ModelBehaviour()
    api_key: str | None = None

    @model_validator(mode="after")
    def _models_inherit_default(self) -> SimulatorConfig:
        """A listed model takes `default` for every key it does not set itself."""
        merged = {
            name: self.default.model_copy(update={key: getattr(own, key) for key in own.model_fields_set})
            for name, own in self.models.items()
        }
        object.__setattr__(self, "models", merged)  # frozen model: set once, here, during validation
        return self

    def behaviour_for(self, model: str) -> ModelBehaviour:
        return self.models.get(model, self.default)


def demo_simulator_config() -> SimulatorConfig:
    """A few models with believable speed, so a demo feels like the real thing."""
    quick = ModelBehaviour(
        ttft_ms=Uniform(dist="uniform", low=30, high=80),
        tokens_per_second=150,
        output_tokens=TokenRange(min=20, max=80),
    )
    large = ModelBehaviour(
        ttft_ms=LogNormal(dist="lognormal", median=120, p99=400),
        tokens_per_second=60,
        output_tokens=TokenRange(min=40, max=160),
    )
    return SimulatorConfig(
        seed=7,
        models={
            "gpt-4o-mini": quick,
            "gpt-4o": large,
            "gpt-4o-eastus": large,  # the demo's second gpt-4o deployment behaves like the first
            "text-embedding-3-small": ModelBehaviour(
                latency_ms=Uniform(dist="uniform", low=10, high=30), embedding_dimensions=1536
            ),
        },
        default=quick,
    )
