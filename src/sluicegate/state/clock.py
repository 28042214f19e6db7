"""The clock the hot state reads (`now()`, wall-clock seconds): the gateway's one clock (`sluicegate.clock`)."""

from __future__ import annotations

from sluicegate.clock import Clock, ManualClock, SystemClock

__all__ = ["Clock", "ManualClock", "SystemClock"]
