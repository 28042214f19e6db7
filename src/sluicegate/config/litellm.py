"""A LiteLLM proxy configuration -> a Sluicegate one: `model_list` and its `litellm_params`, the router's
strategy, retries, fallbacks and cooldowns, budgets and rate limits where they map; and, line by line, what
does not map. Secrets are never copied: `os.environ/NAME` references become `*_env` settings, and a value
written in the file is reported, to be moved into the environment."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

# LiteLLM provider prefix -> (Sluicegate kind, default base URL, quirks of an openai_compatible server).
_PROVIDERS: dict[str, tuple[str, str | None, str | None]] = {
    "openai": ("openai", "https://api.openai.com/v1", None),
    "text-completion-openai": ("openai", "https://api.openai.com/v1", None),
    "azure": ("azure", None, None),
    "anthropic": ("anthropic", "https://api.anthropic.com", None),
    "gemini": ("gemini", "https://generativelanguage.googleapis.com/v1beta", None),
    "bedrock": ("bedrock", None, None),
    "groq": ("openai_compatible", "https://api.groq.com/openai/v1", "groq"),
    "together_ai": ("openai_compatible", "https://api.together.xyz/v1", "together"),
    "mistral": ("openai_compatible", "https://api.mistral.ai/v1", "mistral"),
    "deepseek": ("openai_compatible", "https://api.deepseek.com/v1", "deepseek"),
    "openrouter": ("openai_compatible", "https://openrouter.ai/api/v1", "openrouter"),
    "ollama": ("openai_compatible", "http://localhost:11434/v1", "ollama"),
    "ollama_chat": ("openai_compatible", "http://localhost:11434/v1", "ollama"),
    "hosted_vllm": ("openai_compatible", None, "vllm"),
    "vllm": ("openai_compatible", None, "vllm"),
}
_KEY_VARIABLES = {
    "openai": "OPENAI_API_KEY",
    "azure": "AZURE_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "groq": "GROQ_API_KEY",
    "together_ai": "TOGETHERAI_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
}
_STRATEGIES = {
    "simple-shuffle": "weighted",
    "least-busy": "least_busy",
    "latency-based-routing": "latency",
    "usage-based-routing": "usage",
    "usage-based-routing-v2": "usage",
    "cost-based-routing": "cost",
}
_PERIODS = {"1d": "daily", "24h": "daily", "7d": "weekly", "1w": "weekly", "30d": "monthly", "1mo": "monthly"}
_ENV = "os.environ/"
# litellm_params that only say where and how to call, and are read below.
_CALL_PARAMS = frozenset(
    {"model", "api_key", "api_base", "api_version", "rpm", "tpm", "weight", "timeout", "stream_timeout"}
    | {"aws_region_name", "aws_access_key_id", "aws_secret_access_key", "aws_session_token"}
    | {"input_cost_per_token", "output_cost_per_token", "max_tokens", "order"}
)


@dataclass
class Conversion:
    config: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # what was not mapped, or needs the operator


def _env_name(value: Any) -> str | None:
    return value[len(_ENV) :] if isinstance(value, str) and value.startswith(_ENV) else None


class _Converter:
    def __init__(self) -> None:
        self.notes: list[str] = []
        self.providers: dict[str, dict[str, Any]] = {}
        self._provider_names: dict[tuple[Any, ...], str] = {}

    def note(self, where: str, message: str) -> None:
        self.notes.append(f"{where}: {message}")

    # -- model_list --------------------------------------------------------------------------------

    def deployment(self, entry: dict[str, Any], where: str) -> tuple[dict[str, Any], str] | None:
        """(deployment, group kind) for one model_list entry, or None when it cannot be served."""
        params = entry.get("litellm_params") or {}
        model = str(params.get("model") or "")
        prefix, _, name = model.partition("/")
        if not name:
            prefix, name = self._inferred_prefix(model), model
        if prefix == "bedrock" and name.startswith(("converse/", "invoke/")):
            name = name.split("/", 1)[1]
        if prefix not in _PROVIDERS:
            self.note(where, f"provider '{prefix or model}' has no Sluicegate family; the deployment is left out")
            return None
        kind, base_url, quirks = _PROVIDERS[prefix]
        api_base = params.get("api_base")
        if isinstance(api_base, str) and api_base:
            base_url = api_base.rstrip("/")
            if kind == "openai" and "api.openai.com" not in base_url:
                kind, quirks = "openai_compatible", None  # an OpenAI-compatible server at its own address
                prefix = "openai-compatible"
            if quirks == "ollama" and not base_url.endswith("/v1"):
                base_url += "/v1"  # LiteLLM calls Ollama's own API; Sluicegate its OpenAI-compatible one
        provider: dict[str, Any] = {"kind": kind}
        if kind == "bedrock":
            region = params.get("aws_region_name")
            if not isinstance(region, str) or _env_name(region):
                self.note(where, "aws_region_name is needed as a value for Bedrock; set aws_region")
                region = "us-east-1"
            provider["aws_region"] = region
            base_url = base_url or f"https://bedrock-runtime.{region}.amazonaws.com"
            for param, setting in (
                ("aws_access_key_id", "aws_access_key_id_env"),
                ("aws_secret_access_key", "aws_secret_access_key_env"),
                ("aws_session_token", "aws_session_token_env"),
            ):
                variable = self._secret(params.get(param), f"{where}.litellm_params.{param}", None)
                if variable:
                    provider[setting] = variable
        if not base_url:
            self.note(where, f"a {prefix} deployment needs api_base; the deployment is left out")
            return None
        provider["base_url"] = base_url
        if kind == "azure" and params.get("api_version"):
            provider["api_version"] = str(params["api_version"])
        if quirks:
            provider["quirks"] = quirks
        if kind != "bedrock":
            key_where = f"{where}.litellm_params.api_key"
            variable = self._secret(params.get("api_key"), key_where, _KEY_VARIABLES.get(prefix))

            if variable:
                provider["api_key_env"] = variable
        timeouts = {}
        if isinstance(params.get("timeout"), int | float):
            timeouts["total"] = float(params["timeout"])
        if isinstance(params.get("stream_timeout"), int | float):
            timeouts["first_byte"] = float(params["stream_timeout"])
        if timeouts:
            provider["timeouts"] = timeouts
        deployment: dict[str, Any] = {"provider": self._provider(provider, prefix), "model": name}
        for param in ("rpm", "tpm"):
            if isinstance(params.get(param), int) and params[param] > 0:
                deployment[param] = params[param]
        if isinstance(params.get("weight"), int | float) and params["weight"] > 0:
            deployment["weight"] = params["weight"]
        if isinstance(params.get("max_tokens"), int) and params["max_tokens"] > 0:
            deployment["max_output_tokens"] = params["max_tokens"]
        price = self._price(params)
        if price:
            deployment["price"] = price
        for param in sorted(set(params) - _CALL_PARAMS):
            self.note(where, f"litellm_params.{param} is not mapped")
        info = entry.get("model_info") or {}
        group_kind = "embedding" if info.get("mode") == "embedding" or "embed" in name.lower() else "chat"
        if info.get("id"):
            deployment["id"] = str(info["id"])
        return deployment, group_kind

    @staticmethod
    def _inferred_prefix(model: str) -> str:
        """The provider LiteLLM infers for a model named without one."""
        lowered = model.lower()
        if lowered.startswith(("gpt-", "o1", "o3", "o4", "text-embedding-", "chatgpt")):
            return "openai"
        if lowered.startswith("claude"):
            return "anthropic"
        if lowered.startswith("gemini"):
            return "gemini"
        return ""

    def _secret(self, value: Any, where: str, default: str | None) -> str | None:
        """The environment variable holding a credential; a value written in the file is not copied."""
        if value is None:
            return default
        variable = _env_name(value)
        if variable:
            return variable
        target = default or "PROVIDER_API_KEY"
        self.note(where, f"a secret is written in the file: not copied; put it in the environment as {target}")
        return target

    @staticmethod
    def _price(params: dict[str, Any]) -> dict[str, str] | None:
        per_token_in, per_token_out = params.get("input_cost_per_token"), params.get("output_cost_per_token")
        if not isinstance(per_token_in, int | float) or not isinstance(per_token_out, int | float):
            return None
        million = Decimal(1_000_000)
        return {
            "input": format((Decimal(str(per_token_in)) * million).normalize(), "f"),
            "output": format((Decimal(str(per_token_out)) * million).normalize(), "f"),
        }

    def _provider(self, provider: dict[str, Any], prefix: str) -> str:
        """One provider entry per distinct endpoint and credential, named after its family."""
        identity = tuple(sorted((k, str(v)) for k, v in provider.items()))
        name = self._provider_names.get(identity)
        if name is None:
            base = prefix.replace("_", "-")
            name = base if base not in self.providers else f"{base}-{len(self.providers) + 1}"
            self._provider_names[identity] = name
            self.providers[name] = provider
        return name

    # -- settings ---------------------------------------------------------------------------------

    def routing(self, settings: dict[str, Any], groups: dict[str, dict[str, Any]], where: str) -> None:
        strategy = settings.get("routing_strategy")
        if strategy is not None:
            mapped = _STRATEGIES.get(str(strategy))
            if mapped is None:
                self.note(where, f"routing_strategy '{strategy}' is not mapped (weighted is used)")
            else:
                for group in groups.values():
                    group.setdefault("routing", {})["strategy"] = mapped
        retries = settings.get("num_retries")
        if isinstance(retries, int) and retries >= 0:
            for group in groups.values():
                group.setdefault("routing", {}).setdefault("retry", {})["max_attempts"] = min(retries + 1, 10)
        breaker: dict[str, Any] = {}
        if isinstance(settings.get("allowed_fails"), int) and settings["allowed_fails"] >= 0:
            breaker["consecutive_failures"] = settings["allowed_fails"] + 1
        if isinstance(settings.get("cooldown_time"), int | float) and settings["cooldown_time"] > 0:
            breaker["min_open_s"] = float(settings["cooldown_time"])
            breaker["max_open_s"] = max(float(settings["cooldown_time"]), 300.0)
        if breaker:
            for group in groups.values():
                group.setdefault("routing", {})["breaker"] = dict(breaker)
        for setting, error_class in (
            ("fallbacks", None),
            ("context_window_fallbacks", "context_window"),
            ("content_policy_fallbacks", "content_policy"),
        ):
            for rule in settings.get(setting) or ():
                if not isinstance(rule, dict):
                    continue
                for source, targets in rule.items():
                    self._fallbacks(groups, str(source), targets, error_class, f"{where}.{setting}")

    def _fallbacks(
        self, groups: dict[str, dict[str, Any]], source: str, targets: Any, error_class: str | None, where: str
    ) -> None:
        if source not in groups:
            self.note(where, f"fallbacks for '{source}', which is not a model in model_list: left out")
            return
        known = []
        for target in targets if isinstance(targets, list) else [targets]:
            if str(target) in groups and str(target) != source:
                known.append(str(target))
            else:
                self.note(where, f"fallback '{target}' of '{source}' is not a model in model_list: left out")
        if not known:
            return
        routing = groups[source].setdefault("routing", {})
        if error_class is None:
            routing["fallbacks"] = known
        else:
            routing.setdefault("fallbacks_by_error", {})[error_class] = known


_ROUTER_KEYS = frozenset(
    {"routing_strategy", "num_retries", "allowed_fails", "cooldown_time", "fallbacks", "context_window_fallbacks"}
    | {"content_policy_fallbacks", "redis_host", "redis_port", "redis_password"}
)
_LITELLM_KEYS = frozenset(
    {"num_retries", "fallbacks", "context_window_fallbacks", "content_policy_fallbacks", "drop_params"}
    | {"max_budget", "budget_duration"}
)
_GENERAL_KEYS = frozenset({"master_key", "database_url", "max_parallel_requests", "global_max_parallel_requests"})


def convert(litellm: dict[str, Any]) -> Conversion:
    """The Sluicegate configuration for a LiteLLM proxy config (its parsed YAML)."""
    converter = _Converter()
    groups: dict[str, dict[str, Any]] = {}
    if not isinstance(litellm, dict) or not isinstance(litellm.get("model_list"), list):
        raise ValueError("not a LiteLLM proxy config: it needs model_list, a list of models")
    for i, entry in enumerate(litellm["model_list"]):
        where = f"model_list[{i}]"
        if not isinstance(entry, dict) or not entry.get("model_name"):
            converter.note(where, "no model_name: left out")
            continue
        made = converter.deployment(entry, f"{where} ({entry['model_name']})")
        if made is None:
            continue
        deployment, kind = made
        group = groups.setdefault(str(entry["model_name"]), {"name": str(entry["model_name"]), "deployments": []})
        if kind == "embedding":
            group["kind"] = "embedding"
        group["deployments"].append(deployment)
    router = litellm.get("router_settings") or {}
    settings = litellm.get("litellm_settings") or {}
    general = litellm.get("general_settings") or {}
    # litellm_settings first: router_settings wins where both say the same thing, as in LiteLLM.
    converter.routing({k: v for k, v in settings.items() if k != "drop_params"}, groups, "litellm_settings")
    converter.routing(router, groups, "router_settings")
    config: dict[str, Any] = {}
    if router.get("redis_host"):
        if router.get("redis_password") is not None:
            converter.note(
                "router_settings.redis_password",
                "not copied: give the Redis URL with its password in redis.url from your secret store",
            )
        host = router["redis_host"]
        if _env_name(host):
            converter.note("router_settings.redis_host", "read from the environment: set redis.url yourself")
        else:
            config["redis"] = {"url": f"redis://{host}:{router.get('redis_port') or 6379}/0"}
    if isinstance(settings.get("max_budget"), int | float) and settings["max_budget"] > 0:
        duration = str(settings.get("budget_duration") or "")
        period = _PERIODS.get(duration, "total" if not duration else None)
        if period is None:
            converter.note("litellm_settings.budget_duration", f"'{duration}' is not a Sluicegate period: monthly used")
            period = "monthly"
        config["budgets"] = {"global": {"amount_usd": str(settings["max_budget"]), "period": period}}
    if settings.get("drop_params") is False:
        for provider in converter.providers.values():
            provider["unsupported_params"] = "refuse"
    parallel = general.get("global_max_parallel_requests") or general.get("max_parallel_requests")
    if isinstance(parallel, int) and parallel > 0:
        config["limits"] = {"global": {"max_concurrency": parallel}}
    if general.get("master_key") is not None:
        converter.note("general_settings.master_key", "not copied: set SLUICEGATE_MASTER_KEY in the environment")
    if general.get("database_url") is not None:
        converter.note("general_settings.database_url", "not copied: set SLUICEGATE_DATABASE_URL in the environment")
    for section, known in (
        ("router_settings", _ROUTER_KEYS),
        ("litellm_settings", _LITELLM_KEYS),
        ("general_settings", _GENERAL_KEYS),
    ):
        for key in sorted(set(litellm.get(section) or {}) - known):
            converter.note(f"{section}.{key}", "not mapped")
    for key in sorted(set(litellm) - {"model_list", "router_settings", "litellm_settings", "general_settings"}):
        converter.note(key, "not mapped")
    config = {"providers": converter.providers, "models": list(groups.values()), **config}
    return Conversion(config, converter.notes)
