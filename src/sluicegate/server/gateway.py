"""The application object: owns every component and wires the pipeline from configuration."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from collections.abc import Mapping
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import orjson

from sluicegate.catalog import ModelCatalog
from sluicegate.clock import Clock, SystemClock
from sluicegate.config.schema import GatewayConfig
from sluicegate.events import EventBus
from sluicegate.keys.accounts import Accounts
from sluicegate.pipeline import Pipeline, stages
from sluicegate.pipeline.count_tokens import CountTokens
from sluicegate.pipeline.decide import Decide
from sluicegate.pipeline.execute import Execute
from sluicegate.pipeline.limits import BudgetsAndLimits
from sluicegate.pipeline.record import Record
from sluicegate.pipeline.route import Route
from sluicegate.providers.http import UpstreamClient
from sluicegate.routing.metrics import RoutingCollector
from sluicegate.routing.router import Router
from sluicegate.routing.services import RoutingServices
from sluicegate.server.connections import ConnectionCollector, ConnectionGuard, ConnectionLimits
from sluicegate.state.resilient import ResilientState
from sluicegate.store.audit import AuditTable
from sluicegate.store.responses import ResponseStore
from sluicegate.store.totals import LedgerTotals
from sluicegate.telemetry.access_log import AccessLog
from sluicegate.telemetry.alerting import AlertMonitor, AlertSender, BudgetLine, budget_lines
from sluicegate.telemetry.audit import AuditCollector, AuditLog
from sluicegate.telemetry.ledger import LedgerGuard
from sluicegate.telemetry.ledger_metrics import LedgerCollector
from sluicegate.telemetry.metrics import BudgetCollector, GatewayMetrics

if TYPE_CHECKING:
    from sluicegate.classify.classification import Classifier
    from sluicegate.classify.metrics import AutoMetrics
    from sluicegate.models.host import ModelHost
    from sluicegate.pipeline.auto import AutoRoute
    from sluicegate.pipeline.shadow import Shadow
    from sluicegate.telemetry.capture import Capture
    from sluicegate.telemetry.tracing import Tracing

log = logging.getLogger("sluicegate.server")


def config_summary(config: GatewayConfig) -> dict[str, object]:
    """What the audit log keeps of a configuration load: a digest of the whole, and its outline."""
    digest = hashlib.sha256(orjson.dumps(config.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)).hexdigest()
    return {
        "sha256": digest,
        "providers": sorted(config.providers),
        "models": [group.name for group in config.models],
        "stages": list(config.pipeline.stages),
    }


class MissingMasterKey(Exception):
    pass


def connection_limits(config: GatewayConfig) -> ConnectionLimits:
    server = config.server
    return ConnectionLimits(
        header_timeout=server.header_timeout_seconds,
        body_idle_timeout=server.body_idle_timeout_seconds,
        body_timeout=server.body_timeout_seconds,
        keep_alive=server.keep_alive_seconds,
        send_timeout=server.send_timeout_seconds,
        max_connections=server.max_connections,
        max_connections_per_address=server.max_connections_per_address,
        max_header_bytes=server.max_header_bytes,
    )


class Gateway:
    def __init__(
        self,
        config: GatewayConfig,
        *,
        master_key: str | None = None,
        environ: Mapping[str, str] = os.environ,
        access_log: AccessLog | None = None,
        clock: Clock | None = None,
    ) -> None:
        key = master_key or environ.get(config.server.master_key_env)
        if not key:
            raise MissingMasterKey(f"no master key: set the environment variable {config.server.master_key_env}")
        self.config = config
        self.clock: Clock = clock or SystemClock()  # the one clock every component reads
        self.catalog = ModelCatalog.from_config(config, environ)
        self.upstream = UpstreamClient()
        self.metrics = GatewayMetrics(
            (group.name for group in self.catalog), max_label_values=config.metrics.max_label_values
        )
        self.events = EventBus()  # breaker transitions, admin and operator actions, budget thresholds, verdicts
        self.router = Router(self.catalog, config.routing, clock=self.clock.monotonic, events=self.events)
        self.metrics.registry.register(RoutingCollector(self.router))
        self.connections = ConnectionGuard(connection_limits(config))
        self.metrics.registry.register(ConnectionCollector(self.connections))
        log_config = config.server.access_log
        self.access_log = access_log or AccessLog.open(log_config.path, log_config.enabled)
        self.accounts = Accounts(config, key, environ, clock=self.clock.now)
        # This process's request ids start with it; its spool folder records it, so that the instance that
        # takes the folder over after a kill can close the in-flight rows of the streams it left.
        self.request_id_prefix = "req_" + secrets.token_hex(6)
        self.accounts.spool.owner = {"prefix": self.request_id_prefix, "started": self.clock.now()}
        self.auth = self.accounts.auth
        self.responses: ResponseStore | None = None  # the Responses API's stored answers, when configured
        if config.responses.store:
            self.responses = ResponseStore(self.accounts.store, config.responses.ttl_days * 86400)
        # The hot counters are a cache of the ledger: balances are rebuilt from it after a start or a loss.
        ledger_totals = LedgerTotals(self.accounts.store, config.store.spool_dir, ZoneInfo(config.budgets.time_zone))
        self.limits = BudgetsAndLimits(
            config, self.catalog, self.metrics.registry, self.events, ledger_totals, clock=self.clock
        )
        admission = self.limits.admission
        self.metrics.registry.register(
            BudgetCollector(lambda: admission.used, max_label_values=config.metrics.max_label_values)
        )
        self.routing = RoutingServices(config, self.router, self.upstream, self.limits.deployment_headroom)
        record = self.record = Record(self.metrics, self.access_log)
        self.audit = self._audit_log(environ)
        if self.audit is not None:
            self.audit.listen(self.events)
            self.metrics.registry.register(AuditCollector(self.audit))
            self.accounts.admin.changed = self.events.publish
        self.model_host = self._model_host(record)
        services = stages.StageServices(
            config,
            self.events,
            self.model_host,
            self.catalog,
            self.metrics.registry,
            self.clock,
            self.limits.admission.count_request,
        )
        optional = stages.build(config.pipeline.stages, services)
        self._lifecycle: list[Any] = [s for slot in optional.values() for s in slot if hasattr(s, "start")]
        ledger = self.accounts.ledger
        ledger.alert = self.limits.alerts.notify_event
        self.metrics.registry.register(LedgerCollector(ledger))
        # policy "refuse": nothing is served while the spool could not record it (one attribute read a request)
        guard = [LedgerGuard(ledger)] if ledger.full_policy == "refuse" else []
        route = Route(self.catalog, self.router)
        self.auto_route: AutoRoute | None = None
        self.capture: Capture | None = None
        if config.capture is not None:
            from sluicegate.telemetry.capture import Capture

            self.capture = Capture(config.capture)
        auto = self._auto_route()  # empty unless some group has strategy auto
        self.limits.admission.planner = route.plan  # deployments with their own RPM/TPM: a place taken at admission
        self.tracing = self._tracing()
        path: list[object] = [
            *guard,
            self.auth,
            Decide(self.catalog),  # the model group and the request's facts, once
            # the auto route's choice: before the cache (keyed by the group that answers) and admission
            *auto,
            *optional["request"],
            self.limits.admission,
            route,
            self.limits.meter,
            *optional["output"],
            # the ledger first: its row is on disk before any stage that may wait on the network
            ledger,
            self.limits.settle,
            record,
            *([self.audit] if self.audit is not None else []),
            *optional["record"],
            *([self.capture] if self.capture is not None else []),  # sampled requests for replay
        ]
        self.pipeline = Pipeline(
            path if self.tracing is None else self.tracing.stages(path), Execute(self.upstream, self.router)
        )
        # token counting is answered by the gateway itself: nothing to reserve, route, bill or put in the ledger
        self.token_counting = Pipeline([self.auth, CountTokens(self.catalog), record])
        self.alerts = self._alert_monitor()
        self.ready = False

    def _tracing(self) -> Tracing | None:
        """Built (and OpenTelemetry imported) only when `tracing` is configured."""
        if self.config.tracing is None:
            return None
        if find_spec("opentelemetry.proto") is None:
            raise RuntimeError("tracing needs OpenTelemetry's OTLP messages: pip install 'sluicegate[tracing]'")
        from sluicegate.telemetry.tracing import Tracing

        return Tracing(self.config.tracing)

    def _alert_monitor(self) -> AlertMonitor | None:
        """Operational alerts, when any webhook is configured (docs/alerts.md)."""
        settings = self.config.alerts
        if not settings.webhooks:
            return None
        sender = AlertSender(
            settings.webhooks,
            self.clock,
            dashboard_url=settings.dashboard_url,
            max_per_minute=settings.max_per_minute,
            repeat_hours=settings.repeat_hours,
        )
        budget = self.config.budgets.global_
        global_limit = (int(budget.amount_usd * 1_000_000), budget.period) if budget is not None else None
        directory = self.accounts.directory

        async def budgets() -> list[BudgetLine]:
            return budget_lines(await directory.budgeted(), global_limit)

        monitor = AlertMonitor(
            settings,
            sender,
            self.clock,
            spend=self.accounts.spend,
            budgets=budgets,
            metrics=self.metrics,
            spool=self.accounts.ledger,
            zone=ZoneInfo(self.config.budgets.time_zone),
        )
        monitor.listen(self.events)
        return monitor

    def _audit_log(self, environ: Mapping[str, str]) -> AuditLog | None:
        settings = self.config.audit
        if not settings.enabled:
            return None
        key = environ.get(settings.key_env)
        table = AuditTable(self.accounts.store, key.encode() if key else None)
        return AuditLog(
            table,
            self.request_id_prefix[4:],
            self.clock,
            retention_days=settings.retention_days,
            max_queue=settings.max_queue,
        )

    def _model_host(self, record: Record) -> ModelHost | None:
        """Built only when configured; its children start with the gateway only if a stage asked for it."""
        if self.config.model_host is None:
            return None
        if find_spec("numpy") is None:
            raise RuntimeError("model_host needs numpy: pip install 'sluicegate[model-host]' (or '[local-models]')")
        # numpy's work in this process (the response cache's index search) runs on the event loop's thread:
        # one BLAS thread, never a pool of them competing with the loop and the model's children for cores
        # (set before numpy is first imported, which is here)
        for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(variable, "1")
        from sluicegate.models.host import build_host
        from sluicegate.server.model_upstream import GatewayEmbeddings

        # the host's own embedding calls: routed and failed over like any, in the ledger, never budgeted
        internal = Pipeline(
            [Route(self.catalog, self.router), self.accounts.ledger, record], Execute(self.upstream, self.router)
        )
        return build_host(self.config.model_host, registry=self.metrics.registry, upstream=GatewayEmbeddings(internal))

    def _auto_route(self) -> list[object]:
        """The auto route's stage, built (and its classifier imported) only when a group uses it."""
        if not any(group.pool for group in self.catalog):
            return []
        from sluicegate.classify.heuristic import HeuristicClassifier
        from sluicegate.classify.metrics import AutoMetrics
        from sluicegate.pipeline.auto import AutoRoute

        metrics = AutoMetrics()
        self.metrics.registry.register(metrics)
        settings = self.config.classify
        classifier: Classifier = HeuristicClassifier()
        if settings.classifier == "learned" and self.model_host is not None:
            from sluicegate.classify.learned import LearnedClassifier
            from sluicegate.models.host import Embedder

            embedder: Embedder[None] = self.model_host.embedder(fail="open", deadline_ms=settings.deadline_ms)
            classifier = LearnedClassifier(
                embedder.embed, min_confidence=settings.min_confidence, fell_back=metrics.fell_back
            )
        drift = None
        if settings.drift.enabled:
            from sluicegate.classify.drift import DriftWatch

            watch = settings.drift
            drift = DriftWatch(
                settings.tiers[-1],
                self.events.publish,
                self.clock.now,
                threshold=watch.threshold,
                baseline_hours=watch.baseline_hours,
                min_requests=watch.min_requests,
            )
            metrics.drift = drift
        stage = AutoRoute(
            self.catalog, classifier, metrics, self.limits.admission.downgrade_due, drift, self._shadow(metrics)
        )
        self.auto_route = stage
        return [stage]

    def _shadow(self, metrics: AutoMetrics) -> Shadow | None:
        """The candidate classifier (and pool) decided beside the live one, when `classify.shadow.share` > 0."""
        settings = self.config.classify.shadow
        if settings.share <= 0:
            return None
        from sluicegate.classify.heuristic import HeuristicClassifier
        from sluicegate.pipeline.auto import member_of
        from sluicegate.pipeline.shadow import Shadow

        candidate: Classifier = HeuristicClassifier()
        if settings.classifier == "learned" and self.model_host is not None:
            from sluicegate.classify.learned import LearnedClassifier
            from sluicegate.models.host import Embedder

            embedder: Embedder[None] = self.model_host.embedder(
                fail="open", deadline_ms=self.config.classify.deadline_ms
            )
            candidate = LearnedClassifier(embedder.embed, min_confidence=settings.min_confidence)
        pools = None
        if settings.pool is not None:
            found = [self.catalog.get(name) for name in settings.pool]
            members = [m for m in (member_of(g) for g in found if g is not None) if m is not None]
            pools = {group.name: members for group in self.catalog if group.pool}
        return Shadow(candidate, settings.share, pools=pools, max_in_flight=settings.max_in_flight)

    async def start(self) -> None:
        self.access_log.start()
        await self.accounts.start()
        if self.audit is not None:
            self.audit.start()
            self.audit.record("config", "gateway", "load", "config", detail=config_summary(self.config))
        await self.limits.start()
        await self.routing.start()
        if self.alerts is not None:
            self.alerts.start()
        if self.model_host is not None:
            await self.model_host.start()
        for stage in self._lifecycle:  # optional stages with work of their own (a cache's index sync)
            await stage.start()
        if self.capture is not None:
            self.capture.start()
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        for stage in self._lifecycle:
            await stage.stop()
        if self.model_host is not None:
            await self.model_host.stop()
        await self.upstream.close()
        await self.routing.stop()
        if self.alerts is not None:
            await self.alerts.stop()
        if self.audit is not None:
            await self.audit.stop()
        await self.accounts.stop()
        await self.limits.stop()
        self.record.flush()
        if self.capture is not None:
            self.capture.stop()
        await self.access_log.stop()
        if self.tracing is not None:
            await self.tracing.stop()

    def end_open_streams(self) -> None:
        """The stop's grace period is over: every request still under way ends now, a stream already flowing
        with an error event in its client's format, one not answered yet (a stream still waiting for its
        first token, a whole call) with an error response; each is recorded and settled with its usage so far."""
        count = self.pipeline.interrupt()
        if count:
            log.warning("grace period over: ending %d request(s) still under way with an error", count)

    def degraded(self) -> dict[str, object]:
        """The shared services that are away, each with the policy in force meanwhile (empty: none)."""
        away: dict[str, object] = {}
        state = self.limits.state
        if isinstance(state, ResilientState):
            redis = state.health()
            if redis is not None:
                away["redis"] = redis
        store = self.accounts.health()
        if store is not None:
            away["store"] = store
        return away

    def models(self) -> list[tuple[str, str]]:
        """(name, owning provider family) of every logical model, for /v1/models."""
        return [
            (group.name, group.deployments[0].family if group.deployments else "sluicegate") for group in self.catalog
        ]
