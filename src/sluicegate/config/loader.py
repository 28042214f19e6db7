"""Reads a YAML configuration and reports every problem with its file, line and key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sluicegate.config.schema import GatewayConfig

Path_ = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key or '(top level)'}: {self.message}"


class ConfigError(Exception):
    def __init__(self, problems: list[ConfigProblem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _line_of(root: yaml.Node | None, path: Path_) -> int | None:
    """Line (1-based) of the deepest node along `path`: the key itself when the key is known."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in path:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == part:
                    line = key_node.start_mark.line + 1
                    node = value_node
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _expected(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key (not part of the configuration schema)"
    if kind == "missing":
        return "required key is missing"
    message = str(error["msg"])
    given = error.get("input")
    if not isinstance(given, dict | list) and given is not None:
        message += f" (got {given!r})"
    return message


def parse_config(
    text: str, file: str = "<config>", *, environ: Mapping[str, str] | None = None, empty_ok: bool = True
) -> GatewayConfig:
    """The configuration in `text`, or `ConfigError` naming every problem. With `environ`, a provider
    credential it does not hold is a problem too (see `missing_secrets` to have them as warnings)."""
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError([ConfigProblem(file, line, "", f"not valid YAML: {exc}")]) from None
    if data is None:
        if not empty_ok:
            raise ConfigError([ConfigProblem(file, None, "", "the file is empty (no providers, no models)")])
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem(file, 1, "", "expected a mapping at the top level")])
    try:
        config = GatewayConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            path: Path_ = tuple(p for p in error["loc"] if isinstance(p, str | int))
            problems.append(ConfigProblem(file, _line_of(root, path), _dotted(path), _expected(error)))
        raise ConfigError(problems) from None
    found = config.reference_problems()
    if environ is not None:
        found += config.missing_secrets(environ)
    problems = [ConfigProblem(file, _line_of(root, path), _dotted(path), message) for path, message in found]
    if problems:
        raise ConfigError(problems)
    return config


def missing_secrets(text: str, file: str, config: GatewayConfig, environ: Mapping[str, str]) -> list[ConfigProblem]:
    """The provider credentials `config` names that `environ` does not hold, as problems with their lines."""
    root = yaml.compose(text)
    return [
        ConfigProblem(file, _line_of(root, path), _dotted(path), message)
        for path, message in config.missing_secrets(environ)
    ]


def read_config_text(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigProblem(str(path), None, "", f"cannot read file: {exc.strerror}")]) from None


def load_config(path: str | Path, *, environ: Mapping[str, str] | None = None) -> GatewayConfig:
    """A configuration file; an empty one is an error. With `environ`, missing provider credentials too."""
    return parse_config(read_config_text(path), str(path), environ=environ, empty_ok=False)


def demo_config_text() -> str:
    return (resources.files("sluicegate.config") / "demo.yaml").read_text(encoding="utf-8")


def demo_config(simulator_url: str) -> GatewayConfig:
    """The demo's configuration, its providers at `simulator_url`. Its response cache looks answers up by
    meaning only where the local embedding model is installed (`sluicegate[local-models]`); without it the
    model host is left out and the cache is exact only."""
    config = parse_config(demo_config_text().replace("SIMULATOR_URL", simulator_url), "<demo>")
    if find_spec("wordllama") is None or find_spec("numpy") is None:
        config = config.model_copy(update={"model_host": None})
    return config
