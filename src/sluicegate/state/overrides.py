"""Operator actions on an entity (key, user, team, tenant), with an expiry: an emergency rate limit, or
economy mode (only the cheapest model group). Kept in the hot state so every instance sees them; each
instance reads them all once a second, off the request path."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import orjson

from sluicegate.state.model import HotState

log = logging.getLogger("sluicegate.state")

ENTITY_KINDS = ("key", "user", "team", "tenant")


class OverrideError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Override:
    entity: str  # "team:t1"
    until: float  # epoch seconds
    rpm: int | None = None  # emergency rate limit
    tpm: int | None = None
    economy: bool = False
    reason: str = ""

    def describe(self) -> str:
        parts = []
        if self.rpm or self.tpm:
            parts.append(f"emergency rate limit (rpm={self.rpm}, tpm={self.tpm})")
        if self.economy:
            parts.append("economy mode")
        return " and ".join(parts)


def parse_override(payload: object, now: float) -> Override:
    """An admin request body -> an override, or a message saying what is wrong."""
    if not isinstance(payload, dict):
        raise OverrideError("the body must be a JSON object")
    entity = payload.get("entity")
    if not isinstance(entity, str) or entity.partition(":")[0] not in ENTITY_KINDS or not entity.partition(":")[2]:
        raise OverrideError("'entity' must be 'key:<id>', 'user:<id>', 'team:<id>' or 'tenant:<id>'")
    minutes = payload.get("minutes")
    if not isinstance(minutes, int | float) or isinstance(minutes, bool) or not 0 < minutes <= 7 * 24 * 60:
        raise OverrideError("'minutes' (how long the action lasts) must be a number in (0, 10080]")
    rpm, tpm, economy = payload.get("rpm"), payload.get("tpm"), payload.get("economy", False)
    for name, value in (("rpm", rpm), ("tpm", tpm)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise OverrideError(f"'{name}' must be a positive integer")
    if not isinstance(economy, bool):
        raise OverrideError("'economy' must be true or false")
    if not (rpm or tpm or economy):
        raise OverrideError("give 'rpm' and/or 'tpm' (emergency rate limit) and/or 'economy': true")
    reason = str(payload.get("reason") or "")[:200]
    return Override(entity, now + float(minutes) * 60, rpm, tpm, economy, reason)


class OverrideBook:
    """This instance's copy of the active overrides, refreshed from the hot state."""

    def __init__(self, state: HotState, clock: Callable[[], float] = time.time, refresh_seconds: float = 1.0) -> None:
        self._state = state
        self._clock = clock
        self._refresh = refresh_seconds
        self._active: dict[str, Override] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def any(self) -> bool:
        """Whether any action may be in force (one attribute read on the request path when none is)."""
        return bool(self._active)

    def active(self, entities: list[str]) -> list[Override]:
        if not self._active:
            return []
        now = self._clock()
        found = []
        for entity in entities:
            override = self._active.get(entity)
            if override is not None and override.until > now:
                found.append(override)
        return found

    def all(self) -> list[Override]:
        now = self._clock()
        return sorted((o for o in self._active.values() if o.until > now), key=lambda o: o.entity)

    async def put(self, override: Override) -> None:
        await self._state.put_override(override.entity, orjson.dumps(asdict(override)).decode(), override.until)
        self._active[override.entity] = override
        log.warning("operator action: %s on %s until %s", override.describe(), override.entity, override.until)

    async def clear(self, entity: str) -> bool:
        existed = self._active.pop(entity, None) is not None
        await self._state.put_override(entity, None, 0)
        log.warning("operator action cleared on %s", entity)
        return existed

    async def load(self) -> None:
        raw = await self._state.all_overrides()
        now = self._clock()
        active = {}
        for entity, text in raw.items():
            with contextlib.suppress(ValueError, TypeError):
                override = Override(**orjson.loads(text))
                if override.until > now:
                    active[entity] = override
        self._active = active

    async def _loop(self) -> None:
        while True:
            try:
                await self.load()
            except Exception as exc:  # keep the last known overrides while the state is away
                log.debug("overrides refresh failed: %s", type(exc).__name__)
            await asyncio.sleep(self._refresh)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
