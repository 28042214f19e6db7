"""Shadow mode for the `auto` route: a candidate classifier (and optionally a candidate pool) decides beside
the live one on a configured share of requests, in the background, after the live decision; what it would
have chosen is counted against what was chosen, never acted on. `GET /admin/routing/shadow` reports it."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from typing import Any

from sluicegate.classify.classification import Classifier, Prompt
from sluicegate.pipeline.auto import Member, choose

log = logging.getLogger("sluicegate.classify")


class Shadow:
    def __init__(
        self,
        classifier: Classifier,
        share: float,
        *,
        pools: dict[str, list[Member]] | None = None,
        max_in_flight: int = 64,
        rng: random.Random | None = None,
    ) -> None:
        self.classifier = classifier
        self.share = share
        self._pools = pools  # the candidate policy's pool per auto group (None: the live pool)
        self._max_in_flight = max_in_flight
        self._rng = rng or random.Random()
        self._tasks: set[asyncio.Task[None]] = set()
        self.decided = 0
        self.skipped = 0  # sampled but not decided: too many in flight, or the classifier failed
        self.same_group = 0
        self.same_tier = 0
        self.live_cost = 0.0  # projected USD of what the live decisions chose
        self.shadow_cost = 0.0
        self.tiers: Counter[tuple[str, str]] = Counter()  # (live tier, shadow tier)

    def sample(self) -> bool:
        return self.share > 0 and self._rng.random() < self.share

    def submit(self, group: str, members: list[Member], prompt: Prompt, tokens: int, live: Member, output: int) -> None:
        """Decides in the background (the request does not wait)."""
        if len(self._tasks) >= self._max_in_flight:
            self.skipped += 1
            return
        candidates = members
        if self._pools is not None:
            allowed = {m.group.name for m in members}
            candidates = [m for m in self._pools.get(group, members) if m.group.name in allowed] or members
        task = asyncio.get_running_loop().create_task(self._decide(candidates, prompt, tokens, live, output))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _decide(self, members: list[Member], prompt: Prompt, tokens: int, live: Member, output: int) -> None:
        try:
            c = await self.classifier.classify(prompt)
        except Exception:  # a shadow must never matter to the request: count it and move on
            log.exception("shadow classifier failed")
            self.skipped += 1
            return
        found = choose(members, c, tokens)
        if found is None:
            self.skipped += 1
            return
        member = found[0]
        self.decided += 1
        self.same_group += member.group is live.group
        self.same_tier += member.tier == live.tier
        self.live_cost += live.cost(tokens, output) / 1e6
        self.shadow_cost += member.cost(tokens, c.output_tokens) / 1e6
        self.tiers[(live.tier, member.tier)] += 1

    async def drain(self) -> None:
        """Waits for the shadow decisions in flight (tests, shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def report(self) -> dict[str, Any]:
        n = self.decided
        return {
            "enabled": True,
            "classifier": self.classifier.name,
            "share": self.share,
            "decided": n,
            "skipped": self.skipped,
            "agreement": {
                "group": self.same_group / n if n else None,
                "tier": self.same_tier / n if n else None,
            },
            "projected_cost_usd": {
                "live": round(self.live_cost, 6),
                "shadow": round(self.shadow_cost, 6),
                "difference": round(self.shadow_cost - self.live_cost, 6),
            },
            "tiers": [
                {"live": live, "shadow": shadow, "requests": k} for (live, shadow), k in sorted(self.tiers.items())
            ],
        }
