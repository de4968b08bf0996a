"""`companion serve`: one process for the HTTP endpoints, Telegram polling, the delivery worker and
the nudge sweeps.

    POST /slack/events      Slack events, button actions and `/companion` (also at /slack/actions
                            and /slack/commands, for apps configured with separate URLs)
    POST /telegram/webhook  Telegram updates, when TELEGRAM_WEBHOOK_URL is set (polling otherwise)
    GET  /healthz           200 {"status": "ok"} when the database answers within HEALTH_DEADLINE and the
                            workers run; else 503 with what is wrong — never waits longer than that
    GET  /metrics           the Prometheus text format (core/delivery/metrics.py)

Every event is stored in the inbox before the platform is told it arrived (core/delivery/inbox.py),
and the inbox worker hands it to the engine, each person's in order. Log records are cleaned of
tokens and of people's words, the libraries' included, and written as JSON lines (bot/logs.py).
On SQLite a scheduler job that meets a locked database tries again within the minute
(`retry_when_locked`). The health check and the metrics read the database on threads of their
own, with a deadline, so a busy database (a held SQLite lock, a slow PostgreSQL) makes them answer
"unavailable" at once instead of hanging behind the engine's work.

SIGTERM (or Ctrl-C): polling stops and the HTTP listener closes, so no new work is taken; requests
in hand, the events stored in the inbox (for up to ten seconds) and sends in flight all finish;
then the process exits. What was stored but not yet handled stays in the inbox, and what was
queued but not yet sent in the outbox, for the next start: nothing is lost.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sqlite3
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timezone
from typing import Awaitable, Callable, Sequence

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine as Database
from sqlalchemy import exc as database_errors
from sqlalchemy import text
from tenacity import RetryCallState, retry, retry_if_exception, stop_after_delay, wait_exponential_jitter

from bot import logs
from bot.channel import Channel, StartupError, channel_classes
from core.schedule import policy as schedule
from core.config import Settings
from core.delivery.inbox import InboxWorker
from core.delivery.metrics import Metrics
from core.delivery.worker import Delivery, worker_name
from core.engine.pipeline import Engine
from core.features import registry
from core.domain.store import Store

log = logging.getLogger(__name__)
Background = Callable[[asyncio.Event], Awaitable[None]]  # e.g. the scheduler: runs until the event is set
HEALTH_DEADLINE = 0.8  # seconds /healthz and /metrics wait for the database before saying it does not answer


def problems(settings: Settings) -> list[str]:
    """Everything wrong with the configuration, before anything starts: no channel at all, then each one's."""
    classes = channel_classes()
    chats = [channel for channel in classes if channel.chat]
    found = []
    if not any(channel.configured(settings) for channel in chats):
        needs = [channel.needs for channel in chats]
        found.append(f"set {', or '.join(needs)} ({'or both' if len(needs) == 2 else 'or several'})")
    for channel in classes:
        found.extend(channel.problems(settings))
    return found


