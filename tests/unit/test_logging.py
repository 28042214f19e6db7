"""The gateway's log: level and format from --log-level / --log-format or the configuration, JSON lines
with the exception's type; the access log's path from --access-log."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Iterator

import pytest

from sluicegate.cli import _configure_logging, build_parser, with_access_log
from sluicegate.config.schema import GatewayConfig


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def config(**server: object) -> GatewayConfig:
    return GatewayConfig.model_validate({"server": server})


def test_json_lines_at_the_configured_level(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["serve", "--demo"])
    _configure_logging(args, config(log_level="warning", log_format="json"))
    log = logging.getLogger("sluicegate.test")
    log.info("not shown at warning")
    log.warning("spool at %d%%", 93)
    try:
        raise TimeoutError("database")
    except TimeoutError:
        log.exception("ledger write failed")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(e["level"], e["logger"], e["message"]) for e in lines] == [
        ("warning", "sluicegate.test", "spool at 93%"),
        ("error", "sluicegate.test", "ledger write failed"),
    ]
    assert lines[1]["error"] == "TimeoutError" and "database" in lines[1]["exception"]
    assert isinstance(lines[0]["ts"], float)


def test_flags_win_over_the_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["serve", "--demo", "--log-level", "debug", "--log-format", "human"])
    _configure_logging(args, config(log_level="error", log_format="json"))
    logging.getLogger("sluicegate.test").debug("routing detail")
    line = capsys.readouterr().err.strip()
    assert line.endswith(" DEBUG sluicegate.test: routing detail") and not line.startswith("{")


def test_access_log_path_override() -> None:
    base = config(access_log={"enabled": False, "path": "-"})
    assert with_access_log(base, None) is base
    moved = with_access_log(base, "/var/log/sluicegate/access.log")
    assert (moved.server.access_log.path, moved.server.access_log.enabled) == ("/var/log/sluicegate/access.log", True)
    assert moved.server.port == base.server.port


def test_bad_level_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--log-level", "loud"])
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(ValueError):
        config(log_level="loud")
    assert isinstance(build_parser().parse_args(["serve"]), argparse.Namespace)
