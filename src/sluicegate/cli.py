"""The `sluicegate` command: serve, the simulator, and configuration checks."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from sluicegate.config.loader import (
    ConfigError,
    demo_config,
    load_config,
    missing_secrets,
    parse_config,
    read_config_text,
)
from sluicegate.config.schema import GatewayConfig
from sluicegate.console import one_line

DEMO_KEY = "sk-sluice-demo"
_ALLOW_MISSING = "a provider credential missing from the environment is a warning, not an error"


DEMO_ACCESS_LOG = ".sluicegate/demo-access.log"  # the demo's access log: not mixed with its banner


def _configure_logging(args: argparse.Namespace, config: GatewayConfig | None = None) -> None:
    """The gateway's log: --log-level / --log-format, else the configuration's server.log_level / log_format."""
    from sluicegate.telemetry.logs import configure_logging

    server = config.server if config is not None else None
    level = getattr(args, "log_level", None) or (server.log_level if server else "info")
    style = getattr(args, "log_format", None) or (server.log_format if server else "human")
    configure_logging(level, style)
    for chatty in ("httpx", "httpcore"):  # a line per HTTP call is noise in a command's output and a server's log
        logging.getLogger(chatty).setLevel(logging.WARNING)


def with_access_log(config: GatewayConfig, path: str | None) -> GatewayConfig:
    """The configuration with its access log written to `path` ("-": standard output), when given."""
    if path is None:
        return config
    access = config.server.access_log.model_copy(update={"path": path, "enabled": True})
    return config.model_copy(update={"server": config.server.model_copy(update={"access_log": access})})


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported platform
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _load_checked(file: str, allow_missing_secrets: bool) -> GatewayConfig:
    """The configuration in `file`, its provider credentials checked against the environment: a missing one
    is a problem, or with `allow_missing_secrets` a warning on standard error naming the provider."""
    if not allow_missing_secrets:
        return load_config(file, environ=os.environ)
    config = load_config(file)
    for problem in missing_secrets(read_config_text(file), file, config, os.environ):
        print(f"warning: {problem} (its requests will fail until it is set)", file=sys.stderr)
    return config


def _check_config(args: argparse.Namespace) -> int:
    try:
        config = _load_checked(args.file, args.allow_missing_secrets)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{args.file}: {len(exc.problems)} problem(s)", file=sys.stderr)
        return 1
    deployments = sum(len(group.deployments) for group in config.models)
    print(
        f"{args.file}: OK ({len(config.providers)} providers, {len(config.models)} models, {deployments} deployments)"
    )
    return 0


def _import_litellm(args: argparse.Namespace) -> int:
    """A LiteLLM proxy config as a Sluicegate one on standard output; what did not map on standard error."""
    import yaml

    from sluicegate.config.litellm import convert

    try:
        with open(args.file, encoding="utf-8") as handle:
            source = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as exc:
        print(f"sluicegate import: {args.file}: {one_line(exc)}", file=sys.stderr)
        return 1
    try:
        if not isinstance(source, dict):
            raise ValueError("not a LiteLLM proxy config: it needs model_list, a list of models")
        conversion = convert(source)
    except ValueError as exc:
        print(f"sluicegate import: {args.file}: {exc}", file=sys.stderr)
        return 1
    header = [f"# Converted from {args.file} (LiteLLM proxy config) by `sluicegate import litellm`."]
    header += [f"# not mapped: {note}" for note in conversion.notes]
    text = "\n".join(header) + "\n" + yaml.safe_dump(conversion.config, sort_keys=False, allow_unicode=True)
    try:
        parse_config(text, "<converted>")
    except ConfigError as exc:  # a conversion the gateway would refuse is a bug here, said plainly
        for problem in exc.problems:
            print(f"sluicegate import: the result does not check: {problem}", file=sys.stderr)
        return 1
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    for note in conversion.notes:
        print(f"not mapped: {note}", file=sys.stderr)
    groups = len(conversion.config["models"])
    print(f"{groups} model group(s), {len(conversion.notes)} note(s)", file=sys.stderr)
    return 0


def _demo_banner(port: int, key: str, simulator_port: int, access_log: str = DEMO_ACCESS_LOG) -> str:
    base = f"http://127.0.0.1:{port}/v1"
    where = "standard output" if access_log == "-" else access_log
    return (
        "\nSluicegate demo is running (simulated providers, no API keys needed).\n"
        f"  base URL   {base}\n"
        f"  API key    {key}\n"
        f"  simulator  http://127.0.0.1:{simulator_port} (faults: /_sim/faults)\n"
        f"  access log {where}\n\n"
        f"  curl {base}/chat/completions -H 'Authorization: Bearer {key}' \\\n"
        "    -H 'Content-Type: application/json' \\\n"
        """    -d '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}'\n\n"""
        '  Python:  OpenAI(base_url="' + base + '", api_key="' + key + '")\n\n'
        "  Ask the same twice: the second answer comes from the response cache (x-sluice-cache: hit-exact).\n"
    )


def _serve(args: argparse.Namespace) -> int:
    from sluicegate.server.gateway import MissingMasterKey
    from sluicegate.server.run import StartupError, serve_gateway, serve_with_companion

    _install_uvloop()
    if args.workers is not None and args.workers < 1:
        print("sluicegate serve: --workers must be at least 1", file=sys.stderr)
        return 2
    if args.demo and (args.workers or 1) > 1:
        print(
            "sluicegate serve: the demo runs on the in-process hot state, which workers cannot share: "
            "use --workers 1 (or a --config with redis.url)",
            file=sys.stderr,
        )
        return 2
    if args.demo:
        from sluicegate.providers.simulator import create_app, demo_simulator_config

        key = os.environ.get("SLUICEGATE_MASTER_KEY") or DEMO_KEY
        port = args.port if args.port is not None else 4000

        access_log = args.access_log or DEMO_ACCESS_LOG
        _configure_logging(args)

        async def run_gateway(simulator_port: int) -> None:
            config = with_access_log(demo_config(f"http://127.0.0.1:{simulator_port}"), access_log)

            def started(bound: int) -> None:
                print(_demo_banner(bound, key, simulator_port, access_log), flush=True)

            await serve_gateway(config, args.host or "127.0.0.1", port, master_key=key, on_started=started)

        try:
            asyncio.run(
                serve_with_companion(create_app(demo_simulator_config()), "127.0.0.1", args.simulator_port, run_gateway)
            )
        except StartupError as exc:
            print(f"sluicegate serve: {exc}", file=sys.stderr)
            return 1
        return 0
    if not args.config:
        print("sluicegate serve: give --config FILE or --demo", file=sys.stderr)
        return 2
    try:
        config = with_access_log(_load_checked(args.config, args.allow_missing_secrets), args.access_log)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    _configure_logging(args, config)
    host = args.host or config.server.host
    port = args.port if args.port is not None else config.server.port

    workers = args.workers if args.workers is not None else config.server.workers
    if workers > 1:
        return _serve_workers(config, host, port, workers)

    def announce(bound: int) -> None:
        logging.getLogger("sluicegate").info("gateway listening on http://%s:%d", host, bound)

    try:
        asyncio.run(serve_gateway(config, host, port, on_started=announce))
    except (MissingMasterKey, StartupError) as exc:
        print(f"sluicegate serve: {exc}", file=sys.stderr)
        return 1
    return 0


def _serve_workers(config: GatewayConfig, host: str, port: int, count: int) -> int:
    """`count` gateway processes on one port under a supervising parent (`server/workers.py`)."""
    from sluicegate.server.gateway import MissingMasterKey
    from sluicegate.server.run import StartupError, serve_gateway
    from sluicegate.server.workers import Supervisor, WorkerLink, hold_port, shared_state_problem

    problem = shared_state_problem(config)
    if problem is not None:
        print(f"sluicegate serve: {problem}", file=sys.stderr)
        return 1
    try:
        held, bound = hold_port(host, port)
    except StartupError as exc:
        print(f"sluicegate serve: {exc}", file=sys.stderr)
        return 1

    def run_worker(link: WorkerLink) -> int:
        held.close()
        try:
            asyncio.run(serve_gateway(config, host, bound, worker=link))
        except (MissingMasterKey, StartupError) as exc:
            print(f"sluicegate serve: worker {link.index}: {exc}", file=sys.stderr)
            return 1
        return 0

    def announce() -> None:
        logging.getLogger("sluicegate").info("gateway listening on http://%s:%d (%d workers)", host, bound, count)

    supervisor = Supervisor(count, run_worker, stop_grace=config.server.graceful_shutdown_seconds)
    try:
        return supervisor.run(announce)
    finally:
        held.close()


def _simulator(args: argparse.Namespace) -> int:
    import uvicorn

    from sluicegate.providers.simulator import create_app, demo_simulator_config, load_simulator_config
    from sluicegate.server.run import uvicorn_config

    try:
        config = load_simulator_config(args.config) if args.config else demo_simulator_config()
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    _install_uvloop()
    print(f"provider simulator listening on http://{args.host}:{args.port}", flush=True)
    uvicorn.Server(uvicorn_config(create_app(config), args.host, args.port, 1.0)).run()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sluicegate", description="Sluicegate AI gateway")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", help="YAML configuration file")
    serve.add_argument("--demo", action="store_true", help="run on the built-in demo configuration")
    serve.add_argument("--host", default=None, help="address to listen on (default from config, 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port to listen on (default from config, 4000)")
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="gateway processes on the port (default from config, 1; above 1 needs redis.url)",
    )
    serve.add_argument("--simulator-port", type=int, default=0, help="demo only: simulator port (0: any free)")
    serve.add_argument("--allow-missing-secrets", action="store_true", help=_ALLOW_MISSING)
    serve.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="default: server.log_level (info)"
    )
    serve.add_argument("--log-format", choices=["human", "json"], help="default: server.log_format (human)")
    serve.add_argument(
        "--access-log",
        help=f"access log file, or - for standard output (default: server.access_log.path; demo: {DEMO_ACCESS_LOG})",
    )
    serve.set_defaults(func=_serve)

    simulator = commands.add_parser("simulator", help="run the provider simulator on its own")
    simulator.add_argument("--host", default="127.0.0.1")
    simulator.add_argument("--port", type=int, default=9100)
    simulator.add_argument("--config", help="simulator YAML (models, latencies, faults)")
    simulator.set_defaults(func=_simulator)

    check = commands.add_parser("check-config", help="validate a configuration file")
    check.add_argument("file")
    check.add_argument("--allow-missing-secrets", action="store_true", help=_ALLOW_MISSING)
    check.set_defaults(func=_check_config)

    importing = commands.add_parser("import", help="convert another gateway's configuration")
    sources = importing.add_subparsers(dest="source", required=True)
    litellm = sources.add_parser("litellm", help="a LiteLLM proxy config.yaml -> a Sluicegate config")
    litellm.add_argument("file", help="the LiteLLM proxy config (model_list, router_settings, ...)")
    litellm.add_argument("--output", "-o", help="write the Sluicegate config here (default: standard output)")
    litellm.set_defaults(func=_import_litellm)

    from sluicegate.keys.cli import add_commands

    add_commands(commands)

    from sluicegate.routing.cli import add_chaos_command

    add_chaos_command(commands)

    from sluicegate.state.cli import add_limits_command

    add_limits_command(commands)

    from sluicegate.cache.cli import add_response_cache_command

    add_response_cache_command(commands)

    from sluicegate.telemetry.audit_cli import add_audit_command

    add_audit_command(commands)

    from sluicegate.telemetry.top import add_top_command

    add_top_command(commands)

    from sluicegate.guard.cli import add_firewall_command

    add_firewall_command(commands)

    from sluicegate.replay import add_replay_command

    add_replay_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args)
    try:
        result: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one line for the operator; --debug for the traceback
        if args.debug:
            raise
        print(f"sluicegate {args.command}: {one_line(exc)}", file=sys.stderr)
        return 1
    return result


if __name__ == "__main__":
    sys.exit(main())
