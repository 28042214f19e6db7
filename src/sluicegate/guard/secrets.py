"""Credentials in text: API keys and tokens of the common providers and clouds, private keys, JSON Web
Tokens, passwords in URLs, connection strings and assignments. Patterns live in `rules/secrets.yaml`; the
checks beyond a pattern (randomness, a decodable JWT header, a password that is not a placeholder) are the
validators below."""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from sluicegate.guard.findings import Finding
from sluicegate.guard.rulebook import RuleScanner, Validator, load


def scan(text: str) -> list[Finding]:
    """The credentials in `text`, as positional findings in order of position."""
    return default_scanner().scan(text)


@cache
def default_scanner() -> RuleScanner:
    return RuleScanner(load("secrets.yaml", VALIDATORS))


def scanner(extra: Iterable[Mapping[str, Any]]) -> RuleScanner:
    """The shipped rules with `extra` ones from the configuration (same shape; the same id replaces)."""
    return RuleScanner(load("secrets.yaml", VALIDATORS, extra))


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    counts = Counter(value)
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _mixed_token(value: str, text: str, start: int) -> int:
    """A random token mixes letters and digits (a slug such as sk-learn-compatible-estimators does not)."""
    tail = value.split("-", 1)[-1] if value.startswith("sk-") else value
    has_digit = any(c.isdigit() for c in tail)
    has_upper = any(c.isupper() for c in tail)
    has_lower = any(c.islower() for c in tail)
    return len(value) if has_digit and (has_upper or has_lower) and entropy(tail) > 3.0 else 0


def _high_entropy(value: str, text: str, start: int) -> int:
    return len(value) if entropy(value) > 3.0 and any(c.isdigit() for c in value) else 0


def _jwt(value: str, text: str, start: int) -> int:
    header = value.split(".", 1)[0]
    try:
        decoded = base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))
    except (binascii.Error, ValueError):
        return 0
    return len(value) if b'"alg"' in decoded or b'"typ"' in decoded else 0


_PLACEHOLDERS = frozenset(
    [
        "password", "passwd", "pass", "pwd", "secret", "changeme", "changeit", "example", "xxx", "xxxx",
        "xxxxx", "xxxxxx", "xxxxxxxx", "yourpassword", "your_password", "mypassword", "my_password", "pa55word",
        "p@ssw0rd", "redacted", "hidden", "none", "null",
    ]
)  # fmt: skip
_TEMPLATED = re.compile(r"^(?:\$\{?|\{\{?|<|%\(|%[sd]|\*+$|\.\.\.|x+$|\[|`)", re.IGNORECASE)


def _password(value: str, text: str, start: int) -> int:
    bare = value.strip("'\"")
    if len(bare) < 3 or bare.lower() in _PLACEHOLDERS or _TEMPLATED.match(bare) or bare.startswith("<"):
        return 0
    return len(value)


def _assigned_secret(value: str, text: str, start: int) -> int:
    if _password(value, text, start) == 0:
        return 0
    return len(value) if entropy(value) > 2.8 and any(c.isdigit() for c in value) else 0


VALIDATORS: dict[str, Validator] = {
    "mixed_token": _mixed_token,
    "high_entropy": _high_entropy,
    "jwt": _jwt,
    "password": _password,
    "assigned_secret": _assigned_secret,
}
