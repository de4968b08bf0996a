"""Delivery: the outbox sent through each platform's adapter, within its limits, each row once.

A row's life:

    pending ──lease──► pending, claimed_by = this worker ──► sending ──sent──► sent
                                                              │ 429 ─────────► pending, not_before = retry-after
                                                              │ 5xx, network ─► pending, not_before = backoff
                                                              │                 (failed after `max_attempts`)
                                                              │ blocked (403) ► failed, chat unreachable
                                                              └ refused (4xx) ► failed

Rows are leased with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so several processes share the work;
SQLite has one writer, so one process delivers. A chat gets one row at a time, in (priority, id)
order: replies (priority 0) go before nudges (priority 1), and a chat never sees its messages
out of order. The pace of each platform (per chat and per bot) is kept in memory; on PostgreSQL,
where several processes deliver, the slots, the count of messages in the last second and a 429's
pause come from one budget in the database that they all share (`core/delivery/budget.py`), so
together they stay within the platform's limit.

The crash window is a row left in 'sending': the process died between the platform accepting
the message and the database recording it. `recover()` asks the platform whether the message
arrived (`Sender.find_sent`): Slack can tell (the message carries its outbox id as metadata), so
the row becomes 'sent' or goes out again, and nothing is doubled. The Telegram Bot API has no
idempotency key and no way to read a bot's own messages, so there the row is sent again
(`CannotTell`): a crash costs at most one duplicate of each row that was in flight at that
moment, and never a lost message. The error column says "resent after crash" for those rows.
A row waits for its turn in the pace before it is marked 'sending', so the window holds only
the messages actually on the wire. Orphans are settled at once by the next process on the same
host (the claimant's pid is gone), or after `claim_timeout` by a process elsewhere.

A row with an image or a document takes several calls (each file, then the text with its
buttons, which is the message `find_sent` looks for). A channel remembers, per process, the parts
of a row already accepted, so a row retried after a 429 or a 5xx halfway sends only the rest;
a crash in the middle, or a retry picked up by another process, may send a file of that row once
more, never lose one.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import os
import random
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Awaitable, Callable, Protocol, Sequence

from core.domain.messages import Rendered
from core.domain.models import utcnow as utc_now
from core.delivery.budget import Hold, SharedBudget
from core.delivery.metrics import Metrics
from core.delivery.outbox import Pending, render
from core.domain.store import Store, Tx, as_moment
from core.render.templates import Catalog

log = logging.getLogger(__name__)

RESENT = "resent after crash: the platform cannot tell whether it arrived"


# -- what an adapter implements and raises -------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """A platform's pace: messages per second to one chat, and for the whole bot."""

    per_chat: float
    per_bot: float


class Sender(Protocol):
    """A chat platform as delivery sees it; each adapter implements one."""

    platform: str
    limits: Limits

    async def send(self, chat_id: str, message: Rendered, outbox_id: int) -> str:
        """Send `message`; returns the platform's message id, or raises one of the errors below."""

    async def find_sent(self, chat_id: str, outbox_id: int, since: datetime) -> str | None:
        """The id of a message for `outbox_id` that already arrived, or None; `CannotTell` if unknowable."""


class DeliveryError(Exception):
    """A send that did not go through; the subclass says what to do about it."""


class RateLimited(DeliveryError):
    """429: wait `retry_after` seconds before sending anything on this platform."""

    def __init__(self, retry_after: float, detail: str = ""):
        super().__init__(detail or f"rate limited for {retry_after}s")
        self.retry_after = retry_after


class Unavailable(DeliveryError):
    """Network error or 5xx: try again later, with backoff."""


class Blocked(DeliveryError):
    """The user blocked the bot or never started it (Telegram 403): stop sending to this chat."""


class Refused(DeliveryError):
    """The platform refused this message for good (other 4xx): retrying would not help."""


class CannotTell(Exception):
    """The platform cannot say whether a message arrived (Telegram)."""


# -- pace ------------------------------------------------------------------------------------------


# In memory, a chat's messages go 5% further apart than its limit: jitter must not make 1 s 0.99 s. (The
# shared budget counts from the end of each send, which leaves no jitter to make up for: budget.py.)
CHAT_HEADROOM = 1.05


