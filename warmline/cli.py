"""The ``warmline`` command: what an operator does, one subcommand each. The only place that calls sys.exit."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence

from common.settings import Settings


def cmd_db_upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    from knowledge.seed import seed_blocking
    from warmline.migrate import upgrade

    upgrade(settings.db_url)
    print(f"Database is up to date: {_safe_url(settings.db_url)}")
    if seed_blocking(settings.db_url, settings.kb_path):
        print(f"The KB was empty: imported and published {settings.kb_path}")
    return 0


def cmd_kb_import(settings: Settings, args: argparse.Namespace) -> int:
    from common.errors import RelayError
    from knowledge.cli_io import import_file

    try:
        print(import_file(settings.db_url, args.file, args.format, publish=not args.draft))
    except (OSError, UnicodeDecodeError, RelayError) as exc:
        print(f"warmline: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_kb_export(settings: Settings, args: argparse.Namespace) -> int:
    from knowledge.cli_io import export_file

    print(export_file(settings.db_url, args.file, args.format, published_only=not args.drafts))
    return 0


def cmd_train(settings: Settings, args: argparse.Namespace) -> int:
    from warmline.training import ensure_model, load_into_rasa

    started = time.monotonic()
    model, trained = ensure_model(settings, force=args.force)
    verb = f"Trained in {time.monotonic() - started:.0f} s" if trained else "Up to date"
    print(f"{verb}: {model}")
    if args.load:
        load_into_rasa(settings, model)
        print(f"Loaded into the running Rasa at {settings.rasa_url} (no restart)")
    return 0


def cmd_agent_create(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio
    import getpass

    from common.db import create_engine, session_factory
    from handoff.auth import create_agent

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
    from actions.kb_service import live_kb
    from common.long_lived import freeze_startup_objects

    # The live KB is read from the database and indexed before the server answers, then kept fresh.
    app.register_listener(live_kb.start, "before_server_start")
    app.register_listener(freeze_startup_objects, "after_server_start")  # the model and the index: see there
    app.register_listener(live_kb.stop, "after_server_stop")
    from actions import suggest

    suggest.register(app)  # the copilot's suggestions, from this same live KB (actions/suggest.py)
    from actions import telemetry

    telemetry.register(app, settings)  # its own /metrics: the bot's decision time (actions/telemetry.py)
    app.run(host=settings.host, port=settings.actions_port, single_process=True, motd=False, access_log=False)
    return 0


def cmd_run(settings: Settings, _args: argparse.Namespace) -> int:
    from warmline.migrate import upgrade
    from warmline.processes import Supervisor, services
    from warmline.training import ensure_model

    supervisor = Supervisor(settings)
    _stop_on_signals()
    try:
        supervisor.check_ports(services(settings, settings.models_dir))
        upgrade(settings.db_url)
        from knowledge.seed import seed_blocking

        seed_blocking(settings.db_url, settings.kb_path)
        admin_note = _ensure_demo_admin(settings)
        print("Checking the bot's model (trains only if the KB or bot files changed)...", flush=True)
        model, trained = ensure_model(settings)
        print(("Trained " if trained else "Using ") + str(model), flush=True)
        for service in services(settings, model):
            print(f"Starting {service.name} on port {service.port}...", flush=True)
            supervisor.start(service)
        print(f"\nWarmline is ready. Chat with the bot at {settings.relay_url}/\nPress Ctrl-C to stop.", flush=True)
        if admin_note:
            print(admin_note, flush=True)
        # A service that exits is restarted with backoff (warmline/processes.py); the others keep running, so live
        # human chats survive a dead Rasa. Only Ctrl-C or SIGTERM ends this.
        supervisor.supervise()
        return 0
    except KeyboardInterrupt:
        print("\nStopping Warmline...", flush=True)
        return 0
    finally:
        supervisor.stop_all()


def _stop_on_signals() -> None:
    """SIGTERM (systemd, ``docker stop``, ``kill``) stops Warmline as Ctrl-C does: every service stopped, ports
    freed; by default it killed this process alone and left Rasa, the action server and the relay running. SIGINT is
    armed again too: a shell that starts Warmline in the background hands it over ignored."""

    def stop(_signum: int, _frame: object) -> None:
        for name in (signal.SIGTERM, signal.SIGINT):  # the first one stops; more must not cut the shutdown short
            signal.signal(name, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def _ensure_demo_admin(settings: Settings) -> str | None:
    """On a database without an admin, create ``admin`` and return the one-time notice with its password."""
    import asyncio

    from handoff.bootstrap import DEMO_ADMIN, ensure_demo_admin

    chosen = os.environ.get("WARMLINE_ADMIN_PASSWORD")
    password = asyncio.run(ensure_demo_admin(settings.db_url, chosen))
    if password is None:
        return None
    shown = "the one in WARMLINE_ADMIN_PASSWORD" if chosen else password
    return (
        f"\nCreated the demo administrator: log in at {settings.relay_url}/agent as {DEMO_ADMIN!r} with password "
        f"{shown}\n(shown only this once; add agents and teams from the console's Admin tab)."
    )


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
    train.add_argument(
        "--load", action="store_true", help="then hot-load it into the running Rasa (editors' new intents)"
    )
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
    kb = sub.add_parser("kb", help="knowledge base import and export").add_subparsers(dest="kb_command", required=True)
    kb_import = kb.add_parser("import", help="import articles (all or nothing) from YAML, CSV or a Bitext CSV")
    kb_import.add_argument("file")
    kb_import.add_argument("--format", choices=("yaml", "csv", "bitext"), help="default: from the file name and header")
    kb_import.add_argument("--draft", action="store_true", help="save as drafts instead of publishing")
    kb_import.set_defaults(func=cmd_kb_import)
    kb_export = kb.add_parser("export", help="export the KB to YAML or CSV")
    kb_export.add_argument("file")
    kb_export.add_argument("--format", choices=("yaml", "csv"), help="default: from the file name")
    kb_export.add_argument("--drafts", action="store_true", help="every article's newest version, not the published KB")
    kb_export.set_defaults(func=cmd_kb_export)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=os.environ.get("WARMLINE_LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its per-plugin INFO lines bury the useful output
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
