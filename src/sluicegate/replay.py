"""`sluicegate replay`: re-decides the `auto` route for past requests under a new configuration, without
calling any provider, and says what would change: projected cost, tier mix, requests that change tier.

Requests come from any OpenAI-format JSONL (one chat request body a line, or `{"body": {...}}`; a line may
carry what was decided live as `route_tier` and `group`), or, with `--ledger`, from the spend ledger's stored
classification (task type, complexity, tokens) without the prompts.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sluicegate.catalog import ModelCatalog
from sluicegate.classify.classification import Classification, Prompt
from sluicegate.classify.heuristic import HeuristicClassifier
from sluicegate.config.loader import ConfigError, load_config
from sluicegate.pipeline.auto import Member, choose, member_of, members_of, prompt_tokens_bound

PROGRESS_EVERY = 500


@dataclass(frozen=True, slots=True)
class Decision:
    group: str
    tier: str | None
    cost_usd: float  # projected: the group's dearest deployment price for the request's tokens
    task: str | None = None
    complexity: float | None = None


class Replayer:
    """The `auto` decisions of one configuration, made as the gateway makes them (heuristic classifier, no
    key restrictions, no budget in its downgrade tier)."""

    def __init__(self, catalog: ModelCatalog) -> None:
        self._catalog = catalog
        self._pools = {group.name: members_of(catalog, group) for group in catalog if group.pool}
        self._classifier = HeuristicClassifier()

    def request(self, body: dict[str, Any]) -> Decision | None:
        """The decision for one chat request body (None: its model is not in this configuration)."""
        model = str(body.get("model", ""))
        messages = body.get("messages") or []
        prompt = Prompt(
            messages,
            tools=bool(body.get("tools") or body.get("functions")),
            stream=bool(body.get("stream")),
            max_tokens=body.get("max_tokens") or body.get("max_completion_tokens"),
        )
        tokens = prompt_tokens_bound(prompt)
        pool = self._pools.get(model)
        if pool is None:
            group = self._catalog.get(model)
            if group is None:
                return None
            member = member_of(group)
            output = prompt.max_tokens or 256
            return Decision(model, member.tier if member else None, member.cost(tokens, output) / 1e6 if member else 0)
        c = self._classifier.classify_now(prompt)
        return self._choose(pool, c, tokens, c.output_tokens)

    def classified(self, model: str, c: Classification, input_tokens: int, output_tokens: int) -> Decision | None:
        """The decision for a stored classification (the ledger's), at its actual token counts."""
        pool = self._pools.get(model)
        return None if pool is None else self._choose(pool, c, input_tokens, output_tokens)

    @staticmethod
    def _choose(pool: list[Member], c: Classification, tokens: int, output: int) -> Decision:
        found = choose(pool, c, tokens)
        assert found is not None
        member = found[0]
        return Decision(member.group.name, member.tier, member.cost(tokens, output) / 1e6, c.task, c.complexity)


def read_requests(path: str) -> Iterator[tuple[int, dict[str, Any], dict[str, Any]]]:
    """(line number, chat body, the line) for each request of an OpenAI-format JSONL file."""
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON ({exc.msg})") from None
            body = row.get("body") if isinstance(row.get("body"), dict) else row.get("request", row)
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                raise ValueError(f"{path}:{number}: not a chat request (no messages)")
            yield number, body, row


def read_ledger(database: str) -> Iterator[tuple[str, str, Classification, int, int, str | None, str]]:
    """(request id, requested model, classification, input tokens, output tokens, live tier, live model) of
    every ledger row the auto route decided. SQLite files only."""
    path = database.removeprefix("sqlite+aiosqlite:///").removeprefix("sqlite:///")
    if "://" in path:
        raise ValueError("--ledger reads a SQLite ledger (a file path or sqlite:///...); PostgreSQL is not supported")
    if not Path(path).exists():
        raise ValueError(f"no such database file: {path}")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT request_id, requested_model, task_type, complexity, input_tokens, output_tokens, route_tier, "
            "model FROM spend_ledger WHERE task_type IS NOT NULL AND complexity IS NOT NULL ORDER BY request_id"
        )
        for request_id, requested, task, complexity, tokens_in, tokens_out, tier, model in rows:
            c = Classification(task, float(complexity), 1.0, int(tokens_out or 0), "normal", frozenset(), "ledger")
            yield request_id, requested or model, c, int(tokens_in or 0), int(tokens_out or 0), tier, model


