"""The ``warmline`` command: what an operator does, one subcommand each. The only place that calls sys.exit."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence

from warmline.settings import Settings


def cmd_db_upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    from warmline.migrate import upgrade

    upgrade(settings.db_url)
    print(f"Database is up to date: {_safe_url(settings.db_url)}")
    return 0


def cmd_train(settings: Settings, args: argparse.Namespace) -> int:
    from warmline.training import ensure_model

    started = time.monotonic()
    model, trained = ensure_model(settings, force=args.force)
    verb = f"Trained in {time.monotonic() - started:.0f} s" if trained else "Up to date"
    print(f"{verb}: {model}")
    return 0


def cmd_agent_create(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio
    import getpass

    from handoff.auth import create_agent
    from warmline.db import create_engine, session_factory

    password = args.password or os.environ.get("WARMLINE_AGENT_PASSWORD") or getpass.getpass("Password: ")

    async def create() -> None:
        engine = create_engine(settings.db_url)
        try:
            async with session_factory(engine)() as s, s.begin():
                await create_agent(s, args.username, args.name or args.username, password, args.role)
        finally:
            await engine.dispose()

    try:
        asyncio.run(create())
    except ValueError as exc:
        print(f"warmline: {exc}", file=sys.stderr)
        return 2
    print(f"Agent {args.username!r} is ready; they log in at {settings.relay_url}/agent")
    return 0


def cmd_relay(settings: Settings, _args: argparse.Namespace) -> int:
    from handoff.app import create_app

    app = create_app(settings)
    app.run(host=settings.host, port=settings.relay_port, single_process=True, motd=False, access_log=False)
    return 0


def cmd_actions(settings: Settings, _args: argparse.Namespace) -> int:
    from rasa_sdk.endpoint import create_app
    from rasa_sdk.executor import ActionExecutor

    executor = ActionExecutor()
    executor.register_package("actions")
    # One process: the live KB index is built once, here, not again in a spawned worker.
    app = create_app(executor, cors_origins=None)
    app.run(host=settings.host, port=settings.actions_port, single_process=True, motd=False, access_log=False)
    return 0


def cmd_run(settings: Settings, _args: argparse.Namespace) -> int:
    from warmline.migrate import upgrade
    from warmline.processes import Supervisor, services
    from warmline.training import ensure_model

    supervisor = Supervisor(settings)
    try:
        supervisor.check_ports(services(settings, settings.models_dir))
        upgrade(settings.db_url)
        print("Checking the bot's model (trains only if the KB or bot files changed)...", flush=True)
        model, trained = ensure_model(settings)
        print(("Trained " if trained else "Using ") + str(model), flush=True)
        for service in services(settings, model):
            print(f"Starting {service.name} on port {service.port}...", flush=True)
            supervisor.start(service)
        print(f"\nWarmline is ready. Chat with the bot at {settings.relay_url}/\nPress Ctrl-C to stop.", flush=True)
        while (exited := supervisor.first_exited()) is None:
            time.sleep(0.5)
        service, code, log = exited
        print(f"{service.name} stopped unexpectedly (exit {code}); see {log}. Stopping Warmline.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping Warmline...", flush=True)
        return 0
    finally:
        supervisor.stop_all()


def _safe_url(url: str) -> str:
    # Never print a password from DATABASE_URL.
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="warmline", description="Chatbot-first deflection and escalation engine.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="train if needed, then start Rasa, the action server and the relay").set_defaults(
        func=cmd_run
    )
    train = sub.add_parser("train", help="train the bot's model if the KB or bot files changed")
    train.add_argument("--force", action="store_true", help="train even if an up-to-date model exists")
    train.set_defaults(func=cmd_train)
    db = sub.add_parser("db", help="database tasks").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="create the database or apply pending migrations").set_defaults(func=cmd_db_upgrade)
    sub.add_parser("relay", help="run one relay process (several can share Redis and the database)").set_defaults(
        func=cmd_relay
    )
    agent = sub.add_parser("agent", help="agent accounts").add_subparsers(dest="agent_command", required=True)
    create = agent.add_parser("create", help="create an agent (or reset their name and password)")
    create.add_argument("username")
    create.add_argument("--name", help="the name customers see (default: the username)")
    create.add_argument("--password", help="default: $WARMLINE_AGENT_PASSWORD, else asked for")
    create.add_argument("--role", choices=("agent", "editor", "admin"), default="agent")
    create.set_defaults(func=cmd_agent_create)
    sub.add_parser("actions", help="run the Rasa action server").set_defaults(func=cmd_actions)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=os.environ.get("WARMLINE_LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s")
    settings = Settings()
    from warmline.processes import StartError
    from warmline.training import TrainingError

    try:
        sys.exit(args.func(settings, args))
    except (StartError, TrainingError) as exc:
        print(f"warmline: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
