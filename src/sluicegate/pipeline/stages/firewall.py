"""The prompt firewall: screens what a client sends (user turns, tool results, the parameters that decide
cost) before anything is admitted or paid for, under the strictest guardrail level along the request's
tenant, team and key, and allows, flags, redacts or blocks.

A block answers 400 `content_policy_violation` in the client's format, naming the category and the rule,
never the matched text; no provider is called and the ledger row says `blocked` at zero cost. A flagged or
redacted request carries `x-sluice-guardrail: flagged|redacted; categories=...`. Every decision is a
`StageVerdict` event and fills the ledger's guardrail columns.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import orjson
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from sluicegate.canonical import ChatRequest, Message
from sluicegate.errors import GatewayError
from sluicegate.guard.config import GuardrailsConfig
from sluicegate.guard.findings import Finding
from sluicegate.guard.firewall import Firewall, Where
from sluicegate.guard.firewall_rules import rule_set
from sluicegate.guard.policy import Decision, Levels, Resolved, decide
from sluicegate.pipeline.context import RequestContext
from sluicegate.pipeline.stages import Slot, StageServices

SLOT: Slot = "request"
HEADER = "x-sluice-guardrail"
_PAST = {"flag": "flagged", "redact": "redacted", "block": "blocked"}
_RANK = {"allow": 0, "flag": 1, "redact": 2, "block": 3}


def _detector(name: str) -> Callable[[str], list[Finding]] | None:
    """A detector module's `scan` (PII, secrets), or None where this installation has none."""
    try:
        module: ModuleType = importlib.import_module(f"sluicegate.guard.{name}")
    except ModuleNotFoundError:
        return None
    scan = getattr(module, "scan", None)
    return scan if callable(scan) else None


def _texts(messages: list[Message]) -> list[tuple[Where, str]]:
    """What the client controls: user turns and tool results (system and developer prompts are the
    application's own; assistant turns are answers the model gave)."""
    parts: list[tuple[Where, str]] = []
    for message in messages:
        role = message.get("role")
        if role != "user" and role != "tool":
            continue
        where: Where = "user" if role == "user" else "tool"
        content = message.get("content")
        if isinstance(content, str):
            parts.append((where, content))
        elif isinstance(content, list):
            for part in content:
                text = part.get("text") if isinstance(part, dict) else None
                if isinstance(text, str):
                    parts.append((where, text))
    return parts


def blocked(finding: Finding) -> GatewayError:
    return GatewayError(
        400,
        f"The gateway's prompt firewall blocked this request: category '{finding.category}', rule "
        f"'{finding.rule_id}'. Nothing was sent to a model and nothing was charged.",
        type="invalid_request_error",
        code="content_policy_violation",
        param="messages",
    )


class DecisionCollector(Collector):
    """`sluicegate_firewall_decisions_total{action,category}`: requests screened, by what was done about each
    category found (`allow`/`none` for a request with no finding). Categories come from the rules, so the
    label set is bounded."""

    def __init__(self, counts: dict[tuple[str, str], int]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "sluicegate_firewall_decisions",
            "Requests screened by the firewall, by action and category",
            labels=["action", "category"],
        )
        for (action, category), count in sorted(self._counts.items()):
            family.add_metric([action, category], count)
        yield family


