"""Reading a simulator YAML file, with every problem reported as `file:line: key: what was expected`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sluicegate.providers.simulator.config import SimulatorConfig

_Loc = tuple[str | int, ...]
_KEY_ERRORS = frozenset({"missing", "extra_forbidden"})


def _dotted(loc: _Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _locate(root: yaml.Node | None, loc: tuple[Any, ...], keep_last: bool) -> tuple[_Loc, int | None]:
    """Walk pydantic's error location through the YAML tree: the key path as written, and its line.

    Parts that are not in the YAML (pydantic's union tags such as `uniform`) are dropped, except, with
    `keep_last`, the last part: the missing or unknown key itself.
    """
    node, path, line = root, [], (root.start_mark.line + 1 if root is not None else None)
    for index, part in enumerate(loc):
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            pair = next((pair for pair in node.value if pair[0].value == part), None)
            if pair is not None:
                line, child = pair[0].start_mark.line + 1, pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is not None:
            node = child
            path.append(part)
        elif keep_last and index == len(loc) - 1:
            path.append(part)
    return tuple(path), line


def parse_simulator_config(text: str, file: str = "<simulator config>") -> SimulatorConfig:
    """Validate YAML text; every problem is reported as `file:line: key: what was expected`."""
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{file}: not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{file}:1: (top level): expected a mapping")
    try:
        return SimulatorConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            path, line = _locate(root, error["loc"], keep_last=error["type"] in _KEY_ERRORS)
            message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
            problems.append(f"{file}:{line}: {_dotted(path)}: {message}")
        raise ValueError("\n".join(problems)) from None


def load_simulator_config(path: str | Path) -> SimulatorConfig:
    """Read and validate a simulator YAML file; raises ValueError naming the file, line and key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read file: {exc.strerror}") from None
    return parse_simulator_config(text, str(path))
