"""The typed, strict configuration: unknown keys are refused and every value is checked at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sluicegate.cache.config import ResponseCacheConfig
from sluicegate.classify.config import TASK_TYPES, ClassifyConfig, ServesConfig
from sluicegate.classify.tiers import capability
from sluicegate.guard.config import GUARD_STAGES, GuardrailsConfig
from sluicegate.guard.output_config import OutputGuardConfig
from sluicegate.models.config import ModelHostConfig, ProviderEmbeddings
from sluicegate.routing.config import GroupRoutingConfig, RoutingConfig
from sluicegate.state.config import BudgetsConfig, LimitsConfig

# One adapter per provider API family (providers/<family>/); see docs/providers.md.
ProviderKind = Literal["openai", "openai_compatible", "anthropic", "gemini", "bedrock", "azure"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


STREAM_FIRST_BYTE = 10.0  # a provider that has not started a stream by then is taken as hung: fail over


class Timeouts(_Strict):
    """Seconds. `first_byte` bounds the wait for the response head (and a stream's first event);
    `idle` bounds the gap between stream events; `total` bounds the whole call.

    Unset, `first_byte` is 10 s for a stream (a provider starts one at once, so silence means it hangs) and
    `total` for a whole call, whose head a provider sends only once the whole answer is generated."""

    connect: float = Field(5.0, gt=0)
    first_byte: float | None = Field(None, gt=0)
    idle: float = Field(60.0, gt=0)
    total: float = Field(600.0, gt=0)
    first_token: float | None = Field(None, gt=0)  # streams: first content token (default: first_byte)

    def head(self, stream: bool) -> float:
        """Seconds to wait for the response head (and, for a stream, its first event)."""
        if self.first_byte is not None:
            return self.first_byte
        return min(STREAM_FIRST_BYTE, self.total) if stream else self.total


class ProviderConfig(_Strict):
    """How to reach one provider endpoint. Credentials are named by environment variable, never written."""

    kind: ProviderKind
    base_url: str = Field(pattern=r"^https?://")
    api_key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    headers: dict[str, str] = Field(default_factory=dict)
    timeouts: Timeouts = Timeouts()
    max_connections: int = Field(512, ge=1)
    # Offer HTTP/2 by ALPN (https only): calls in flight share connections instead of one socket each.
    http2: bool = False
    # Request parameters this provider cannot honour: dropped (documented per family) or refused with a 400.
    unsupported_params: Literal["drop", "refuse"] = "drop"
    # openai_compatible: a known server's quirks (providers/openai/quirks.py)
    quirks: Literal["openai", "vllm", "ollama", "groq", "together", "mistral", "deepseek", "openrouter"] | None = None
    anthropic_version: str = "2023-06-01"  # anthropic: the anthropic-version header
    api_version: str = "2024-10-21"  # azure: the api-version query parameter
    azure_auth: Literal["api_key", "bearer"] = "api_key"  # azure: api-key header or an Entra ID bearer token
    aws_region: str | None = Field(None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")  # bedrock: the signing region
    aws_access_key_id_env: str = Field("AWS_ACCESS_KEY_ID", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    aws_secret_access_key_env: str = Field("AWS_SECRET_ACCESS_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    aws_session_token_env: str = Field("AWS_SESSION_TOKEN", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    # The way out (providers/egress.py): an http:// proxy for CONNECT tunnels, or "none" to ignore
    # HTTPS_PROXY/HTTP_PROXY; default: those variables and NO_PROXY. Proxy credentials belong in them.
    proxy: str | None = None
    ca_file: str | None = None  # PEM bundle trusted instead of the system's (a private CA, a TLS-inspecting proxy)
    client_cert: str | None = None  # PEM client certificate for mutual TLS (with its key, or see client_key)
    client_key: str | None = None

    @model_validator(mode="after")
    def _egress_settings(self) -> ProviderConfig:
        if self.proxy is not None and self.proxy.lower() != "none":
            parts = urlsplit(self.proxy if "://" in self.proxy else f"http://{self.proxy}")
            if parts.scheme != "http" or not parts.hostname:
                raise ValueError("proxy must be an http://host:port URL (the tunnel is CONNECT), or 'none'")
            if parts.username or parts.password:
                raise ValueError("proxy must not hold credentials: set them in HTTPS_PROXY / HTTP_PROXY instead")
        for name in ("ca_file", "client_cert", "client_key"):
            path = getattr(self, name)
            if path is not None and not os.path.isfile(path):
                raise ValueError(f"{name}: no such file: {path}")
        if self.client_key is not None and self.client_cert is None:
            raise ValueError("client_key needs client_cert")
        return self

    @model_validator(mode="after")
    def _http2_over_tls(self) -> ProviderConfig:
        if self.http2 and not self.base_url.startswith("https://"):
            raise ValueError("http2 is negotiated by TLS (ALPN): it needs an https:// base_url")
        return self

    @model_validator(mode="after")
    def _bedrock_region_known(self) -> ProviderConfig:
        host = self.base_url.split("://", 1)[1].split("/", 1)[0]
        if self.kind == "bedrock" and self.aws_region is None and not host.startswith("bedrock-runtime."):
            raise ValueError("a bedrock provider needs aws_region when its base_url does not name the region")
        return self


class PriceConfig(_Strict):
    """US dollars per million tokens; overrides the shipped price table for one deployment."""

    input: Decimal = Field(ge=0)
    output: Decimal = Field(ge=0)
    cached_input: Decimal | None = Field(None, ge=0)
    cache_write: Decimal | None = Field(None, ge=0)


class DeploymentConfig(_Strict):
    """One concrete model at one provider that can serve a logical model name."""

    provider: str
    model: str
    id: str | None = None  # defaults to "<provider>/<model>"
    weight: float = Field(1.0, gt=0)
    region: str | None = None
    price: PriceConfig | None = None  # default: the shipped price table, looked up by `model`
    capabilities: list[str] = Field(default_factory=list)  # vision, tools, long_context, reasoning, code, ...
    context_window: int | None = Field(None, ge=1)  # prompt + output tokens; None: not checked
    max_output_tokens: int | None = Field(None, ge=1)
    rpm: int | None = Field(None, ge=1)  # the upstream's own limits: enforced exactly, and used by usage routing
    tpm: int | None = Field(None, ge=1)
    latency_target_ms: float | None = Field(None, gt=0)  # also the slow-call threshold of its breaker
    timeouts: Timeouts | None = None  # overrides the provider's timeouts for this deployment
    unsupported_params: Literal["drop", "refuse"] | None = None  # overrides the provider's policy

    @property
    def name(self) -> str:
        return self.id or f"{self.provider}/{self.model}"


class ModelGroupConfig(_Strict):
    """A logical model name clients ask for, and the deployments behind it; or, with `routing.strategy:
    auto`, a pool of other groups among which each request gets the cheapest that covers it."""

    name: str = Field(min_length=1)
    kind: Literal["chat", "embedding"] = "chat"
    deployments: list[DeploymentConfig] = Field(default_factory=list)
    routing: GroupRoutingConfig = GroupRoutingConfig()
    # For the `auto` route: the group's tier (one of `classify.tiers`; default: the shipped tier of its first
    # deployment's model name) and what it serves well (default: every task type, up to its tier's share).
    tier: str | None = Field(None, min_length=1, max_length=32)
    serves: ServesConfig | None = None
    pool: list[str] = Field(default_factory=list)  # strategy auto: the groups it chooses among

    @model_validator(mode="after")
    def _deployments_or_pool(self) -> ModelGroupConfig:
        if self.routing.strategy == "auto":
            if not self.pool:
                raise ValueError("a group with strategy auto needs a pool: the model groups it chooses among")
            if self.deployments:
                raise ValueError("a group with strategy auto has a pool of groups, not deployments of its own")
            if self.kind != "chat":
                raise ValueError("strategy auto serves chat models only")
        else:
            if not self.deployments:
                raise ValueError("a model group needs at least one deployment (or strategy auto and a pool)")
            if self.pool:
                raise ValueError("pool is for groups with strategy auto")
        return self


class AccessLogConfig(_Strict):
    enabled: bool = True
    path: str = "-"  # "-" is standard output


class AdminApiConfig(_Strict):
    """The admin API under /admin/."""

    max_body_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)
    # /admin/docs and /admin/openapi.json without a key (they list every endpoint and field, no data)
    public_docs: bool = False


class ResponsesConfig(_Strict):
    """The Responses API's stored responses (`previous_response_id`, `GET /v1/responses/{id}`): kept in the
    durable store, per tenant, for `ttl_days`. Off unless `store: true`: a stored response holds the prompt."""

    store: bool = False
    ttl_days: float = Field(30.0, gt=0, le=3650)


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(4000, ge=0, le=65535)
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    # Gateway processes on the port (`serve --workers`); above 1 they share limits and budgets through Redis,
    # so `redis.url` must be set (docs/configuration.md).
    workers: int = Field(1, ge=1, le=256)
    master_key_env: str = Field("SLUICEGATE_MASTER_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    graceful_shutdown_seconds: float = Field(30.0, ge=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"  # the gateway's own log (--log-level)
    log_format: Literal["human", "json"] = "human"  # one JSON object a line with "json" (--log-format)
    access_log: AccessLogConfig = AccessLogConfig()
    # Client connections (docs/security.md). Seconds from accept, or from a kept-alive connection's first new
    # byte, until a request's headers are complete; missed: the connection is closed.
    header_timeout_seconds: float = Field(10.0, gt=0, le=3600)
    # While a request body is read: the longest silence between its bytes, and the longest it may take in
    # all; missed: 408.
    body_idle_timeout_seconds: float = Field(30.0, gt=0, le=3600)
    body_timeout_seconds: float = Field(120.0, gt=0, le=86400)
    keep_alive_seconds: int = Field(65, ge=1, le=3600)  # idle between requests (above common LBs' 60 s)
    # The longest a client may leave the answer untaken while its socket buffer is full; missed: dropped.
    send_timeout_seconds: float = Field(60.0, gt=0, le=3600)
    max_header_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)  # request line and headers; 431
    # Open client connections: at the cap the longest-idle connection is closed to make room, and a new one
    # is refused only when every connection is serving a request. Lowered at start-up to fit the open-file
    # limit. Per address: behind a proxy or load balancer every client shares its address, so raise it or
    # set it to null there.
    max_connections: int = Field(10_000, ge=1, le=10_000_000)
    max_connections_per_address: int | None = Field(1_000, ge=1, le=10_000_000)
    admin: AdminApiConfig = AdminApiConfig()


STAGES_PACKAGE = "sluicegate.pipeline.stages"


def known_stages() -> list[str]:
    """The optional stages this installation has: one module each in `sluicegate.pipeline.stages`, found
    by file name so that checking a configuration imports none of them."""
    folder = Path(__file__).resolve().parent.parent.joinpath(*STAGES_PACKAGE.split(".")[1:])
    return sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))


class PipelineConfig(_Strict):
    """The optional stages, by name, in the order they run within their place on the request path (each
    stage module says where: before admission, after the meter, or after the record). A stage not listed is
    neither constructed nor imported."""

    stages: list[str] = Field(default_factory=list)

    @field_validator("stages")
    @classmethod
    def _known_once(cls, names: list[str]) -> list[str]:
        known = known_stages()
        seen: set[str] = set()
        for name in names:
            if name not in known:
                raise ValueError(f"unknown stage '{name}' (expected one of: {', '.join(known)})")
            if name in seen:
                raise ValueError(f"stage '{name}' is listed twice")
            seen.add(name)
        return names


class CaptureConfig(_Strict):
    """A sampled capture of chat requests for `sluicegate replay` (personal data and secrets redacted)."""

    path: str = ".sluicegate/capture.jsonl"
    share: float = Field(0.01, gt=0, le=1)
    max_bytes: int = Field(64 * 1024 * 1024, ge=1024)  # then the file is rotated
    keep: int = Field(3, ge=0, le=100)  # rotated files kept
    redact: bool = True
    max_queued: int = Field(10_000, ge=1)  # requests waiting for the writer; beyond, dropped


class StoreConfig(_Strict):
    """Durable records (keys, teams, ledger). Relative paths are resolved against the working directory."""

    database_url: str = "sqlite+aiosqlite:///.sluicegate/sluicegate.db"  # env SLUICEGATE_DATABASE_URL wins
    db_schema: str | None = Field(None, pattern=r"^[a-z_][a-z0-9_]*$")  # PostgreSQL only: the search_path
    spool_dir: str = ".sluicegate/spool"
    spool_fsync: Literal["always", "interval", "never"] = "interval"
    spool_fsync_interval_seconds: float = Field(1.0, gt=0)
    key_cache_ttl_seconds: float = Field(4.0, gt=0, le=3600)
    key_cache_max_entries: int = Field(100_000, ge=16)
    # While the store is away, a cached key is served this long past its TTL (revocations still arrive over
    # Redis); keys not in the cache are refused at once with 503 `auth_unavailable`.
    key_cache_max_stale_seconds: float = Field(300.0, ge=0)
    ledger_batch_size: int = Field(100, ge=1, le=10_000)  # small batches keep event-loop pauses short
    # SQLite on Linux: the niceness of the thread checkpointing the ledger's write-ahead log, so requests
    # come first on a busy core (0 = same as requests). The rows are safe in the spool whatever it is.
    ledger_writer_nice: int = Field(10, ge=0, le=19)
    timeout_seconds: float = Field(5.0, gt=0)
    # Under this much free space on the spool's disk (or while a record waits for the spool), the spool is
    # under pressure: "refuse" answers new requests 503 ledger_unavailable (nothing served goes unrecorded),
    # "serve" keeps serving (records wait in memory, bounded, and die with the process).
    spool_reserve_bytes: int = Field(1 << 20, ge=0)
    spool_full_policy: Literal["refuse", "serve"] = "refuse"


class AlertWebhook(_Strict):
    url: str = Field(pattern=r"^https?://")
    format: Literal["slack", "json"] = "slack"  # Slack-compatible {"text": ...}, or the alert as JSON
    timeout_seconds: float = Field(5.0, gt=0, le=60)


class ForecastAlert(_Strict):
    burn_window_hours: float = Field(24.0, gt=0)  # the burn rate is the spend over this much recent time
    min_elapsed_hours: float = Field(1.0, ge=0)  # no forecast from less history than this


SpikeEntity = Literal["team", "user", "key", "feature", "model", "tenant"]
_SPIKE_ENTITIES: tuple[SpikeEntity, ...] = ("team", "user", "key", "feature")


class CostSpikeAlert(_Strict):
    entities: list[SpikeEntity] = Field(default_factory=lambda: list(_SPIKE_ENTITIES))
    window_minutes: int = Field(60, ge=5, le=24 * 60)
    baseline_hours: int = Field(24, ge=1, le=24 * 30)
    factor: float = Field(3.0, gt=1)  # the window's rate over the baseline's
    share: float = Field(0.3, gt=0, le=1)  # an entity with this share of all the window's spend
    min_usd: float = Field(1.0, ge=0)  # smaller spend in the window is never a spike


class ObjectiveConfig(_Strict):
    group: str = Field(min_length=1)
    error_rate: float | None = Field(None, gt=0, lt=1)
    p99_seconds: float | None = Field(None, gt=0)
    min_requests: int = Field(20, ge=1)  # per check interval; fewer: not judged


class AlertsConfig(_Strict):
    """Operational alerts to webhooks (docs/alerts.md)."""

    webhooks: list[AlertWebhook] = Field(default_factory=list)
    dashboard_url: str = Field("", pattern=r"^(https?://.*)?$")  # the gateway's public base URL, for links
    check_seconds: float = Field(60.0, ge=1, le=3600)
    max_per_minute: int = Field(20, ge=1, le=10_000)
    repeat_hours: float = Field(24.0, gt=0)  # a condition still holding is alerted again after this
    forecast: ForecastAlert = ForecastAlert()
    cost_spike: CostSpikeAlert = CostSpikeAlert()
    objectives: list[ObjectiveConfig] = Field(default_factory=list)
    spool_pressure: bool = True


class MetricsConfig(_Strict):
    """Prometheus metrics (docs/metrics.md)."""

    # distinct values of a label that can grow with the deployment (team, tenant): past it, `other`
    max_label_values: int = Field(50, ge=1, le=10_000)


class AuditConfig(_Strict):
    """The audit log (docs/audit.md): security-relevant events in the database, one hash chain per instance."""

    enabled: bool = True
    retention_days: float = Field(90.0, gt=0)
    # the environment variable holding the HMAC key that signs the chain and its checkpoints (unset: the chain
    # is plain SHA-256, which shows accidents and naive edits, not a forger with database access)
    key_env: str = Field("SLUICEGATE_AUDIT_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    max_queue: int = Field(10_000, ge=100, le=1_000_000)  # records waiting for the database; beyond, dropped


class RedisConfig(_Strict):
    """Shared Redis (revocation pub/sub here; the budgets and rate limits use it too)."""

    # redis:// or rediss:// (one Redis), redis+cluster://host:port[,host:port...] (Redis Cluster),
    # redis+sentinel://host:port[,host:port...]/service[/db] (the primary a set of Sentinels names)
    url: str | None = Field(
        None, pattern=r"^(rediss?://.*|rediss?\+cluster://[^/]+:\d+(/0?)?|rediss?\+sentinel://[^/]+:\d+/[^/]+(/\d+)?)$"
    )


class TracingConfig(_Strict):
    """OpenTelemetry traces over OTLP/HTTP (needs the `tracing` extra); absent: no tracing, no cost."""

    endpoint: str = Field(pattern=r"^https?://", max_length=2000)  # e.g. http://127.0.0.1:4318/v1/traces
    sample_ratio: float = Field(0.1, ge=0, le=1)  # of the requests that start a trace here (a client's flag wins)
    service_name: str = Field("sluicegate", min_length=1, max_length=200)
    export_timeout_seconds: float = Field(5.0, gt=0, le=120)
    export_interval_seconds: float = Field(2.0, gt=0, le=300)
    max_queue: int = Field(8192, ge=64, le=1_000_000)  # spans waiting for export; beyond it new ones are dropped


class GatewayConfig(_Strict):
    server: ServerConfig = ServerConfig()
    store: StoreConfig = StoreConfig()
    redis: RedisConfig = RedisConfig()
    audit: AuditConfig = AuditConfig()
    metrics: MetricsConfig = MetricsConfig()
    alerts: AlertsConfig = AlertsConfig()
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    models: list[ModelGroupConfig] = Field(default_factory=list)
    routing: RoutingConfig = RoutingConfig()
    budgets: BudgetsConfig = BudgetsConfig()
    limits: LimitsConfig = LimitsConfig()
    pipeline: PipelineConfig = PipelineConfig()
    model_host: ModelHostConfig | None = None  # small CPU models for the features that need them
    classify: ClassifyConfig = ClassifyConfig()  # tiers and the classifier of the `auto` route
    capture: CaptureConfig | None = None  # sampled requests for `sluicegate replay`; off by default
    output_guard: OutputGuardConfig | None = None  # the `output_guard` stage's settings (defaults if absent)
    response_cache: ResponseCacheConfig | None = None  # the `response_cache` stage's settings
    tracing: TracingConfig | None = None  # OpenTelemetry spans over OTLP (docs/tracing.md)
    responses: ResponsesConfig = ResponsesConfig()  # the Responses API's stored responses
    guardrails: GuardrailsConfig | None = None  # the `firewall` stage's levels, policies and rules

    def reference_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Cross-references a field validator cannot see: (path, message) for each broken one."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        kinds: dict[str, str] = {}
        for i, group in enumerate(self.models):
            if group.name in kinds:
                problems.append((("models", i, "name"), f"model name '{group.name}' is defined twice"))
            kinds.setdefault(group.name, group.kind)
            for j, deployment in enumerate(group.deployments):
                if deployment.provider not in self.providers:
                    known = ", ".join(sorted(self.providers)) or "none defined"
                    problems.append(
                        (
                            ("models", i, "deployments", j, "provider"),
                            f"unknown provider '{deployment.provider}' (expected one of: {known})",
                        )
                    )
        for i, group in enumerate(self.models):
            routing = group.routing
            for j, name in enumerate(routing.fallbacks):
                problem = _group_problem(name, group.kind, kinds, "fallback")
                if problem:
                    problems.append((("models", i, "routing", "fallbacks", j), problem))
            for error_class, names in routing.fallbacks_by_error.items():
                for j, name in enumerate(names):
                    problem = _group_problem(name, group.kind, kinds, "fallback")
                    if problem:
                        problems.append((("models", i, "routing", "fallbacks_by_error", error_class, j), problem))
        problems += self._auto_problems(kinds)
        downgrade = self.budgets.downgrade
        if downgrade is not None:
            problem = _group_problem(downgrade.to, "chat", kinds, "downgrade target")
            if problem:
                problems.append((("budgets", "downgrade", "to"), problem))
        host = self.model_host
        if host is not None and isinstance(host.embeddings, ProviderEmbeddings):
            problem = _group_problem(host.embeddings.group, "embedding", kinds, "model host")
            if problem:
                problems.append((("model_host", "embeddings", "group"), problem))
        problems.extend(self._response_cache_problems(kinds))
        if self.output_guard is not None and "output_guard" not in self.pipeline.stages:
            problems.append((("output_guard",), "output_guard is configured but not in pipeline.stages"))
        if self.guardrails is not None and not any(name in self.pipeline.stages for name in GUARD_STAGES):
            problems.append((("guardrails",), "guardrails is configured but the firewall is not in pipeline.stages"))
        stages = self.pipeline.stages
        if "firewall" in stages:
            for later in ("response_cache", "output_guard"):
                # a cached answer would skip the firewall; the output guard's own request redaction would run first
                if later in stages and stages.index(later) < stages.index("firewall"):
                    problems.append(
                        (("pipeline", "stages"), f"firewall must be listed before {later} (it screens requests first)")
                    )
        return problems

    def _response_cache_problems(self, kinds: Mapping[str, str]) -> list[tuple[tuple[str | int, ...], str]]:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        cache = self.response_cache
        listed = "response_cache" in self.pipeline.stages
        if cache is None:
            return problems
        if not listed:
            problems.append((("response_cache",), "response_cache is configured but not in pipeline.stages"))
        for name in cache.groups:
            problem = _group_problem(name, "chat", kinds, "response cache")
            if problem:
                problems.append((("response_cache", "groups", name), problem))
        if cache.store == "redis" and self.redis.url is None:
            problems.append((("response_cache", "store"), "store: redis needs redis.url"))
        return problems

    def _auto_problems(self, kinds: Mapping[str, str]) -> list[tuple[tuple[str | int, ...], str]]:
        """Tiers named, and every `auto` pool able to serve every task type with groups it can rank."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        if self.classify.classifier == "learned" and self.model_host is None:
            problems.append(
                (("classify", "classifier"), "the learned classifier needs the model host: add a `model_host` section")
            )
        shadow = self.classify.shadow
        if shadow.share > 0 and shadow.classifier == "learned" and self.model_host is None:
            problems.append(
                (("classify", "shadow", "classifier"), "a learned shadow classifier needs a `model_host` section")
            )
        for j, name in enumerate(shadow.pool or []):
            problem = _group_problem(name, "chat", kinds, "shadow pool")
            if problem:
                problems.append((("classify", "shadow", "pool", j), problem))
        tiers = self.classify.tiers
        groups = {group.name: group for group in self.models}
        for i, group in enumerate(self.models):
            if group.tier is not None and group.tier not in tiers:
                problems.append(
                    (("models", i, "tier"), f"unknown tier '{group.tier}' (expected one of: {', '.join(tiers)})")
                )
            if group.routing.strategy != "auto":
                continue
            served: set[str] = set()
            for j, name in enumerate(group.pool):
                where: tuple[str | int, ...] = ("models", i, "pool", j)
                member = groups.get(name)
                if member is None or member.kind != "chat":
                    problems.append((where, _group_problem(name, "chat", kinds, "pool") or ""))
                    continue
                if member.routing.strategy == "auto":
                    problems.append((where, f"pool model '{name}' is itself an auto group"))
                    continue
                serves = member.serves
                found = capability(
                    member.tier,
                    serves.tasks if serves is not None else None,
                    serves.complexity if serves is not None else None,
                    [d.model for d in member.deployments],
                    tiers,
                )
                if found is None:
                    if member.tier is None:
                        problems.append(
                            (
                                where,
                                f"pool model '{name}' has no tier: its models are not in the shipped table, so set "
                                f"`tier` on it (one of: {', '.join(tiers)})",
                            )
                        )
                    continue
                served |= found.tasks
            missing = [task for task in TASK_TYPES if task not in served]
            if missing and not any(p[0][:3] == ("models", i, "pool") for p in problems):
                problems.append(
                    (
                        ("models", i, "pool"),
                        f"no model in the pool of '{group.name}' serves: {', '.join(missing)} "
                        "(add one whose `serves.tasks` names them)",
                    )
                )
        return problems

    def missing_secrets(self, environ: Mapping[str, str]) -> list[tuple[tuple[str | int, ...], str]]:
        """(path, message) for each provider credential named here that the environment does not hold."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for name, provider in self.providers.items():
            if provider.api_key_env is not None:
                if not environ.get(provider.api_key_env):
                    problems.append(
                        (
                            ("providers", name, "api_key_env"),
                            f"provider '{name}': the environment variable {provider.api_key_env} is not set",
                        )
                    )
            elif provider.kind == "bedrock" and "authorization" not in {h.lower() for h in provider.headers}:
                for field, variable in (
                    ("aws_access_key_id_env", provider.aws_access_key_id_env),
                    ("aws_secret_access_key_env", provider.aws_secret_access_key_env),
                ):
                    if not environ.get(variable):
                        problems.append(
                            (
                                ("providers", name, field),
                                f"provider '{name}': the environment variable {variable} is not set "
                                "(AWS credentials for SigV4)",
                            )
                        )
        return problems


def _group_problem(name: str, kind: str, kinds: Mapping[str, str], role: str) -> str | None:
    found = kinds.get(name)
    if found is None:
        known = ", ".join(sorted(n for n, k in kinds.items() if k == kind)) or "none defined"
        return f"unknown {role} model '{name}' (expected one of: {known})"
    if found != kind:
        return f"{role} model '{name}' is a {found} model, not a {kind} model"
    return None
