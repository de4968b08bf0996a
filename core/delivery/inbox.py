"""The inbox: every event a platform sent, stored before the platform hears it arrived, then handled.

    channel ──store (one INSERT)──► inbox row ──► Slack's acknowledgement · the Telegram poll that confirms it
                                        │
    InboxWorker ──claim the head row of each sender──► the channel fetches what it still needs
                                        │             (a file, the DM channel, the e-mail)
                                        ▼
                                   Engine.handle / handle_many ──► the row is deleted

Nothing slow comes before the acknowledgement: a channel only translates the event and inserts it
(`Tx.put_inbox`). Whatever takes the network (downloading a file, `users.info`) happens here,
when the event is handled, so a process killed in that wait leaves the row in the inbox and the
next start handles it. The engine records each event id per bot, so a row handled and then caught
by a crash before its deletion changes nothing the second time.

Each sender's events are handled one at a time, in the order they arrived (`id`): only the
oldest row of a sender is ever claimed, and the next only once it is gone. Different senders go
side by side. Rows are claimed with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so several processes
share the work; a claim of a process that died is taken over at once on the same host (its pid
is gone) or after `lease` elsewhere. A row whose handling fails is tried again with backoff; after
`max_attempts` it stays as 'failed' (with the kind of error, never the words) for an operator.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Callable, Mapping, Protocol

from core.delivery.metrics import Metrics
from core.delivery.worker import drain_until_idle, nap, worker_name
from core.domain.messages import Inbound
from core.domain.models import utcnow as utc_now
from core.domain.store import as_moment, inbound_from_json

if TYPE_CHECKING:
    from core.engine.pipeline import Engine

log = logging.getLogger(__name__)


class Preparer(Protocol):
    """A channel as the inbox sees it: it fetches what an event still needs before the engine hears of it."""

    platform: str

    async def prepare(self, inbound: Inbound, extra: dict) -> Inbound:
        """`inbound` completed from `extra` (a downloaded file, the DM channel, the e-mail); raises to try later."""


@dataclass(frozen=True)
class Row:
    """A claimed inbox row."""

    id: int
    bot: str
    inbound: Inbound
    extra: dict | None
    attempts: int


class InboxWorker:
    """Stores events as they arrive (`put`) and hands them to the engine, each sender's in order."""

    def __init__(self, conversation: Engine, preparers: Mapping[str, Preparer] | None = None, *,
                 worker: str | None = None, clock: Callable[[], datetime] = utc_now,
                 on_handled: Callable[[], None] = lambda: None, in_flight: int = 16, window: int = 2000,
                 lease: timedelta = timedelta(minutes=3), max_attempts: int = 10, max_backoff: float = 300.0,
                 recover_every: float = 30.0, finish_within: float = 10.0, metrics: Metrics | None = None):
        self.conversation = conversation
        self.metrics = metrics or Metrics()
        self._store = conversation.store
        self.preparers: dict[str, Preparer] = dict(preparers or {})
        self.worker = worker or worker_name()
        self.clock = clock
        self.on_handled = on_handled  # replies were queued: wake delivery
        self.in_flight = in_flight
        self.window = window
        self.lease = lease
        self.max_attempts = max_attempts
        self.max_backoff = max_backoff
        self.recover_every = recover_every
        self.finish_within = finish_within  # seconds a stopping worker keeps handling what is stored
        self.tasks: set[asyncio.Task] = set()
        self._wake: asyncio.Event | None = None
        # Threads of its own for `put`: an acknowledgement never queues behind the engine's work.
        self.intake = ThreadPoolExecutor(max_workers=4, thread_name_prefix="inbox")

    # -- in: called by a channel before it acknowledges ----------------------------------------------

    def put(self, inbound: Inbound, bot: str, extra: dict | None = None) -> bool:
        """Store one event (blocking: run it in a thread); False when it is stored already."""
        with self._store.transaction() as tx:
            stored = tx.put_inbox(inbound, bot, extra, self.clock())
        if stored:
            self.metrics.inbound.labels(inbound.platform).inc()
        return stored

    async def store(self, inbound: Inbound, bot: str, extra: dict | None = None) -> bool:
        """`put` on the inbox's own threads, then wake the worker; raises when the event could not be stored."""
        stored = await asyncio.get_running_loop().run_in_executor(self.intake, self.put, inbound, bot, extra)
        self.wake()
        return stored

    def wake(self) -> None:
        """An event was stored: look at the inbox now (call from the event loop)."""
        if self._wake is not None:
            self._wake.set()

    # -- the worker ----------------------------------------------------------------------------------

    async def run(self, stopping: asyncio.Event) -> None:
        """Handle stored events until `stopping` is set, then what is stored for `finish_within` seconds more."""
        self._wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        next_recovery = loop.time()
        while not stopping.is_set():
            self._wake.clear()
            try:
                if loop.time() >= next_recovery:
                    await asyncio.to_thread(self._release_dead)
                    next_recovery = loop.time() + self.recover_every
                await self.tick()
            except Exception:  # the database may be away for a moment: keep the worker alive
                log.exception("the inbox could not be read")
                await self._nap(stopping, 5.0)
            await self._nap(stopping, 1.0)
        await self.finish(loop.time() + self.finish_within)

    async def finish(self, deadline: float) -> None:
        """Handle what is stored until nothing is left or `deadline` passes; the rest waits for the next start."""
        loop = asyncio.get_running_loop()
        try:
            while loop.time() < deadline:
                started = await self.tick()
                if not started and not self.tasks:
                    break
                if self.tasks:
                    await asyncio.wait(set(self.tasks), timeout=max(0.0, deadline - loop.time()),
                                       return_when=asyncio.FIRST_COMPLETED)
        except Exception:
            log.exception("the inbox could not be read while stopping; what is left is handled at the next start")
        for task in list(self.tasks):  # still preparing at the deadline: given back, handled at the next start
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def drain(self, timeout: float = 30.0) -> None:
        """Handle until no row of these platforms is pending (tests), waiting out backoffs."""
        await drain_until_idle(self.tick, self.tasks, self.pending, "the inbox", timeout)

    async def _nap(self, stopping: asyncio.Event, seconds: float) -> None:
        """Sleep until an event is stored, a row is done, `stopping` is set, or `seconds` pass."""
        await nap(self._wake, stopping, seconds)

    async def tick(self) -> int:
        """Claim the oldest row of each sender that is free, and start handling them; returns how many."""
        room = self.in_flight - len(self.tasks)
        if room <= 0 or not self.preparers:
            return 0
        rows = await asyncio.to_thread(self._claim, room)
        plain = [row for row in rows if not row.extra]
        if plain:  # nothing to fetch first: one commit for all of them
            self._start(self._handle_rows(plain))
        for row in rows:
            if row.extra:
                self._start(self._prepare_and_handle(row))
        return len(rows)

    def _start(self, work) -> None:
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if self._wake is not None:
            self._wake.set()  # the sender's next event may be claimed now

    async def _prepare_and_handle(self, row: Row) -> None:
        """Let the channel fetch what the event needs, then handle it; a failure is tried again later."""
        try:
            inbound = await self.preparers[row.inbound.platform].prepare(row.inbound, row.extra or {})
        except asyncio.CancelledError:
            await asyncio.shield(asyncio.to_thread(self._release, [row.id]))
            raise
        except Exception as error:
            log.warning("inbox row %s (%s event %s): the channel could not prepare it: %s", row.id,
                        row.inbound.platform, row.inbound.event_id, type(error).__name__, exc_info=True)
            await asyncio.to_thread(self._failed, row, error)
            return
        await self._handle_rows([Row(row.id, row.bot, inbound, row.extra, row.attempts)])

    async def _handle_rows(self, rows: list[Row]) -> None:
        """Hand the events to the engine (off the event loop), then wake delivery."""
        await asyncio.shield(asyncio.to_thread(self._handle_blocking, rows))  # a handled row is always settled
        self.on_handled()

    def _handle_blocking(self, rows: list[Row]) -> None:
        """Handle `rows` (one commit when there are several), delete them; each failure is settled alone."""
        try:
            if len(rows) == 1:
                self.conversation.handle(rows[0].inbound, bot=rows[0].bot)
            else:
                self.conversation.handle_many([row.inbound for row in rows], [row.bot for row in rows])
        except Exception as error:
            if len(rows) == 1:
                log.exception("inbox row %s (%s event %s) failed; it is tried again later", rows[0].id,
                              rows[0].inbound.platform, rows[0].inbound.event_id)
                self._failed(rows[0], error)
                return
            for row in rows:  # the batch's commit may have happened: the engine skips what it recorded
                self._handle_blocking([row])
            return
        people = self._done(rows)
        for row in rows:
            self.metrics.handled.labels(row.inbound.platform).inc()
            log.info("inbox event handled", extra={"event": "inbound.handled", "platform": row.inbound.platform,
                                                    "inbox_id": row.id, "person_id": people.get(row.id)})

    # -- the database side (blocking) -----------------------------------------------------------------

    def pending(self) -> int:
        """Rows of these platforms not handled yet (pending, whoever holds them)."""
        with self._store.transaction() as tx:
            marks = ", ".join("?" * len(self.preparers)) or "NULL"
            return tx.one(f"SELECT COUNT(*) FROM inbox WHERE status = 'pending' AND platform IN ({marks})",
                          list(self.preparers))[0]

    def _claim(self, room: int) -> list[Row]:
        """The oldest row of up to `room` senders, each free and due, claimed for this worker."""
        now = self.clock()
        stale = now - self.lease
        with self._store.transaction() as tx:
            marks = ", ".join("?" * len(self.preparers))
            seen: set[tuple[str, str, str]] = set()
            heads: list[int] = []
            for row_id, platform, bot, sender, claimed_by, claimed_at, not_before in tx.all(
                    "SELECT id, platform, bot, sender, claimed_by, claimed_at, not_before FROM inbox "
                    f"WHERE status = 'pending' AND platform IN ({marks}) ORDER BY id LIMIT {self.window}",
                    list(self.preparers)):
                key = (platform, bot, sender)
                if key in seen:
                    continue  # a later event of a sender waits for the earlier one
                seen.add(key)
                free = claimed_by is None or as_moment(claimed_at) < stale
                due = not_before is None or as_moment(not_before) <= now
                if free and due:
                    heads.append(row_id)
                    if len(heads) == room:
                        break
            if not heads:
                return []
            lock = " FOR UPDATE SKIP LOCKED" if tx.postgres else ""
            rows = tx.all(
                f"UPDATE inbox SET claimed_by = ?, claimed_at = ? WHERE id IN (SELECT id FROM inbox "
                f"WHERE id IN ({', '.join('?' * len(heads))}) AND status = 'pending' "
                f"AND (claimed_by IS NULL OR claimed_at < ?){lock}) "
                "RETURNING id, bot, payload, extra, attempts",
                [self.worker, tx.ts(now), *heads, tx.ts(stale)])
        rows.sort()
        return [Row(row_id, bot, inbound_from_json(payload), json.loads(extra) if extra else None, attempts)
                for row_id, bot, payload, extra, attempts in rows]

    def _done(self, rows: list[Row]) -> dict[int, int]:
        """The engine handled these events: their rows (and the words in them) go. Returns the person
        each came from, where the account is linked (inbox id → person id), for the log."""
        ids = [row.id for row in rows]
        marks = ', '.join('?' * len(ids))
        with self._store.transaction() as tx:
            people = dict(tx.all(f"SELECT inbox.id, chatidentity.person_id FROM inbox JOIN chatidentity ON "
                                 f"chatidentity.platform = inbox.platform AND chatidentity.external_id = inbox.sender "
                                 f"WHERE inbox.id IN ({marks}) AND chatidentity.person_id IS NOT NULL", ids))
            tx.execute(f"DELETE FROM inbox WHERE id IN ({marks})", ids)
        return people

    def _failed(self, row: Row, error: BaseException) -> None:
        """Try the row again after a backoff (1 s, 2 s, 4 s … with jitter); 'failed' after `max_attempts`."""
        attempts = row.attempts + 1
        delay = min(self.max_backoff, 2.0 ** (attempts - 1)) * random.uniform(0.8, 1.2)
        status = "failed" if attempts >= self.max_attempts else "pending"
        if status == "failed":
            log.error("inbox row %s (%s event %s) failed %s times: left as 'failed'", row.id,
                      row.inbound.platform, row.inbound.event_id, attempts)
        with self._store.transaction() as tx:
            tx.execute("UPDATE inbox SET status = ?, attempts = ?, not_before = ?, claimed_by = NULL, error = ? "
                       "WHERE id = ? AND claimed_by = ?",
                       (status, attempts, tx.ts(self.clock() + timedelta(seconds=delay)), type(error).__name__,
                        row.id, self.worker))

    def _release(self, ids: list[int]) -> None:
        """Give back rows this worker claimed and did not handle."""
        with self._store.transaction() as tx:
            tx.execute(f"UPDATE inbox SET claimed_by = NULL WHERE id IN ({', '.join('?' * len(ids))}) "
                       "AND claimed_by = ?", [*ids, self.worker])

    def _release_dead(self) -> None:
        """Free the claims of processes of this host that are gone (killed while preparing or handling)."""
        with self._store.transaction() as tx:
            holders = [holder for (holder,) in tx.all(
                "SELECT DISTINCT claimed_by FROM inbox WHERE status = 'pending' AND claimed_by IS NOT NULL")]
            for holder in holders:
                if _is_dead(holder, self.worker):
                    tx.execute("UPDATE inbox SET claimed_by = NULL WHERE claimed_by = ? AND status = 'pending'",
                               (holder,))


def _is_dead(holder: str, me: str) -> bool:
    """A claim by a process of this host that no longer runs (another host's claim waits out the lease)."""
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or holder == me or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