def _progress(done: int, total: int | None) -> None:
    if sys.stderr.isatty() and done % PROGRESS_EVERY == 0:
        width = 30
        if total:
            filled = int(width * done / total)
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        else:
            sys.stderr.write(f"\r{done} requests")
        sys.stderr.flush()


def _count_lines(path: str) -> int:
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        baseline_config = load_config(args.baseline) if args.baseline else None
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    new = Replayer(ModelCatalog.from_config(config, {}))
    old = Replayer(ModelCatalog.from_config(baseline_config, {})) if baseline_config is not None else None
    tiers_new: Counter[str] = Counter()
    tiers_old: Counter[str] = Counter()
    cost_new = cost_old = 0.0
    changed: list[dict[str, Any]] = []
    skipped = total = 0
    try:
        if args.ledger:
            source: Iterator[Any] = iter(read_ledger(args.ledger))
            count = None
        else:
            source = iter(read_requests(args.requests))
            count = _count_lines(args.requests)
        for item in source:
            total += 1
            _progress(total, count)
            if args.ledger:
                ident, model, c, tokens_in, tokens_out, live_tier, live_model = item
                decision = new.classified(model, c, tokens_in, tokens_out)
                before = (
                    old.classified(model, c, tokens_in, tokens_out)
                    if old is not None
                    else Decision(live_model, live_tier, 0.0)
                )
            else:
                number, body, row = item
                ident = row.get("id") or row.get("request_id") or f"line {number}"
                decision = new.request(body)
                if old is not None:
                    before = old.request(body)
                elif row.get("route_tier") or row.get("group"):
                    before = Decision(str(row.get("group") or ""), row.get("route_tier"), 0.0)
                else:
                    before = None
            if decision is None:
                skipped += 1
                continue
            tiers_new[decision.tier or "-"] += 1
            cost_new += decision.cost_usd
            if before is not None:
                tiers_old[before.tier or "-"] += 1
                cost_old += before.cost_usd
                if (before.tier, before.group) != (decision.tier, decision.group):
                    changed.append(
                        {
                            "id": ident,
                            "from": {"tier": before.tier, "group": before.group},
                            "to": {"tier": decision.tier, "group": decision.group},
                            "task": decision.task,
                            "complexity": decision.complexity,
                        }
                    )
    except (OSError, ValueError) as exc:
        print(f"sluicegate replay: {exc}", file=sys.stderr)
        return 1
    if count and sys.stderr.isatty():
        sys.stderr.write("\n")
    decided = total - skipped
    print(f"requests        {total} ({skipped} for models this configuration does not have)")
    print(f"projected cost  ${cost_new:.6f}" + (f"   (before: ${cost_old:.6f})" if old is not None else ""))
    names = sorted(set(tiers_new) | set(tiers_old))
    print("tier mix        " + ", ".join(f"{t} {tiers_new[t]} ({tiers_new[t] / max(decided, 1):.0%})" for t in names))
    if tiers_old:
        print("before          " + ", ".join(f"{t} {tiers_old[t]}" for t in names))
        print(f"changed         {len(changed)} requests change tier or group")
    if args.changes:
        with open(args.changes, "w", encoding="utf-8") as out:
            for change in changed:
                out.write(json.dumps(change) + "\n")
        print(f"changes written to {args.changes}")
    return 0


def add_replay_command(commands: Any) -> None:
    replay = commands.add_parser(
        "replay",
        help="re-decide the auto route for past requests under a new configuration (no provider is called)",
    )
    source = replay.add_mutually_exclusive_group(required=True)
    source.add_argument("--requests", metavar="FILE.jsonl", help="OpenAI-format chat requests, one a line")
    source.add_argument("--ledger", metavar="DATABASE", help="the ledger's stored classifications (SQLite file)")
    replay.add_argument("--config", required=True, help="the configuration to decide with")
    replay.add_argument("--baseline", help="compare with this configuration (default: what the file recorded)")
    replay.add_argument("--changes", metavar="FILE.jsonl", help="write the requests that change tier here")
    replay.set_defaults(func=run)
