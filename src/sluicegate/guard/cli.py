"""`sluicegate firewall test`: every finding of the input checks on a text (category, score, rule id) and what
each level would do with them, so an operator can see why something is blocked and tune the rules."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from typing import Any

import orjson
import yaml

from sluicegate.guard.config import GuardrailsConfig
from sluicegate.guard.findings import Finding


def _settings(path: str | None) -> GuardrailsConfig:
    if path is None:
        return GuardrailsConfig()
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle) or {}
    return GuardrailsConfig.model_validate(data.get("guardrails") or {})


def _detectors() -> list[Callable[[str], list[Finding]]]:
    found = []
    for name in ("secrets", "pii"):
        try:
            found.append(importlib.import_module(f"sluicegate.guard.{name}").scan)
        except (ModuleNotFoundError, AttributeError):
            continue
    return found


def _test(args: argparse.Namespace) -> int:
    from sluicegate.guard.firewall import Firewall
    from sluicegate.guard.firewall_rules import rule_set
    from sluicegate.guard.policy import Levels, decide

    if (args.text is None) == (args.file is None):
        print("sluicegate firewall test: give a TEXT or --file (not both)", file=sys.stderr)
        return 2
    try:
        if args.file == "-":
            text = sys.stdin.read()
        elif args.file is not None:
            with open(args.file, encoding="utf-8") as handle:
                text = handle.read()
        else:
            text = args.text
        settings = _settings(args.config)
        firewall = Firewall(rule_set(settings.rules))
    except (OSError, ValueError) as exc:
        print(f"sluicegate firewall test: {exc}", file=sys.stderr)
        return 1
    findings = firewall.scan(text, args.role)
    for scan in _detectors():
        findings.extend(scan(text))
    levels = Levels(settings.policies)
    names = [args.level] if args.level else [n for n in levels.names if n != "off"]
    if args.level and not levels.known(args.level):
        print(
            f"sluicegate firewall test: unknown level '{args.level}' (expected one of: {', '.join(levels.names)})",
            file=sys.stderr,
        )
        return 1
    verdicts: dict[str, dict[str, Any]] = {}
    for name in names:
        policy = levels.get(name)
        if policy is None:
            verdicts[name] = {"action": "allow"}
            continue
        decision = decide(policy, findings)
        verdicts[name] = {"action": decision.action, "categories": list(decision.categories)}
        if decision.blocked_by is not None:
            verdicts[name]["rule"] = decision.blocked_by.rule_id
    if args.json:
        out = {
            "rules": list(firewall.rules.versions),
            "findings": [
                {"category": f.category, "rule_id": f.rule_id, "score": f.score, "start": f.start, "end": f.end}
                for f in findings
            ],
            "levels": verdicts,
        }
        sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    print(f"rules: {', '.join(firewall.rules.versions)}; {len(text)} characters")
    if not findings:
        print("no findings")
    else:
        print(f"{'rule id':34} {'category':22} {'score':>5}  where")
        for finding in sorted(findings, key=lambda f: (-f.score, f.rule_id)):
            where = f"chars {finding.start}-{finding.end}" if finding.positional else "whole text"
            print(f"{finding.rule_id:34} {finding.category:22} {finding.score:5.2f}  {where}")
    for name, verdict in verdicts.items():
        detail = ""
        if verdict.get("categories"):
            detail = f" ({', '.join(verdict['categories'])}"
            detail += f"; blocked by {verdict['rule']})" if "rule" in verdict else ")"
        print(f"{name}: {verdict['action']}{detail}")
    return 0


def add_firewall_command(commands: Any) -> None:
    firewall = commands.add_parser("firewall", help="the prompt firewall").add_subparsers(dest="action", required=True)
    test = firewall.add_parser(
        "test", help="show each finding (category, score, rule id) on a text, and each level's action"
    )
    test.add_argument("text", nargs="?", help="the text to check")
    test.add_argument("--file", help="read the text from a file ('-': standard input)")
    test.add_argument("--config", help="a gateway configuration: its guardrails section's rules and policies apply")
    test.add_argument("--level", help="show only this level's action")
    test.add_argument(
        "--role", choices=["user", "tool"], default="user", help="check the text as a user turn or a tool result"
    )
    test.add_argument("--json", action="store_true", help="machine-readable output")
    test.set_defaults(func=_test)