class Pace:
    """Hands out send slots: 1/per_bot apart for the bot, 1/per_chat apart per chat, best priority first.

    Rows wait for their turn here, not in the order they were leased: a reply (priority 0) that
    arrives while nudges wait takes the very next slot.
    """

    def __init__(self, limits: Limits, shared: SharedBudget | None = None):
        self.limits = limits
        self.shared = shared  # PostgreSQL: the bot's slots, window and pauses, shared with the other processes
        self.next_slot = 0.0
        self.send_seconds = 0.0  # shared budget: from letting a message go to recording its end (the slow ones)
        self.chat_free_at: dict[str, float] = {}
        self.waiting: list[tuple[int, int, str, asyncio.Future]] = []  # (priority, arrival, chat, turn)
        self.arrivals = itertools.count()
        self.poked = asyncio.Event()
        self.dispatcher: asyncio.Task | None = None

    async def turn(self, chat_id: str, priority: int) -> None:
        """Wait until this chat may get its next message; cancelling gives the place up."""
        granted = asyncio.get_running_loop().create_future()
        heapq.heappush(self.waiting, (priority, next(self.arrivals), chat_id, granted))
        self.poked.set()
        if self.dispatcher is None or self.dispatcher.done():
            self.dispatcher = asyncio.create_task(self._dispatch())
        await granted

    async def _dispatch(self) -> None:
        """Grant one waiting row per slot: the best priority whose chat is free."""
        loop = asyncio.get_running_loop()
        while True:
            self._drop_cancelled()
            if not self.waiting:
                return
            now = loop.time()
            ready = self._ready(now)
            if now < self.next_slot or ready is None:
                wake_at = max(self.next_slot, min(self.chat_free_at.get(entry[2], 0.0) for entry in self.waiting))
                await self._sleep(wake_at - now)
                continue
            if self.shared is not None:
                await self._grant_shared_slot()
                continue
            interval = 1.0 / self.limits.per_bot
            # A timer wakes a little late; counting from the planned slot keeps that from adding up.
            planned = self.next_slot if now - self.next_slot < interval / 4 else now
            self.next_slot = planned + interval
            self.waiting.remove(ready)
            self.sending(ready[2], now)
            ready[3].set_result(None)

    def _drop_cancelled(self) -> None:
        self.waiting = [entry for entry in self.waiting if not entry[3].done()]
        heapq.heapify(self.waiting)

    def _ready(self, now: float) -> tuple[int, int, str, asyncio.Future] | None:
        """The waiting row of best priority whose chat may get a message now."""
        return next((entry for entry in sorted(self.waiting) if self.chat_free_at.get(entry[2], 0.0) <= now), None)

    async def _grant_shared_slot(self) -> None:
        """Reserve the next slot of the bot's budget shared with the other processes and grant it the best
        ready row; a slot with no row goes unused. One at a time: a process the machine holds up late
        for its slot wastes that one only."""
        loop = asyncio.get_running_loop()
        try:
            wait = await asyncio.to_thread(self.shared.reserve, self.shared.slot_interval(self.send_seconds))
        except Exception:  # the database is away for a moment: nothing is sent meanwhile
            log.exception("the shared sending budget could not be read; trying again in a second")
            self.pause(1.0, loop.time())
            return
        await asyncio.sleep(wait)
        now = loop.time()
        self._drop_cancelled()
        entry = self._ready(now)  # the best row now: a reply may have come in during the wait
        if entry is not None and now >= self.next_slot:  # not if a 429's pause began meanwhile
            self.waiting.remove(entry)
            self.sending(entry[2], now)
            entry[3].set_result(None)

    async def _sleep(self, seconds: float) -> None:
        """Sleep until `seconds` pass or a new row starts waiting."""
        self.poked.clear()
        try:
            await asyncio.wait_for(self.poked.wait(), max(seconds, 0.0))
        except asyncio.TimeoutError:
            pass

    def sending(self, chat_id: str, now: float) -> None:
        """The message really leaves now (after the database said so): the chat's next one waits from here."""
        self.chat_free_at[chat_id] = now + CHAT_HEADROOM / self.limits.per_chat

    def measure(self, seconds: float) -> None:
        """A send ended `seconds` after it was let go: an average that leans towards the slow sends (a step
        up is eight times a step down), so that the slots it spaces seldom come before the window has room."""
        self.send_seconds += (seconds - self.send_seconds) / (8 if seconds > self.send_seconds else 64)

    def pause(self, seconds: float, now: float) -> None:
        """A 429: nothing goes out on this platform for `seconds`."""
        self.next_slot = max(self.next_slot, now + seconds)

    def hold(self, chat_id: str, hold: Hold, now: float) -> None:
        """The shared budget held a message back: its chat waits, or this whole process when the bot is
        paused (one process asks again when the pause ends, not each of its rows)."""
        if hold.whole_bot:
            self.pause(hold.seconds, now)
        else:
            self.chat_free_at[chat_id] = max(self.chat_free_at.get(chat_id, 0.0), now + hold.seconds)

    def forget_idle(self, now: float) -> None:
        """Drop chats whose pause has passed, so the map stays as small as the busy chats."""
        self.chat_free_at = {chat: at for chat, at in self.chat_free_at.items() if at > now}


