"""The relay's app factory: a Sanic app with python-socketio attached, resources built in server listeners."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import socketio
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from common.db import HotPathWriter, create_engine, session_factory
from common.errors import RelayError
from common.long_lived import freeze_startup_objects
from common.settings import Settings
from handoff import origins, rest, ws_transport
from handoff.admin import admin
from handoff.agent import AgentSide
from handoff.api import api
from handoff.bot_client import BotClient
from handoff.console import ConsoleSide
from handoff.copilot import Copilot, HttpSuggestSource, actions_base_url
from handoff.customer import CustomerPolicy, CustomerSide, SocketSessions
from handoff.feedback import FeedbackSide
from handoff.kb_api import kb_api
from handoff.origins import OriginNotAllowed
from handoff.outbox import Outbox
from handoff.packets import RelayPacket
from handoff.pubsub import LocalRooms, RoomRoutedRedisManager
from handoff.queues import Dispatcher
from handoff.ratelimit import Limiter, socket_gate
from handoff.reports_api import routes as reports_routes
from handoff.security import headers_for

log = logging.getLogger(__name__)

CONSOLE = Path(__file__).resolve().parent.parent / "console"
STATIC = CONSOLE / "static"
SOCKET_IO_CLIENT = CONSOLE / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"
# The embeddable widget (console/widget, built output committed). Its versioned URL never changes content, so it is
# cached for a year; the unversioned alias follows new releases within minutes.
WIDGET = CONSOLE / "widget" / "dist" / "warmline.js"
WIDGET_VERSION = json.loads((CONSOLE / "package.json").read_text())["version"]
WIDGET_MIME = "application/javascript; charset=utf-8"
# Large enough for any legal chat message in any encoding; the handlers give the precise, friendly limit.
MAX_PACKET_BYTES = 256 * 1024


def client_manager(settings: Settings) -> socketio.AsyncManager:
    """Across several relay processes, rooms and emits go through Redis (handoff/pubsub.py: each emit only to the
    processes with a member in its room); one process keeps its rooms in memory."""
    if not settings.redis_url:
        return LocalRooms()
    return RoomRoutedRedisManager(settings.redis_url)


class RelaySocketServer(socketio.AsyncServer):
    """python-socketio decodes each packet outside any handler of ours and raises on a malformed one (python-engineio
    then logs a traceback per packet, and a bad binary header leaves the connection waiting for attachments). Here a
    malformed packet closes its connection, with one log line."""

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        try:
            await super()._handle_eio_message(eio_sid, data)
        except (ValueError, TypeError, IndexError, KeyError) as exc:
            log.warning("malformed Socket.IO packet (%s: %s); closing that connection", type(exc).__name__, exc)
            self._binary_packet.pop(eio_sid, None)
            await self.eio.disconnect(eio_sid)


def create_app(settings: Settings, name: str = "warmline_relay") -> Sanic:
    ws_transport.install()  # a socket's messages queued as they arrive, and Engine.IO's loop on them (ws_transport.py)
    app = Sanic(name)
    app.config.update(
        {
            "WEBSOCKET_MAX_SIZE": MAX_PACKET_BYTES,
            "ACCESS_LOG": False,
            "KEEP_ALIVE_TIMEOUT": 75,
            "PROXIES_COUNT": settings.proxies_count,  # whose X-Forwarded-For to believe for the client's address
        }
    )
    sio = RelaySocketServer(
        async_mode="sanic",
        client_manager=client_manager(settings),
        # Engine.IO lets every origin through, so that a refused site hears why: the namespaces refuse it at connect
        # with a code (handoff/origins.py), and the REST API by the middleware below.
        cors_allowed_origins="*",
        max_http_buffer_size=MAX_PACKET_BYTES,
        serializer=RelayPacket,
    )
    sio.attach(app)
    bot = BotClient(settings.rasa_url, settings.rasa_timeout_s)
    app.ctx.settings = settings
    app.ctx.sio = sio
    app.ctx.bot = bot

    @app.before_server_start
    async def open_resources(app: Sanic) -> None:
        app.ctx.engine = create_engine(settings.db_url)
        sessions = session_factory(app.ctx.engine)
        app.ctx.sessions = sessions
        await bot.start()
        app.ctx.writer = HotPathWriter(app.ctx.engine)
        outbox = Outbox(sio)
        app.ctx.dispatcher = dispatcher = Dispatcher(outbox, sessions)
        sockets = SocketSessions(sio)
        policy = CustomerPolicy.from_settings(settings)
        app.ctx.limiter = limiter = Limiter.create(settings)
        agent_gate = socket_gate(limiter, limiter.limits.agent_event, "agent")
        customer = CustomerSide(
            sio, outbox, sessions, app.ctx.writer, bot, dispatcher, settings.max_message_chars, sockets, policy, limiter
        )
        customer.register()
        idle = timedelta(hours=settings.token_idle_hours)
        agent = AgentSide(sio, outbox, sessions, app.ctx.writer, bot, dispatcher, policy.origins, agent_gate, idle)
        agent.register()
        console = ConsoleSide(sio, outbox, sessions, settings, dispatcher, agent_gate)
        console.register()
        # The agent's copilot (handoff/copilot.py): suggestions from the action server's live retriever.
        app.ctx.suggest_source = HttpSuggestSource(actions_base_url(settings.actions_url))
        await app.ctx.suggest_source.start()
        app.ctx.copilot = Copilot(
            sio, outbox, sessions, app.ctx.writer, app.ctx.suggest_source, agent_gate, enabled=settings.copilot
        )
        app.ctx.copilot.register()
        agent.copilot = console.copilot = app.ctx.copilot
        FeedbackSide(sio, outbox, sessions, settings, sockets).register()  # bot-only chat ratings (handoff/feedback.py)

    app.register_listener(freeze_startup_objects, "after_server_start")

    @app.after_server_stop
    async def close_resources(app: Sanic) -> None:
        await app.ctx.dispatcher.settled()
        await app.ctx.copilot.settled()
        await app.ctx.suggest_source.close()
        await bot.close()
        app.ctx.writer.close()
        await app.ctx.engine.dispose()

    allowed_origins = origins.parse_origins(settings.origins)

    @app.on_request
    async def refuse_other_sites(request: Request) -> HTTPResponse | None:
        """A browser page of a site not allowed may not call the APIs (its socket is refused at connect)."""
        if request.path.startswith("/api/") and not origins.allowed(
            request.headers.get("origin"), request.headers.get("host"), allowed_origins
        ):
            return await rest.on_error(request, OriginNotAllowed())
        return None

    @app.on_response
    async def security_headers(request: Request, response: HTTPResponse) -> None:
        for name, value in headers_for(request.path, response.content_type).items():
            response.headers.setdefault(name, value)

    app.exception(RelayError)(rest.on_error)  # every REST route's errors (common/errors.py), one shape
    app.blueprint(api)
    app.blueprint(kb_api)  # the KB editor (handoff/kb_api.py)
    app.blueprint(admin)
    app.blueprint(reports_routes)  # /api/reports, /reports, /metrics (handoff/reports_api.py, telemetry.py)
    app.add_route(demo_page, "/", methods=["GET"])
    app.add_route(widget_versioned, "/widget/<version:str>/warmline.js", methods=["GET"])
    app.add_route(widget_alias, "/widget/warmline.js", methods=["GET"])
    app.add_route(agent_page, "/agent", methods=["GET"])
    app.add_route(editor_page, "/editor", methods=["GET"])
    app.add_route(health, "/health", methods=["GET"])
    app.add_route(socket_io_client, "/static/vendor/socket.io.min.js", methods=["GET"])
    app.static("/static", STATIC, name="console_static")
    return app


async def demo_page(_: Request) -> HTTPResponse:
    """A demo website that embeds the widget with its snippet, as any site would."""
    return await response.file(STATIC / "demo.html", mime_type="text/html; charset=utf-8")


async def widget_versioned(_: Request, version: str) -> HTTPResponse:
    if version != WIDGET_VERSION:
        return response.text(f"no widget version {version}; this relay serves {WIDGET_VERSION}", status=404)
    headers = {"Cache-Control": "public, max-age=31536000, immutable", "Access-Control-Allow-Origin": "*"}
    return await response.file(WIDGET, mime_type=WIDGET_MIME, headers=headers)


async def widget_alias(_: Request) -> HTTPResponse:
    headers = {"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"}
    return await response.file(WIDGET, mime_type=WIDGET_MIME, headers=headers)


async def agent_page(_: Request) -> HTTPResponse:
    return await response.file(STATIC / "agent.html", mime_type="text/html; charset=utf-8")


async def editor_page(_: Request) -> HTTPResponse:
    return await response.file(STATIC / "editor.html", mime_type="text/html; charset=utf-8")


async def health(request: Request) -> HTTPResponse:
    return response.json({"status": "ok"})


async def socket_io_client(_: Request) -> HTTPResponse:
    if not SOCKET_IO_CLIENT.exists():
        return response.text("socket.io client not installed: run the install step (npm ci in console/)", status=503)
    return await response.file(SOCKET_IO_CLIENT, mime_type="application/javascript")
