"""The simulator's typed, strict configuration: per-model behaviour, latency distributions, fault rules."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

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


class ModelBehaviour(_Strict):
    """How one simulated model answers. Latencies are in milliseconds."""

    latency_ms: Distribution | None = None
    ttft_ms: Distribution = Fixed()
    tokens_per_second: float = Field(default=0.0, ge=0)
    output_tokens: OutputTokens = TokenRange(min=16, max=64)
    context_window: int = Field(default=128_000, gt=0)
    embedding_dimensions: int = Field(default=1536, gt=0, le=16_384)
    faults: list[FaultRule] = Field(default_factory=list)

    @property
    def instant(self) -> bool:
        """True when this model never waits: the hot path skips all timing work."""
        latency_zero = self.latency_ms is None or self.latency_ms.always_zero
        return latency_zero and self.ttft_ms.always_zero and self.tokens_per_second == 0


class SimulatorConfig(_Strict):
    """The whole simulator: a seed for determinism, named models, a default for the rest."""

    seed: int = 0
    models: dict[str, ModelBehaviour] = Field(default_factory=dict)
    default: ModelBehaviour = ModelBehaviour()
    api_key: str | None = None

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
            "text-embedding-3-small": ModelBehaviour(
                latency_ms=Uniform(dist="uniform", low=10, high=30), embedding_dimensions=1536
            ),
        },
        default=quick,
    )


# --- loading from YAML -------------------------------------------------------------------------------

_Loc = tuple[str | int, ...]


def _dotted(loc: _Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _locate(root: yaml.Node | None, loc: tuple[Any, ...]) -> tuple[_Loc, int | None]:
    """Walk pydantic's error location through the YAML tree: the key path as written, and its line.

    Parts that are not in the YAML (pydantic's union tags such as `uniform`) are dropped, except a last
    part, which is the missing or unknown key itself.
    """
    node, path, line = root, [], (root.start_mark.line + 1 if root is not None else None)
    for index, part in enumerate(loc):
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            pair = next((pair for pair in node.value if pair[0].value == part), None)
            if pair is not None:
                line, child = pair[0].start_mark.line + 1, pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is not None:
            node = child
            path.append(part)
        elif index == len(loc) - 1:
            path.append(part)
    return tuple(path), line


def parse_simulator_config(text: str, file: str = "<simulator config>") -> SimulatorConfig:
    """Validate YAML text; every problem is reported as `file:line: key: what was expected`."""
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{file}: not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{file}:1: (top level): expected a mapping")
    try:
        return SimulatorConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            path, line = _locate(root, error["loc"])
            message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
            problems.append(f"{file}:{line}: {_dotted(path)}: {message}")
        raise ValueError("\n".join(problems)) from None


def load_simulator_config(path: str | Path) -> SimulatorConfig:
    """Read and validate a simulator YAML file; raises ValueError naming the file, line and key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read file: {exc.strerror}") from None
    return parse_simulator_config(text, str(path))