def serve(settings: Settings, engine: Database, *, background: Sequence[Background] = ()) -> None:
    """Run until SIGTERM or SIGINT; raises StartupError for a configuration that cannot work."""
    logs.install(settings)  # before anything logs: the tokens and people's words never reach a log line
    logs.json_lines()
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
        self.conversation.catalog.safety  # built now, so that the first student to write does not wait for it
        self.metrics = Metrics()
        self.channels: dict[str, Channel] = {
            channel.platform: channel(settings, self.conversation, self.wake)
            for channel in channel_classes() if channel.configured(settings)}
        chats = [channel for channel in self.channels.values() if getattr(channel, "chat", True)]
        self.inbox = InboxWorker(self.conversation, {channel.platform: channel for channel in chats},
                                 clock=self.conversation.clock, on_handled=self.wake, metrics=self.metrics)
        for channel in chats:
            channel.inbox = self.inbox
        self.delivery = Delivery(self.conversation.store, self.conversation.catalog, list(self.channels.values()),
                                 clock=self.conversation.clock, metrics=self.metrics)
        self.runner: web.AppRunner | None = None
        self.port: int | None = None
        self.workers: dict[str, asyncio.Task] = {}
        # Threads of their own for the probes (health, metrics), so they never queue behind the engine's.
        self.probes = ThreadPoolExecutor(max_workers=2, thread_name_prefix="probe")
        self.probing: dict[str, tuple[Future, float]] = {}  # probe → the read in progress, since when

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
        app.router.add_get("/metrics", self.scrape)
        for channel in self.channels.values():
            for path, endpoint in channel.routes().items():
                app.router.add_post(path, endpoint)
        return app

    async def health(self, request: web.Request) -> web.Response:
        """GET /healthz: 200 when the database answers within the deadline and every worker runs, else 503
        with the problems in words an operator can act on."""
        found = [] if (problem := await self._probe("health", self._ping)) is None else [problem]
        found += [f"the {name} worker stopped: {self._why(task)}" for name, task in self.workers.items() if task.done()]
        if found:
            log.warning("unhealthy", extra={"event": "health.unhealthy", "problems": found})
            return web.json_response({"status": "unavailable", "problems": found}, status=503)
        return web.json_response({"status": "ok"})

    async def scrape(self, request: web.Request) -> web.Response:
        """GET /metrics: this process's counters and the database's figures (when it answers in time)."""
        problem = await self._probe("metrics", lambda: self.metrics.read_database(self.conversation.store,
                                                                         self.conversation.clock()))
        if problem is not None:
            self.metrics.database_up.set(0)
        return web.Response(body=self.metrics.text(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _probe(self, name: str, read: Callable[[], None]) -> str | None:
        """Run `read` on a probe thread within HEALTH_DEADLINE; what went wrong, or None. A probe still
        stuck from an earlier request is not joined by another: the answer is at once that it is stuck."""
        if name in self.probing and not self.probing[name][0].done():
            waited = time.monotonic() - self.probing[name][1]
            return f"the database has not answered for {waited:.1f} s (busy or locked)"
        future = self.probes.submit(read)
        self.probing[name] = (future, time.monotonic())
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), HEALTH_DEADLINE)
        except asyncio.TimeoutError:
            return f"the database did not answer within {HEALTH_DEADLINE} s (busy or locked)"
        except Exception as error:
            return f"the database refused the query: {type(error).__name__}"
        return None

    @staticmethod
    def _why(task: asyncio.Task) -> str:
        error = None if task.cancelled() else task.exception()
        return type(error).__name__ if error else "it ended"

    def _ping(self) -> None:
        """Raises, or blocks, when the database cannot take an event now. SQLite's readers never wait in
        WAL mode, so there the probe takes the write lock every event needs (and gives it back)."""
        if self.database.dialect.name != "sqlite":
            with self.database.connect() as connection:
                connection.execute(text("SELECT 1"))
            return
        connection = self.database.raw_connection()
        try:
            connection.cursor().execute("BEGIN IMMEDIATE")
            connection.rollback()
        finally:
            connection.close()

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
        self.workers = {"inbox": asyncio.create_task(self.inbox.run(stopping)),
                        "delivery": asyncio.create_task(self.delivery.run(stopping)),
                        "nudge": asyncio.create_task(self.wake_nudges(stopping))}
        workers = [*self.workers.values(), *(asyncio.create_task(task(stopping)) for task in self.background)]
        await stopping.wait()
        log.info("stopping: finishing the work in hand")
        for channel in started:
            await channel.stop_taking_work()
        await self.runner.cleanup()
        await asyncio.gather(*workers)  # sends in flight finish while the channels' connections are open
        await self._stop_channels(started)
        self.probes.shutdown(wait=False, cancel_futures=True)  # a probe stuck on a locked database is not waited for

    async def wake_nudges(self, stopping: asyncio.Event) -> None:
        """APScheduler 3 wakes the nudge sweeps; the database, not the scheduler, knows what is due."""
        scheduler = BackgroundScheduler(timezone=timezone.utc)
        schedule.wake_sweeps(scheduler, self.database, self.conversation, worker_name())
        self.wake_school_jobs(scheduler)
        for job in scheduler.get_jobs():
            job.modify(func=retry_when_locked(job.func))
        scheduler.start()
        await stopping.wait()
        await asyncio.to_thread(scheduler.shutdown, wait=True)  # a sweep in progress finishes its nudge

    def wake_school_jobs(self, scheduler: BackgroundScheduler) -> None:
        """Safety escalations every minute; calendar feeds hourly (each read a day after its last good read);
        retention daily. Like the sweeps, each job finds in the database what is due."""
        from core.schedule.escalation import escalate_due
        from core.school.calendar import reimport_calendars
        from core.school.privacy import retention_sweep

        engine, settings, clock = self.conversation, self.settings, self.conversation.clock
        jobs = {
            "safety.escalate": (lambda: escalate_due(engine.store, engine.registry, clock(), bool(settings.smtp_url)),
                                {"seconds": 60}),
            "calendar.reimport": (lambda: reimport_calendars(self.database, clock()), {"hours": 1}),
            "privacy.retention": (lambda: retention_sweep(self.database, engine.registry, clock(), settings.file_store),
                                  {"hours": 24}),
        }
        for job_id, (run, every) in jobs.items():
            scheduler.add_job(run, "interval", id=job_id, coalesce=True, max_instances=1, replace_existing=True,
                              next_run_time=clock(), **every)

    async def _stop_channels(self, channels: list[Channel]) -> None:
        """Let each channel finish its work in hand and close its connections."""
        for channel in channels:
            await channel.stop()


def locked(error: BaseException) -> bool:
    """SQLite's "database is locked" (a writer held it past the busy timeout, or a read turned write
    too late), raw or wrapped by SQLAlchemy: a moment later the same work goes through."""
    return (isinstance(error, (sqlite3.OperationalError, database_errors.OperationalError))
            and "is locked" in str(error))


def retry_when_locked(job: Callable, give_up_after: float = 50.0, sleep: Callable[[float], None] | None = None):
    """`job` tried again when it meets a locked database, 1 s, 2 s, 4 s … apart (with jitter) for up to
    `give_up_after` seconds, so a sweep or the planning goes through within the minute instead of waiting
    for its next run (an hour, for the planning). Any other error, or the lock lasting longer, is raised
    as before (APScheduler logs it). tenacity does the retrying: a maintained library whose policy reads
    as one line (what to retry, how long to wait with jitter, when to stop), rather than a loop of our own."""
    def waiting(state: RetryCallState) -> None:  # the error's text may quote a statement's parameters: not logged
        log.warning("%s met a locked database; trying again in %.1fs", getattr(job, "__name__", "a job"),
                    state.next_action.sleep if state.next_action else 0.0)

    options = dict(retry=retry_if_exception(locked), wait=wait_exponential_jitter(initial=1, max=15, jitter=1),
                   stop=stop_after_delay(give_up_after), reraise=True, before_sleep=waiting)
    if sleep is not None:
        options["sleep"] = sleep
    return retry(**options)(job)

