"""Request capture for `sluicegate replay`: a sampled share of chat requests, with what the `auto` route
decided, appended to a JSONL file by a background thread; personal data and secrets redacted with the
firewall's redactor; the file rotated at a size bound, a few old ones kept. Off unless `capture:` is set."""

from __future__ import annotations

import json
import logging
import os
import queue
import random
import threading
from pathlib import Path
from typing import Any

from sluicegate.canonical import ChatRequest
from sluicegate.config.schema import CaptureConfig
from sluicegate.pipeline.context import RequestContext

log = logging.getLogger("sluicegate.capture")
_STOP = object()


class Capture:
    name = "capture"

    def __init__(self, config: CaptureConfig, rng: random.Random | None = None) -> None:
        self.config = config
        self.path = Path(config.path)
        self._rng = rng or random.Random()
        self._queue: queue.Queue[object] = queue.Queue(maxsize=config.max_queued)
        self.dropped = 0
        self.written = 0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._thread = threading.Thread(target=self._run, name="sluicegate-capture", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout=10)
            self._thread = None

    async def on_finish(self, ctx: RequestContext) -> None:
        request = ctx.request
        if not isinstance(request, ChatRequest) or ctx.status >= 400 or self._rng.random() >= self.config.share:
            return
        body: dict[str, Any] = {"model": ctx.requested_model, "messages": request.messages}
        for name in ("tools", "functions"):
            if request.params.get(name):
                body[name] = request.params[name]
        if request.stream:
            body["stream"] = True
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        row = {
            "id": ctx.request_id,
            "body": body,
            "group": ctx.model,
            "route_tier": ctx.route_tier,
            "task": ctx.task_type,
            "complexity": ctx.complexity,
        }
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            self.dropped += 1

    # -- the writer thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        redact = None
        if self.config.redact:
            from sluicegate.guard.redact import Redactor

            redact = Redactor
        handle = self.path.open("a", encoding="utf-8")
        try:
            while True:
                row = self._queue.get()
                if row is _STOP:
                    break
                assert isinstance(row, dict)
                if redact is not None:
                    redactor = redact()
                    for message in row["body"]["messages"]:
                        content = message.get("content")
                        if isinstance(content, str):
                            message["content"] = redactor.redact_all(content)
                        elif isinstance(content, list):
                            for part in content:
                                if isinstance(part, dict) and isinstance(part.get("text"), str):
                                    part["text"] = redactor.redact_all(part["text"])
                line = json.dumps(row, ensure_ascii=False, default=str) + "\n"
                if handle.tell() + len(line) > self.config.max_bytes:
                    handle.close()
                    self._rotate()
                    handle = self.path.open("a", encoding="utf-8")
                handle.write(line)
                handle.flush()
                self.written += 1
        except Exception:
            log.exception("request capture stopped")
        finally:
            handle.close()

    def _rotate(self) -> None:
        """capture.jsonl -> capture.jsonl.1 -> .2 ... keeping `keep` old files."""
        keep = self.config.keep
        oldest = self.path.with_name(f"{self.path.name}.{keep}")
        if oldest.exists():
            oldest.unlink()
        for n in range(keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{n + 1}"))
        if keep > 0:
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink()
