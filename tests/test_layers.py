"""The import-layering contracts in pyproject.toml ([tool.importlinter]): a lower layer of the request path
(formats, adapters, routing, hot state, the pipeline's core) never imports a higher one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_no_lower_layer_imports_a_higher_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlinter.cli import lint_imports

    monkeypatch.chdir(ROOT)
    assert lint_imports(config_filename=os.fspath(ROOT / "pyproject.toml"), no_cache=True) == 0