class FirewallStage:
    name = "firewall"

    def __init__(self, services: StageServices, settings: GuardrailsConfig) -> None:
        self._services = services
        self._levels = Levels(settings.policies)
        self._default: tuple[str, ...] = () if settings.default_level == "off" else (settings.default_level,)
        self._firewall = Firewall(rule_set(settings.rules))
        self._restore = settings.restore
        self.counts: dict[tuple[str, str], int] = {}
        if services.registry is not None:
            services.registry.register(DecisionCollector(self.counts))
        self._pii = _detector("pii")
        self._secrets = _detector("secrets")
        try:  # the redactor, where this installation has it; without one, a redaction is only a flag
            self._redactor: Any = importlib.import_module("sluicegate.guard.redact").Redactor
        except (ModuleNotFoundError, AttributeError):
            self._redactor = None

    async def on_request(self, ctx: RequestContext) -> None:
        principal = ctx.principal
        chain = principal.guardrail_levels if principal is not None else ()
        policy = self._levels.chain(chain or self._default) if (chain or self._default) else None
        request = ctx.request
        if policy is None or type(request) is not ChatRequest:  # off, or not a chat (embeddings are not screened)
            return None
        decision = self.check(request, policy)
        action = decision.action
        if action == "redact" and not self._redact(ctx, request, policy):
            action = "flag"
        self.record(ctx, decision, action)
        if decision.blocked_by is not None:
            ctx.outcome = "blocked"
            ctx.cost_micros = 0
            raise blocked(decision.blocked_by)
        return None

    def check(self, request: ChatRequest, policy: Resolved) -> Decision:
        parts = _texts(request.messages)
        tools: list[Any] = request.params.get("tools") or []
        findings = self._firewall.scan_request(
            parts,
            n=request.params.get("n"),
            max_tokens=request.max_tokens,
            tools=len(tools),
            tools_bytes=len(orjson.dumps(tools)) if tools else 0,
        )
        for prefix, scan in (("pii_", self._pii), ("secret_", self._secrets)):
            if scan is not None and policy.acts_on(prefix):
                for _, text in parts:
                    # positions are per message: the redactor needs them whole, the decision does not
                    findings.extend(scan(text))
        return decide(policy, findings)

    def _redact(self, ctx: RequestContext, request: ChatRequest, policy: Resolved) -> bool:
        """Replaces, in the client's turns, what the policy redacts with typed placeholders (the same value,
        the same placeholder); the request's redactor goes on the context, for the output guard to number
        the answer's redactions after it and, with `guardrails.restore`, to put the originals back. False
        when this installation has no redactor (the finding is then only flagged)."""
        if self._redactor is None:
            return False
        redactor = ctx.redactor = self._redactor(restore=self._restore)
        for message in request.messages:
            if message.get("role") not in ("user", "tool"):
                continue
            content = message.get("content")
            if isinstance(content, str):
                message["content"] = redactor.redact(content, self._redactable(content, policy))
            elif isinstance(content, list):
                for part in content:
                    text = part.get("text") if isinstance(part, dict) else None
                    if isinstance(text, str):
                        part["text"] = redactor.redact(text, self._redactable(text, policy))
        return True

    def _redactable(self, text: str, policy: Resolved) -> list[Finding]:
        found: list[Finding] = []
        for scan in (self._secrets, self._pii):
            if scan is not None:
                found.extend(scan(text))
        return [f for f in found if f.score >= policy.flag_score and policy.action_for(f.category) == "redact"]

    def record(self, ctx: RequestContext, decision: Decision, action: str) -> None:
        ctx.guardrail_action = action
        ctx.guardrail_categories = decision.categories
        counts = self.counts
        if action == "allow":
            counts[("allow", "none")] = counts.get(("allow", "none"), 0) + 1
            self._services.verdict(ctx, self.name, "allow")
            return
        strongest: dict[str, str] = {}  # per category, the strongest action any of its findings got
        for finding, taken in decision.acted:
            done = "flag" if taken == "redact" and action == "flag" else taken  # no redactor: only flagged
            if _RANK[done] > _RANK[strongest.get(finding.category, "allow")]:
                strongest[finding.category] = done
        for category, acted in strongest.items():
            counts[(acted, category)] = counts.get((acted, category), 0) + 1
        rules = ",".join(sorted({finding.rule_id for finding, _ in decision.acted}))
        categories = ",".join(decision.categories)
        self._services.verdict(ctx, self.name, action, f"categories={categories}; rules={rules}")
        if action != "block":
            ctx.response_headers[HEADER] = f"{_PAST[action]}; categories={categories}"


def create(services: StageServices) -> FirewallStage:
    return FirewallStage(services, services.config.guardrails or GuardrailsConfig())
