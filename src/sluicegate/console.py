"""What every operator command shares: the running gateway it talks to (`--url`, `--key`), the database it
works on directly (`--database-url`), one-line errors, and lists printed as a table, JSON or CSV."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

URL_ENV = "SLUICEGATE_URL"
KEY_ENVS = ("SLUICEGATE_KEY", "SLUICEGATE_ADMIN_KEY", "SLUICEGATE_MASTER_KEY")  # the first set is used
DATABASE_ENV = "SLUICEGATE_DATABASE_URL"
DEFAULT_URL = "http://127.0.0.1:4000"
OUTPUTS = ("table", "json", "csv")


class CommandError(Exception):
    """A problem the operator can fix, said in one line (no traceback)."""


# -- a running gateway ------------------------------------------------------------------------------


def add_gateway_flags(parser: argparse.ArgumentParser, *, url_default: bool = True) -> None:
    where = f"; default {DEFAULT_URL}" if url_default else ""
    parser.add_argument("--url", help=f"the running gateway's base URL (env {URL_ENV}{where})")
    parser.add_argument("--key", help="an admin or the master key (env SLUICEGATE_KEY)")


def gateway_url(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> str:
    url: str = getattr(args, "url", None) or environ.get(URL_ENV) or DEFAULT_URL
    return url.rstrip("/")


def gateway_key(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> str:
    key = getattr(args, "key", None)
    if key:
        return str(key)
    legacy = getattr(args, "key_env", None)  # the older --key-env NAME flag
    for name in ((legacy,) if legacy else ()) + KEY_ENVS:
        if environ.get(name):
            return environ[name]
    raise CommandError("give --key or set SLUICEGATE_KEY (an admin or the master key) to talk to the gateway")


def admin_request(args: argparse.Namespace, method: str, path: str, body: Any = None, timeout: float = 30) -> Any:
    """One call to the gateway's admin API: its JSON answer, or a `CommandError` with its status and message."""
    import urllib.error
    import urllib.request

    url = gateway_url(args)
    request = urllib.request.Request(
        url + path,
        data=orjson.dumps(body) if body is not None else None,
        method=method,
        headers={"authorization": f"Bearer {gateway_key(args)}", "content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = response.read()
    except urllib.error.HTTPError as error:
        raise CommandError(f"{error.code}: {_error_message(error.read())}") from None
    except OSError as error:
        raise unreachable(url, getattr(error, "reason", error)) from None
    return orjson.loads(data) if data else None


def _error_message(body: bytes) -> str:
    try:
        data = orjson.loads(body)
        message = data["error"]["message"] if isinstance(data.get("error"), dict) else data.get("detail", data)
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError):
        message = body.decode(errors="replace")
    text = str(message).strip()
    return text.splitlines()[0][:300] if text else "(no message)"


def unreachable(url: str, exc: BaseException) -> CommandError:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return CommandError(f"cannot reach the gateway at {url}: {reason}")


# -- a database, directly ---------------------------------------------------------------------------


def add_database_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        dest="database_url",
        help=f"work on this database directly, not through a gateway (env {DATABASE_ENV})",
    )


def database_url(args: argparse.Namespace, named_in_config: str | None, environ: Mapping[str, str] = os.environ) -> str:
    """The database a command works on directly: `--database-url`, SLUICEGATE_DATABASE_URL, or the one the
    `--config` file names. Never a default: a database created in the wrong directory holds keys no gateway
    knows."""
    url = getattr(args, "database_url", None) or environ.get(DATABASE_ENV) or named_in_config
    if not url:
        raise CommandError(
            f"give --url (a running gateway) or --database-url / {DATABASE_ENV} (work on its database directly)"
        )
    return str(url)


# -- output ----------------------------------------------------------------------------------------


def add_output_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", "-o", choices=OUTPUTS, default=None, help="how to print (default: table)")
    parser.add_argument("--json", action="store_true", help="the same as --output json")


def output_of(args: argparse.Namespace) -> str:
    if getattr(args, "output", None):
        return str(args.output)
    return "json" if getattr(args, "json", False) else "table"


def when(value: Any, now: dt.datetime | None = None) -> str:
    """A moment for people: ISO 8601 in UTC with how far away it is (`2026-12-02T10:00:00Z (in 2h)`)."""
    if value is None or value == "":
        return "-"
    if isinstance(value, int | float):
        moment = dt.datetime.fromtimestamp(value, dt.UTC)
    else:
        try:
            moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return str(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    seconds = (moment - now).total_seconds()
    return f"{moment.astimezone(dt.UTC).strftime('%Y-%m-%dT%H:%M:%SZ')} ({_relative(seconds)})"


def _relative(seconds: float) -> str:
    span = abs(seconds)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if span >= size:
            amount = f"{span / size:.0f}{unit}"
            break
    else:
        amount = f"{span:.0f}s"
    return f"in {amount}" if seconds >= 0 else f"{amount} ago"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "*"
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    return str(value)


def print_rows(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], output: str, times: Sequence[str] = ()
) -> None:
    """A list as a table (times shown as ISO 8601 with a relative hint), JSON or CSV (times as ISO 8601)."""
    if output == "json":
        sys.stdout.write(orjson.dumps(list(rows), option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    if output == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else _csv_cell(row.get(c), c in times) for c in columns])
        sys.stdout.write(out.getvalue())
        return
    if not rows:
        print("(none)")
        return
    cells = [[when(row.get(c)) if c in times else _cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def _csv_cell(value: Any, is_time: bool) -> str:
    if is_time and isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return _cell(value)


def print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


# -- errors ----------------------------------------------------------------------------------------


def one_line(exc: BaseException) -> str:
    """An exception as one line an operator can act on (the first line of its message, its type if none)."""
    if isinstance(exc, CommandError):
        return str(exc)
    text = str(exc).strip()
    if hasattr(exc, "orig") and getattr(exc, "orig", None) is not None:  # SQLAlchemy wraps the driver's error
        text = str(exc.orig).strip() or text
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
