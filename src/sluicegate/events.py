"""The in-process event bus: things that happen beside the requests (breaker transitions, admin and
operator actions, budget thresholds, stage verdicts), as typed records, to any number of listeners.

The gateway owns one bus. Publishing is a dictionary lookup and a call per listener, on the caller's
thread: a listener must be quick and never wait (one that has network work to do, a webhook or Redis,
queues it and returns). A listener that raises is logged and the others still hear the event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger("sluicegate.events")


@dataclass(frozen=True, slots=True)
class BreakerTransition:
    deployment: str
    state: str  # "open", "half_open" or "closed"
    reason: str
    open_for: float  # seconds an open breaker stays open before a probe (0 for the other states)


@dataclass(frozen=True, slots=True)
class AdminAction:
    """A change made through the admin API, once it has been answered."""

    who: str  # the caller's key id ("master" for the master key)
    action: str  # the HTTP method: POST, PUT, PATCH, DELETE
    target: str  # the path acted on, e.g. /admin/keys/key_123/rotate
    status: int


@dataclass(frozen=True, slots=True)
class AdminChange:
    """What an admin operation changed (published by the admin service once the change is stored): the
    entity's view before and after (None when it was created or deleted). Views never carry secrets."""

    who: str  # the caller's key id ("master" for the master key)
    action: str  # create, update, rotate, revoke, delete
    target: str  # e.g. "key:key_123", "team:search"
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class AuthFailure:
    """A request to the admin API refused before it was authenticated (no key, a wrong one, an inference
    key): the audit log tallies them per source address and minute."""

    surface: str  # "admin"
    client: str | None  # the source address as the connection shows it
    status: int  # 401 or 403
    reason: str  # e.g. "authentication_error", "permission_error"


@dataclass(frozen=True, slots=True)
class OperatorAction:
    """An emergency rate limit or economy mode set or cleared on an entity."""

    action: str  # "set" or "clear"
    entity: str  # e.g. "team:search"
    detail: str


@dataclass(frozen=True, slots=True)
class BudgetThreshold:
    """A budget crossed an alert threshold for the first time in its period (across every instance)."""

    scope: str  # e.g. "key:k1", "global"
    period: str
    threshold: float  # 0.8 = 80%; 1.0 = spent
    spent_micros: int
    limit_micros: int


@dataclass(frozen=True, slots=True)
class StageVerdict:
    """What a stage decided about a request (a firewall's block, a redaction), for audit and alerts."""

    request_id: str
    stage: str
    verdict: str  # e.g. "allow", "flag", "redact", "block"
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ClassificationDrift:
    """What the classifier decides has moved away from its baseline (a tier's share of the `auto` route, a
    task type's, the confidence), published by the classification stage for alerts."""

    what: str  # e.g. "auto: tier large"
    current: float  # the recent value (a share, 0..1)
    baseline: float
    detail: str = ""


E = TypeVar("E")


class EventBus:
    def __init__(self) -> None:
        self._listeners: dict[type[Any], list[Callable[[Any], None]]] = {}

    def subscribe(self, kind: type[E], listener: Callable[[E], None]) -> Callable[[], None]:
        """Calls `listener` with every event of `kind` from now on; returns what unsubscribes it."""
        listeners = self._listeners.setdefault(kind, [])
        listeners.append(listener)
        return lambda: listeners.remove(listener) if listener in listeners else None

    def publish(self, event: object) -> None:
        listeners = self._listeners.get(type(event))
        if not listeners:
            return
        for listener in tuple(listeners):
            try:
                listener(event)
            except Exception as exc:  # one broken listener must not silence the others or fail the caller
                log.error("event listener failed on %s: %s", type(event).__name__, type(exc).__name__)

    def listens_to(self, kind: type[Any]) -> bool:
        """Whether anything listens to `kind` (so a publisher can skip building an event nobody hears)."""
        return bool(self._listeners.get(kind))