@dataclass
class Lane:
    """One platform: its sender, its pace, and the chats with a message in flight here."""

    sender: Sender
    pace: Pace
    busy: set[str] = field(default_factory=set)


# -- the worker ------------------------------------------------------------------------------------


def worker_name() -> str:
    """host:pid, so a restarted process can tell that a claim's owner is dead."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _is_alive(pid: int) -> bool:
    """Whether a process of this host still runs (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True



async def nap(wake: asyncio.Event, stopping: asyncio.Event, seconds: float) -> None:
    """Sleep until `wake` or `stopping` is set, or `seconds` pass: a worker's wait between ticks."""
    waiters = {asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stopping.wait())}
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def drain_until_idle(tick: Callable[[], Awaitable[int]], tasks: set[asyncio.Task], unsent: Callable[[], int],
                           what: str, timeout: float) -> None:
    """Tick a worker until nothing is in hand and `unsent()` counts no row left (tests, benchmarks)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await tick() == 0 and not tasks:
            if not await asyncio.to_thread(unsent):
                return
            await asyncio.sleep(0.05)
        elif tasks:
            await asyncio.wait(set(tasks), return_when=asyncio.FIRST_COMPLETED)
    raise TimeoutError(f"{what} did not drain in time")


class Delivery:
    """Sends the outbox through the senders, one row at a time per chat, within each platform's pace."""

    def __init__(self, store: Store, catalog: Catalog, senders: Sequence[Sender], *,
                 worker: str | None = None, clock: Callable[[], datetime] = utc_now,
                 in_flight: int = 32, window: int = 2000, lease: timedelta = timedelta(seconds=60),
                 claim_timeout: timedelta = timedelta(minutes=2), max_attempts: int = 8,
                 max_backoff: float = 300.0, recover_every: float = 30.0, shared: bool | None = None,
                 metrics: Metrics | None = None):
        """`shared`: draw from the budget every process shares (default: on PostgreSQL, where several deliver)."""
        self.store = store
        self.catalog = catalog
        self.metrics = metrics or Metrics()
        shared = store.postgres if shared is None else shared
        self.lanes = {sender.platform: Lane(sender, Pace(sender.limits, self._budget(sender) if shared else None))
                      for sender in senders}
        self.worker = worker or worker_name()
        self.clock = clock
        self.in_flight = in_flight
        self.window = window
        self.lease = lease
        self.claim_timeout = claim_timeout
        self.max_attempts = max_attempts
        self.max_backoff = max_backoff
        self.recover_every = recover_every
        self.tasks: set[asyncio.Task] = set()
        self._wake = asyncio.Event()
        self._stopping: asyncio.Event | None = None

    def _budget(self, sender: Sender) -> SharedBudget:
        """The database budget of a sender's bot (Telegram: its bot id; one per platform otherwise)."""
        return SharedBudget(self.store, sender.platform, str(getattr(sender, "bot_id", "") or ""),
                            max(1, math.floor(sender.limits.per_bot)), 1.0 / sender.limits.per_chat)

    def wake(self) -> None:
        """New rows were queued (a student's message was handled): look at the outbox now."""
        self._wake.set()

    async def run(self, stopping: asyncio.Event) -> None:
        """Deliver until `stopping` is set, then finish the sends in flight (nothing is cut in half)."""
        self._stopping = stopping
        loop = asyncio.get_running_loop()
        next_recovery = loop.time()
        while not stopping.is_set():
            self._wake.clear()
            try:
                if loop.time() >= next_recovery:
                    await self.recover()
                    next_recovery = loop.time() + self.recover_every
                await self.tick()
            except Exception:  # the database may be away for a moment: keep the worker alive and try again
                log.exception("delivery could not read the outbox")
                await self._nap(stopping, 5.0)
            await self._nap(stopping, 1.0)
        await self.settle()

    async def _nap(self, stopping: asyncio.Event, seconds: float) -> None:
        """Sleep until woken (rows queued, a send finished), stopped, or `seconds` pass (rows due later)."""
        await nap(self._wake, stopping, seconds)

    async def settle(self) -> None:
        """Wait for every send in flight to finish and be recorded."""
        while self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)

    async def drain(self, timeout: float = 30.0) -> None:
        """Deliver until no row is pending or sending (tests, benchmarks), waiting out retry-afters."""
        await drain_until_idle(self.tick, self.tasks, self._unsent, "the outbox", timeout)

    def _unsent(self) -> int:
        """Rows of these platforms not yet sent, whoever holds them."""
        with self.store.transaction() as tx:
            marks = ", ".join("?" * len(self.lanes))
            return tx.one(f"SELECT COUNT(*) FROM outbox WHERE status IN ('pending', 'sending') "
                          f"AND platform IN ({marks})", list(self.lanes))[0]

    async def tick(self) -> int:
        """Lease the next row of every chat that is free, and start sending them; returns how many."""
        started = 0
        for lane in self.lanes.values():
            room = self.in_flight - len(self.tasks)
            if room <= 0:
                break
            now = asyncio.get_running_loop().time()
            cooling = frozenset(chat for chat, at in lane.pace.chat_free_at.items() if at > now)
            rows, elsewhere = await asyncio.to_thread(self._lease, lane, frozenset(lane.busy), cooling, room)
            now = asyncio.get_running_loop().time()
            for chat, seconds in elsewhere.items():  # another process messaged the chat a moment ago
                lane.pace.chat_free_at[chat] = max(lane.pace.chat_free_at.get(chat, 0.0), now + seconds)
            for priority, row in rows:
                lane.busy.add(row.chat_id)
                task = asyncio.create_task(self._deliver(lane, row, priority))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
                started += 1
        return started

    # -- one row -----------------------------------------------------------------------------------

    async def _deliver(self, lane: Lane, row: Pending, priority: int) -> None:
        """Wait for the row's turn, mark it 'sending', send it, record what happened."""
        loop = asyncio.get_running_loop()
        try:
            marked = False
            while not marked:
                if not await self._turn(lane, row.chat_id, priority):
                    await asyncio.to_thread(self._unlease, row.id)  # not begun: the next start sends it
                    return
                let_go = loop.time()
                marked = await asyncio.to_thread(self._mark_sending, lane, row)
                while isinstance(marked, Hold) and marked.whole_bot and not marked.paused:
                    await asyncio.sleep(marked.seconds)  # the bot's second is full until its oldest send leaves it
                    let_go = loop.time()
                    marked = await asyncio.to_thread(self._mark_sending, lane, row)
                if isinstance(marked, Hold):  # too soon for the chat, or a 429 another process saw
                    lane.pace.hold(row.chat_id, marked, loop.time())
                    marked = False
                elif not marked:
                    return  # the lease ran out and another worker took the row
            lane.pace.sending(row.chat_id, loop.time())
            try:
                external_id = await lane.sender.send(row.chat_id, row.message, row.id)
            except RateLimited as error:
                lane.pace.pause(error.retry_after, loop.time())
                if lane.pace.shared is not None:  # every other process pauses too, the sooner the better
                    await asyncio.to_thread(lane.pace.shared.pause, error.retry_after)
                self.metrics.rate_limited.labels(lane.sender.platform).inc()
                await asyncio.to_thread(self._retry, lane, row, error.retry_after, str(error), False)
            except Blocked as error:
                self.metrics.failed.labels(lane.sender.platform).inc()
                await asyncio.to_thread(self._blocked, lane, row, str(error))
            except Refused as error:
                self.metrics.failed.labels(lane.sender.platform).inc()
                await asyncio.to_thread(self._fail, lane, row, str(error))
            except Exception as error:  # Unavailable, or an adapter bug: both deserve another try
                if not isinstance(error, Unavailable):
                    log.exception("sending outbox row %s failed", row.id)
                retried = await asyncio.to_thread(self._retry, lane, row, None, f"{type(error).__name__}: {error}",
                                                  True)
                (self.metrics.retried if retried else self.metrics.failed).labels(lane.sender.platform).inc()
            else:
                await asyncio.to_thread(self._sent, lane, row, external_id)
                self.metrics.sent.labels(lane.sender.platform).inc()
                log.info("outbox row sent", extra={"event": "outbox.sent", "platform": lane.sender.platform,
                                                   "outbox_id": row.id, "person_id": row.person_id})
            lane.pace.measure(loop.time() - let_go)  # its end is recorded: the budget counted it this long
        finally:
            lane.busy.discard(row.chat_id)
            if len(lane.pace.chat_free_at) > 4 * self.in_flight:
                lane.pace.forget_idle(loop.time())
            self._wake.set()

    async def _turn(self, lane: Lane, chat_id: str, priority: int) -> bool:
        """Wait for the row's slot; False if the worker is told to stop first."""
        turn = asyncio.ensure_future(lane.pace.turn(chat_id, priority))
        if self._stopping is None:
            await turn
            return True
        stop = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({turn, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if turn.done() and not self._stopping.is_set():
            return True
        turn.cancel()
        return False

    # -- the database side (called in a worker thread: blocking) ------------------------------------

    def _lease(self, lane: Lane, busy: frozenset[str], cooling: frozenset[str],
               room: int) -> tuple[list[tuple[int, Pending]], dict[str, float]]:
        """Claim the head row of up to `room` chats; they stay 'pending' until sent. Also returns, on
        PostgreSQL, how long each of their chats must still wait for a message another process sent."""
        now = self.clock()
        platform = lane.sender.platform
        with self.store.transaction() as tx:
            heads = self._heads(tx, platform, busy, cooling, room, now)
            if not heads:
                return [], {}
            lock = " FOR UPDATE SKIP LOCKED" if tx.postgres else ""
            marks = ", ".join("?" * len(heads))
            rows = tx.all(
                f"UPDATE outbox SET claimed_by = ?, claimed_at = ? WHERE id IN (SELECT id FROM outbox "
                f"WHERE id IN ({marks}) AND status = 'pending' AND "
                f"(claimed_by IS NULL OR claimed_by = ? OR claimed_at < ?){lock}) "
                "RETURNING id, person_id, platform, chat_id, template, locale, context, buttons, priority, parts",
                [self.worker, tx.ts(now), *heads, self.worker, tx.ts(now - self.lease)])
            rows.sort(key=lambda row: (row[8], row[0]))
            leased = []
            for row in rows:
                try:
                    leased.append((row[8], Pending(row[0], row[1], row[2], row[3], render(self.catalog, *row[4:8], row[9]))))
                except Exception as error:  # a broken template fails its row, not the worker
                    log.exception("outbox row %s cannot be rendered", row[0])
                    tx.execute("UPDATE outbox SET status = 'failed', error = ? WHERE id = ?",
                               (f"{type(error).__name__}: {error}", row[0]))
            # Read after the claim: a chat's previous row was marked 'sending' (with its stamp) before
            # it became 'sent' and let this one be claimed, so the stamp is seen here.
            elsewhere = lane.pace.shared.cooling(tx, [row.chat_id for _, row in leased]) if lane.pace.shared else {}
        return leased, elsewhere

    def _heads(self, tx: Tx, platform: str, busy: frozenset[str], cooling: frozenset[str], room: int,
               now: datetime) -> list[int]:
        """Each chat's first unsent row in (priority, id) order, when it is due and nobody holds it.

        Chats still cooling down from their last message come after the others: in a broadcast they
        would only hold places that chats ready now can use.
        """
        stale = now - self.lease
        seen: set[str] = set()
        heads: list[int] = []
        later: list[int] = []
        for row_id, chat_id, status, claimed_by, claimed_at, not_before in tx.all(
                "SELECT id, chat_id, status, claimed_by, claimed_at, not_before FROM outbox "
                f"WHERE platform = ? AND status IN ('pending', 'sending') ORDER BY priority, id LIMIT {self.window}",
                (platform,)):
            if chat_id in seen:
                continue
            seen.add(chat_id)
            free = claimed_by is None or claimed_by == self.worker or as_moment(claimed_at) < stale
            due = not_before is None or as_moment(not_before) <= now
            if status == "pending" and free and due and chat_id not in busy:
                (later if chat_id in cooling else heads).append(row_id)
                if len(heads) == room:
                    break
        return (heads + later)[:room]

    def _unlease(self, outbox_id: int) -> None:
        """Give back a leased row that was never sent."""
        with self.store.transaction() as tx:
            tx.execute("UPDATE outbox SET claimed_by = NULL WHERE id = ? AND status = 'pending' AND claimed_by = ?",
                       (outbox_id, self.worker))

    def _mark_sending(self, lane: Lane, row: Pending) -> bool | Hold:
        """The last step before the platform is called: from here on, a crash leaves the row 'sending'.

        False when the row is no longer this worker's. On PostgreSQL the shared budget must let the
        message go in the same transaction, else the `Hold` says how long to wait (nothing is marked).
        """
        with self.store.transaction() as tx:
            if lane.pace.shared is not None:
                hold = lane.pace.shared.take(tx, row.chat_id)
                if hold is not None:
                    return hold
            cursor = tx.execute("UPDATE outbox SET status = 'sending', claimed_at = ? "
                                "WHERE id = ? AND status = 'pending' AND claimed_by = ?",
                                (tx.ts(self.clock()), row.id, self.worker))
            if cursor.rowcount != 1:
                tx.connection.rollback()  # the budget's place is not taken for a row that does not go
                return False
            return True

    @staticmethod
    def _ended(tx: Tx, lane: Lane, chat_id: str) -> None:
        """A send to `chat_id` is over, whatever its answer: the shared budget counts it from now (PostgreSQL)."""
        if lane.pace.shared is not None:
            lane.pace.shared.finish(tx, chat_id)

    def _sent(self, lane: Lane, row: Pending, external_id: str | None) -> None:
        """Record the send; a chat that takes a message again is reachable again."""
        with self.store.transaction() as tx:
            self._ended(tx, lane, row.chat_id)
            tx.execute("UPDATE outbox SET status = 'sent', sent_at = ?, external_id = ?, attempts = attempts + 1 "
                       "WHERE id = ?", (tx.ts(self.clock()), external_id, row.id))
            tx.execute("UPDATE chatidentity SET unreachable = ? WHERE platform = ? AND chat_id = ? AND unreachable",
                       (False, lane.sender.platform, row.chat_id))

    def _retry(self, lane: Lane, row: Pending, after: float | None, error: str, counts: bool) -> bool:
        """Back to 'pending' for later: after the platform's retry-after, or an exponential backoff;
        False when the row has failed `max_attempts` times and is given up instead.

        Only failures count towards `max_attempts`; a 429 is the platform asking us to wait, not a failure.
        """
        with self.store.transaction() as tx:
            self._ended(tx, lane, row.chat_id)
            attempts = tx.one("SELECT attempts FROM outbox WHERE id = ?", (row.id,))[0] + int(counts)
            if attempts >= self.max_attempts:
                tx.execute("UPDATE outbox SET status = 'failed', attempts = ?, error = ? WHERE id = ?",
                           (attempts, error, row.id))
                return False
            if after is None:  # 1 s, 2 s, 4 s … with jitter, so retries from many rows do not align
                after = min(self.max_backoff, 2.0 ** (attempts - 1)) * random.uniform(0.8, 1.2)
            tx.execute("UPDATE outbox SET status = 'pending', claimed_by = NULL, attempts = ?, not_before = ?, "
                       "error = ? WHERE id = ?",
                       (attempts, tx.ts(self.clock() + timedelta(seconds=after)), error, row.id))
        return True

    def _fail(self, lane: Lane, row: Pending, error: str) -> None:
        """The platform refused the row for good: keep why, never retry it."""
        with self.store.transaction() as tx:
            self._ended(tx, lane, row.chat_id)
            tx.execute("UPDATE outbox SET status = 'failed', attempts = attempts + 1, error = ? WHERE id = ?",
                       (error, row.id))

    def _blocked(self, lane: Lane, row: Pending, error: str) -> None:
        """Flag the chat unreachable and fail what waits for it: a blocked bot is never retried."""
        platform = lane.sender.platform
        with self.store.transaction() as tx:
            self._ended(tx, lane, row.chat_id)
            tx.execute("UPDATE chatidentity SET unreachable = ? WHERE platform = ? AND chat_id = ?",
                       (True, platform, row.chat_id))
            tx.execute("UPDATE outbox SET status = 'failed', attempts = attempts + 1, error = ? WHERE id = ?",
                       (error, row.id))
            tx.execute("UPDATE outbox SET status = 'failed', error = ? WHERE platform = ? AND chat_id = ? "
                       "AND status = 'pending'", (error, platform, row.chat_id))

    # -- the crash window --------------------------------------------------------------------------

    async def recover(self) -> None:
        """Settle rows whose worker died: its leases are released, its 'sending' rows checked or re-sent."""
        for platform, lane in self.lanes.items():
            if lane.pace.shared is not None:
                await asyncio.to_thread(lane.pace.shared.forget_idle)
            for outbox_id, chat_id, claimed_at in await asyncio.to_thread(self._orphans, platform):
                try:
                    external_id = await lane.sender.find_sent(chat_id, outbox_id, claimed_at)
                except CannotTell:
                    await asyncio.to_thread(self._release, lane, outbox_id, chat_id, RESENT)
                except DeliveryError as error:
                    log.warning("cannot check outbox row %s yet: %s", outbox_id, error)
                else:
                    if external_id is None:
                        await asyncio.to_thread(self._release, lane, outbox_id, chat_id, None)
                    else:
                        await asyncio.to_thread(self._confirm, lane, outbox_id, chat_id, external_id)
        self.wake()

    def _orphans(self, platform: str) -> list[tuple[int, str, datetime]]:
        """Free the leases of dead workers; return their 'sending' rows, and any stuck too long."""
        now = self.clock()
        with self.store.transaction() as tx:
            dead = [worker for (worker,) in tx.all(
                "SELECT DISTINCT claimed_by FROM outbox WHERE platform = ? AND status IN ('pending', 'sending') "
                "AND claimed_by IS NOT NULL", (platform,)) if self._is_dead(worker)]
            for worker in dead:
                tx.execute("UPDATE outbox SET claimed_by = NULL WHERE platform = ? AND status = 'pending' "
                           "AND claimed_by = ?", (platform, worker))
            marks = ", ".join("?" * len(dead)) or "NULL"
            rows = tx.all(f"SELECT id, chat_id, claimed_at FROM outbox WHERE platform = ? AND status = 'sending' "
                          f"AND (claimed_by IN ({marks}) OR claimed_at < ?) ORDER BY id",
                          (platform, *dead, tx.ts(now - self.claim_timeout)))
        return [(row_id, chat_id, as_moment(claimed_at)) for row_id, chat_id, claimed_at in rows]

    def _is_dead(self, worker: str) -> bool:
        """A claim by a process of this host that no longer runs (a claim by another host waits out its timeout)."""
        host, _, pid = worker.rpartition(":")
        return (host == socket.gethostname() and worker != self.worker and pid.isdigit()
                and not _is_alive(int(pid)))

    def _release(self, lane: Lane, outbox_id: int, chat_id: str, note: str | None) -> None:
        """An orphaned 'sending' row goes back to 'pending', to be sent again; its send is over."""
        with self.store.transaction() as tx:
            self._ended(tx, lane, chat_id)
            tx.execute("UPDATE outbox SET status = 'pending', claimed_by = NULL, error = COALESCE(?, error) "
                       "WHERE id = ? AND status = 'sending'", (note, outbox_id))

    def _confirm(self, lane: Lane, outbox_id: int, chat_id: str, external_id: str) -> None:
        """An orphaned 'sending' row that the platform shows as arrived is 'sent'."""
        with self.store.transaction() as tx:
            self._ended(tx, lane, chat_id)
            tx.execute("UPDATE outbox SET status = 'sent', sent_at = ?, external_id = ?, attempts = attempts + 1 "
                       "WHERE id = ? AND status = 'sending'", (tx.ts(self.clock()), external_id, outbox_id))
