"""The gateway's own log (not the access log): its level and format, human lines or one JSON object a line."""

from __future__ import annotations

import logging
import sys
import time
from typing import Literal

import orjson

LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["human", "json"]
HUMAN = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts (Unix seconds), level, logger, message; and the exception's type and
    text when one is logged (a log collector then needs no multi-line parsing)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def configure_logging(level: LogLevel = "info", style: LogFormat = "human") -> None:
    """Replaces the root logger's handlers with one on standard error at `level`, in `style`."""
    handler = logging.StreamHandler(sys.stderr)
    if style == "json":
        handler.setFormatter(JsonFormatter())
    else:
        formatter = logging.Formatter(HUMAN)
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
