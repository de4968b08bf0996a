"""`companion serve`: one process for the HTTP endpoints, Telegram polling, the delivery worker and
the nudge sweeps.

    POST /slack/events      Slack events, button actions and `/companion` (also at /slack/actions
                            and /slack/commands, for apps configured with separate URLs)
    POST /telegram/webhook  Telegram updates, when TELEGRAM_WEBHOOK_URL is set (polling otherwise)
    GET  /healthz           200 while the database answers

SIGTERM (or Ctrl-C): polling stops and the HTTP listener closes, so no new work is taken; requests
in hand, Slack listeners already acknowledged, Telegram updates already fetched and sends in
flight all finish; then the process exits. What was queued but not yet sent stays in the outbox
for the next start: nothing is lost.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import signal
from datetime import timezone
from typing import Awaitable, Callable, Sequence

from aiohttp import web
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine as Database
from sqlalchemy import text

from core.schedule import policy as schedule
from core.config import Settings
from core.delivery.worker import Delivery, worker_name
from core.engine.pipeline import Engine
from core.domain.store import Store

log = logging.getLogger(__name__)
Background = Callable[[asyncio.Event], Awaitable[None]]  # e.g. the scheduler: runs until the event is set
TELEGRAM_TOKEN = re.compile(r"^\d+:[\w-]{20,}$")
TELEGRAM_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


class StartupError(Exception):
    """A configuration that cannot work, with what an operator needs to fix it."""


def problems(settings: Settings) -> list[str]:
    """Everything wrong with the configuration, before anything starts."""
    found = []
    telegram, slack = settings.telegram_bot_token, settings.slack_bot_token
    if not telegram and not slack:
        found.append("set TELEGRAM_BOT_TOKEN, or SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (or both)")
    if telegram and not TELEGRAM_TOKEN.match(telegram):
        found.append("TELEGRAM_BOT_TOKEN does not look like a BotFather token (123456789:AA…)")
    if settings.telegram_webhook_url:
        if not telegram:
            found.append("TELEGRAM_WEBHOOK_URL is set but TELEGRAM_BOT_TOKEN is not")
        if not settings.telegram_webhook_url.startswith("https://"):
            found.append("TELEGRAM_WEBHOOK_URL must be an https:// URL (Telegram only calls HTTPS webhooks)")
        if not TELEGRAM_SECRET.match(settings.telegram_webhook_secret or ""):
            found.append("webhook mode needs TELEGRAM_WEBHOOK_SECRET: 1–256 characters of A–Z, a–z, 0–9, _ and -")
    if slack and not slack.startswith("xoxb-"):
        found.append("SLACK_BOT_TOKEN must be a bot token (xoxb-…)")
    if bool(slack) != bool(settings.slack_signing_secret):
        found.append("Slack needs both SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET")
    return found


def serve(settings: Settings, engine: Database, *, background: Sequence[Background] = ()) -> None:
    """Run until SIGTERM or SIGINT; raises StartupError for a configuration that cannot work."""
    found = problems(settings)
    if found:
        raise StartupError("; ".join(found))

    async def main() -> None:
        """Turn the signals into the stopping event, and run the service until it is set."""
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        await Service(settings, engine, background).run(stopping)

    asyncio.run(main())


class Service:
    """The adapters, the HTTP server and the delivery worker of one `companion serve` process."""

    def __init__(self, settings: Settings, database: Database, background: Sequence[Background] = ()):
        self.settings = settings
        self.database = database
        self.background = background
        self.conversation = Engine(Store(database), settings)
        self.telegram = self.slack = None
        if settings.telegram_bot_token:
            from bot.telegram import TelegramAdapter  # loaded when configured: heavy, and it imports StartupError

            self.telegram = TelegramAdapter(settings, self.conversation, self.wake)
        if settings.slack_bot_token:
            from bot.slack import SlackAdapter

            self.slack = SlackAdapter(settings, self.conversation, self.wake)
        senders = [adapter for adapter in (self.telegram, self.slack) if adapter]
        self.delivery = Delivery(self.conversation.store, self.conversation.catalog, senders,
                                 clock=self.conversation.clock)
        self.runner: web.AppRunner | None = None
        self.port: int | None = None

    def wake(self) -> None:
        """An adapter queued replies: send them now, ahead of any nudges."""
        self.delivery.wake()

    def http_app(self) -> web.Application:
        """The routes of the configured platforms, and the health check."""
        app = web.Application()
        app.router.add_get("/healthz", self.health)
        if self.slack:
            for path in ("/slack/events", "/slack/actions", "/slack/commands"):
                app.router.add_post(path, self.slack.endpoint)
        if self.telegram and self.telegram.webhook_mode:
            app.router.add_post("/telegram/webhook", self.telegram.webhook)
        return app

    async def health(self, request: web.Request) -> web.Response:
        """GET /healthz: the database answers a query."""
        await asyncio.to_thread(self._ping)
        return web.json_response({"status": "ok"})

    def _ping(self) -> None:
        """One query: raises when the database does not answer."""
        with self.database.connect() as connection:
            connection.execute(text("SELECT 1"))

    async def run(self, stopping: asyncio.Event) -> None:
        """Start everything, serve until `stopping` is set, then shut down without losing work."""
        for adapter in (self.slack, self.telegram):
            if adapter:
                await adapter.start()
        self.runner = web.AppRunner(self.http_app(), access_log=None, shutdown_timeout=10)
        await self.runner.setup()
        try:
            await web.TCPSite(self.runner, self.settings.http_host, self.settings.http_port).start()
        except OSError as error:
            await self.runner.cleanup()
            await self._stop_adapters()
            raise StartupError(f"cannot listen on {self.settings.http_host}:{self.settings.http_port}: {error}") \
                from error
        self.port = self.runner.addresses[0][1]
        gc.collect()
        gc.freeze()  # start-up's objects live as long as the process: full collections skip them (~70 ms each)
        log.info("serving on http://%s:%s", self.settings.http_host, self.port)
        workers = [asyncio.create_task(self.delivery.run(stopping)),
                   asyncio.create_task(self.wake_nudges(stopping)),
                   *(asyncio.create_task(task(stopping)) for task in self.background)]
        await stopping.wait()
        log.info("stopping: finishing the work in hand")
        if self.telegram:
            await self.telegram.stop_taking_work()
        await self.runner.cleanup()
        if self.slack:
            await self.slack.stop()
        await asyncio.gather(*workers)
        await self._stop_adapters()

    async def wake_nudges(self, stopping: asyncio.Event) -> None:
        """APScheduler 3 wakes the nudge sweeps; the database, not the scheduler, knows what is due."""
        scheduler = BackgroundScheduler(timezone=timezone.utc)
        schedule.wake_sweeps(scheduler, self.database, self.conversation, worker_name())
        scheduler.start()
        await stopping.wait()
        await asyncio.to_thread(scheduler.shutdown, wait=True)  # a sweep in progress finishes its nudge

    async def _stop_adapters(self) -> None:
        """Close Telegram's application (Slack's client holds nothing open)."""
        if self.telegram:
            await self.telegram.stop()
