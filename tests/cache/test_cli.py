"""`sluicegate response-cache invalidate`: what it sends to the admin API, and what it refuses to send."""

from __future__ import annotations

import io
import json
import urllib.request
from typing import Any

import pytest

from sluicegate.cli import main


class _Answer(io.BytesIO):
    def __enter__(self) -> _Answer:
        return self

    def __exit__(self, *args: object) -> None:
        pass


def test_invalidate_posts_what_was_named_with_the_master_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sent: list[Any] = []

    def urlopen(request: urllib.request.Request, timeout: float) -> _Answer:
        sent.append(request)
        return _Answer(b'{"dropped": 3}')

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.setenv("SLUICEGATE_MASTER_KEY", "sk-master")
    code = main(
        ["response-cache", "invalidate", "--namespace", "tenant:acme", "--group", "gpt-4o", "--url", "http://gw:1"]
    )
    assert code == 0 and json.loads(capsys.readouterr().out) == {"dropped": 3}
    (request,) = sent
    assert request.full_url == "http://gw:1/admin/response-cache/invalidate" and request.get_method() == "POST"
    assert json.loads(request.data) == {"namespace": "tenant:acme", "group": "gpt-4o"}
    assert request.get_header("Authorization") == "Bearer sk-master"


def test_invalidate_needs_a_target_and_a_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("nothing should be sent"))
    monkeypatch.setenv("SLUICEGATE_MASTER_KEY", "sk-master")
    assert main(["response-cache", "invalidate"]) == 1
    assert "name --namespace, --group or --cache-key, or --all" in capsys.readouterr().err
    for name in ("SLUICEGATE_MASTER_KEY", "SLUICEGATE_KEY", "SLUICEGATE_ADMIN_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert main(["response-cache", "invalidate", "--all"]) == 1
    assert "--key" in capsys.readouterr().err
