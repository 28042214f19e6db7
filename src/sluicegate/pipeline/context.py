"""The request context: what every stage reads and adds to as one request flows through the pipeline."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from sluicegate.canonical import ChatRequest, EmbeddingRequest, Usage
from sluicegate.catalog import Deployment, ModelGroup
from sluicegate.events import StageVerdict
from sluicegate.pipeline.records import Attempt, ModelChoice, Refusal, RouteStep, route_reason
from sluicegate.principal import Principal

if TYPE_CHECKING:
    from sluicegate.guard.redact import Redactor
    from sluicegate.pipeline.admission import Ticket
    from sluicegate.pipeline.bill import Bill
    from sluicegate.pipeline.decide import RequestFacts
    from sluicegate.routing.router import RoutePlan

Endpoint = Literal["chat", "embeddings", "count_tokens"]


@dataclass(slots=True)
class SideAttempt:
    """An upstream call that cost tokens but did not produce the answer (a hedged request's loser).

    `usage` is what the provider reported when it finished; for a call cancelled before it reported,
    `estimated` is True and `usage` holds the counted prompt tokens (output tokens streamed so far, if any).
    """

    deployment: Deployment
    usage: Usage
    estimated: bool


@dataclass(slots=True, eq=False)
class RequestContext:
    request_id: str
    endpoint: Endpoint
    client_format: str  # the wire the client spoke, answered in the same
    headers: Mapping[str, str]  # lower-cased request headers
    request: ChatRequest | EmbeddingRequest | None  # None until ingress has parsed the body
    client: str | None = None  # the client's address as the connection shows it (a proxy's, behind one)
    started: float = field(default_factory=time.perf_counter)
    principal: Principal | None = None
    group: ModelGroup | None = None
    deployment: Deployment | None = None
    route: list[RouteStep] = field(default_factory=list)  # the plan, then fallbacks and hedges, in order
    attempts: int = 0
    attempt_log: list[Attempt] = field(default_factory=list)  # every upstream call and how it ended
    side_attempts: list[SideAttempt] = field(default_factory=list)  # costs beside the answer (hedging)
    route_plan: RoutePlan | None = None  # set by the route stage for execute
    admission: Ticket | None = None  # what admission reserved, for meter and settle
    facts: RequestFacts | None = None  # read once by the decide stage
    choices: tuple[ModelChoice, ...] = ()  # changes of model group (economy mode, budget downgrade)
    operator_actions: str | None = None  # operator actions in force on the principal, described
    refusal: Refusal | None = None
    verdicts: tuple[StageVerdict, ...] = ()  # what optional stages decided
    cut_off: bool = False  # the meter ended the stream (the reservation would have been overrun)
    # a stream's events may reach the client as the provider sent them (no stage edits chunks in place, and
    # the client's format is OpenAI's): set by the pipeline, used by execute when the provider's is too
    relay_raw: bool = False
    usage_extension: dict[str, Any] | None = None  # added to the usage object as `sluicegate`
    usage: Usage | None = None
    usage_estimated: bool = False  # `usage` was counted by the gateway: the provider reported none
    status: int = 200
    outcome: str = "ok"  # ok | an ErrorClass value | client_error | cancelled | internal_error
    error_code: str | None = None
    cost_micros: int | None = None  # actual cost once settled; None while unknown (never guessed as 0)
    bill: Bill | None = None  # the whole request's cost, set once before finishing
    first_token_at: float | None = None
    finished_at: float | None = None
    sealed: bool = False  # outcome and bill fixed, the ledger row written (`Pipeline.seal`)
    interrupted: bool = False  # the gateway is stopping: the stream ends now with an error event
    relayed_chunks: int = 0  # stream chunks handed to the client, and the text they carried (for estimates)
    relayed_chars: int = 0
    after_reply: list[Callable[[], None]] = field(default_factory=list)  # bookkeeping `Pipeline.finish` runs
    response_headers: dict[str, str] = field(default_factory=dict)
    model_changed_from: str | None = None  # what the client asked for, once a stage changed `request.model`
    # What optional stages decided, for the ledger; None (or empty) while the stage is off or did not apply.
    route_tier: str | None = None
    task_type: str | None = None
    complexity: float | None = None  # 0..1
    guardrail_action: str | None = None  # allow | flag | redact | block
    guardrail_categories: tuple[str, ...] = ()
    cache_status: str | None = None  # the response cache: hit-exact | hit-semantic | miss | skip
    saved_micros: int | None = None  # the provider cost a local answer avoided
    response_cache: Any = None  # the response cache stage's business with this request (its answer to keep)
    # The request's placeholders, set by the stage that redacted it (one Redactor for all its messages):
    # the output guard numbers the answer's redactions after them and, if `redactor.restore`, puts the
    # originals back in the answer.
    redactor: Redactor | None = None
    output_guard: Any = None  # the output guard stage's business with this request (its stream redactors)
    trace_id: str | None = None  # W3C trace id (32 hex digits), when tracing is configured
    trace: Any = None  # a sampled request's trace (`telemetry/tracing.py`): its parent and stage timings

    @property
    def route_reason(self) -> str:
        """Why this deployment, as the response header and the access log say it."""
        return route_reason(self.route)

    @property
    def model(self) -> str:
        return self.request.model if self.request is not None else ""

    @property
    def requested_model(self) -> str:
        """The model the client asked for, whatever a later stage (economy mode, a budget downgrade) chose."""
        return self.model_changed_from if self.model_changed_from is not None else self.model

    @property
    def chat(self) -> ChatRequest:
        assert isinstance(self.request, ChatRequest)
        return self.request

    @property
    def latency(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started

    @property
    def time_to_first_token(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.started
