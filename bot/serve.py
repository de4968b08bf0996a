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
import signal
from datetime import timezone
from typing import Awaitable, Callable, Sequence

from aiohttp import web
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine as Database
from sqlalchemy import text

from bot.channel import Channel, StartupError, channel_classes
from core.schedule import policy as schedule
from core.config import Settings
from core.delivery.worker import Delivery, worker_name
from core.engine.pipeline import Engine
from core.features import registry
from core.domain.store import Store

log = logging.getLogger(__name__)
Background = Callable[[asyncio.Event], Awaitable[None]]  # e.g. the scheduler: runs until the event is set


def problems(settings: Settings) -> list[str]:
    """Everything wrong with the configuration, before anything starts: no channel at all, then each one's."""
    classes = channel_classes()
    found = []
    if not any(channel.configured(settings) for channel in classes):
        needs = [channel.needs for channel in classes]
        found.append(f"set {', or '.join(needs)} ({'or both' if len(needs) == 2 else 'or several'})")
    for channel in classes:
        found.extend(channel.problems(settings))
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
    """The channels, the HTTP server and the delivery worker of one `companion serve` process."""

    def __init__(self, settings: Settings, database: Database, background: Sequence[Background] = ()):
        self.settings = settings
        self.database = database
        self.background = background
        self.conversation = Engine(Store(database), registry(settings.features), settings)
        self.channels: dict[str, Channel] = {
            channel.platform: channel(settings, self.conversation, self.wake)
            for channel in channel_classes() if channel.configured(settings)}
        self.delivery = Delivery(self.conversation.store, self.conversation.catalog, list(self.channels.values()),
                                 clock=self.conversation.clock)
        self.runner: web.AppRunner | None = None
        self.port: int | None = None

    def __getattr__(self, name: str) -> Channel | None:
        """`service.telegram`, `service.slack`, …: that platform's channel, or None when it is not configured."""
        if name in {channel.platform for channel in channel_classes()}:
            return self.__dict__.get("channels", {}).get(name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def wake(self) -> None:
        """A channel queued replies: send them now, ahead of any nudges."""
        self.delivery.wake()

    def http_app(self) -> web.Application:
        """The routes of the configured channels, and the health check."""
        app = web.Application()
        app.router.add_get("/healthz", self.health)
        for channel in self.channels.values():
            for path, endpoint in channel.routes().items():
                app.router.add_post(path, endpoint)
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
        started: list[Channel] = []
        try:
            for channel in self.channels.values():
                await channel.start()
                started.append(channel)
        except BaseException:
            await self._stop_channels(started)  # the ones already polling or holding connections
            raise
        self.runner = web.AppRunner(self.http_app(), access_log=None, shutdown_timeout=10)
        await self.runner.setup()
        try:
            await web.TCPSite(self.runner, self.settings.http_host, self.settings.http_port).start()
        except OSError as error:
            await self.runner.cleanup()
            await self._stop_channels(started)
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
        for channel in started:
            await channel.stop_taking_work()
        await self.runner.cleanup()
        await asyncio.gather(*workers)  # sends in flight finish while the channels' connections are open
        await self._stop_channels(started)

    async def wake_nudges(self, stopping: asyncio.Event) -> None:
        """APScheduler 3 wakes the nudge sweeps; the database, not the scheduler, knows what is due."""
        scheduler = BackgroundScheduler(timezone=timezone.utc)
        schedule.wake_sweeps(scheduler, self.database, self.conversation, worker_name())
        scheduler.start()
        await stopping.wait()
        await asyncio.to_thread(scheduler.shutdown, wait=True)  # a sweep in progress finishes its nudge

    async def _stop_channels(self, channels: list[Channel]) -> None:
        """Let each channel finish its work in hand and close its connections."""
        for channel in channels:
            await channel.stop()
