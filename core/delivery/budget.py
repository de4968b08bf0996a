"""One sending budget per bot and per chat, shared by every `serve` process through PostgreSQL.

Each process paces itself in memory (`worker.Pace`); with several processes each one would keep
the whole platform limit to itself (three processes, 90 messages a second through one Telegram
bot whose limit is 30). So on PostgreSQL the budget lives in the database, in `sendpace`.

**What the platform counts is arrivals, and nobody here sees them.** A message is let go in the
database and reaches the platform a moment later: a thread hands it back to the event loop, the
HTTP client writes it, a busy machine may deschedule the process in between. Counting messages
when they are let go (as this module once did, 29 a second on the database's clock) still let 33
arrive within one second: a process stalled after letting two or three go, then sent them beside
the others'. So each message is counted from the moment it is let go until a second after its
send *ended* (the platform's answer came back, so it arrived before that):

- **the bot**: a message may go only while fewer than `per_second` messages are in flight or ended
  within the last second. Then the platform never sees more than `per_second` in any sliding
  second, whatever the delays: of `per_second + 1` arrivals within one second, take the one let go
  last. When it was let go, each of the others had been let go before and had not ended, or had
  ended within the second before (a send ends after its arrival, which lies in that second): the
  budget counted `per_second` and held it.
- **a chat**: the same with a limit of one: its next message goes `chat_gap` after the previous
  send ended, whichever process sent it.

The cost is the send's round trip: a bot sends `per_second / (1 + d)` a second, `d` the time from
letting a message go to recording its end (a few hundredths of a second to a loopback Bot API).

Each chat's row holds in `next_send` when the chat may get its next message: while its send is in
flight, `IN_FLIGHT_AT_MOST` ahead (a process that died mid-send holds nothing for longer); when it
ends, `chat_gap` after. Those less than a second past the end of their send are the bot's
window. The bot's row (`chat_id` "") is locked by each taker, so they go one at a time, and holds
`paused_until`: a 429 seen by one process pauses every process for its retry-after. `next_slot`
hands out the bot's send slots, so that the processes interleave their sends instead of bursting
together and then waiting a second: `(1 + d) / per_second` apart, `d` as the reserving process
measures it, so that each slot comes as a message leaves the window (slots any closer would only
be held back; a slot that is, now and then, waits for the window and costs a round trip).

Why a row rather than an advisory-lock lease of "the sender": the lock is held for a statement or
the short marking transaction, never across a send, so no process waits on another's network
round trip; a process that dies holds nothing; and it works through a transaction-mode pooler
(PgBouncer), which session advisory locks do not. Times are the database's clock
(`clock_timestamp()`), the one clock every process on every host shares. SQLite has one writer
and so one delivering process: there the in-memory pace is the whole story, as before.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.domain.store import Store, Tx

NOW = "EXTRACT(EPOCH FROM clock_timestamp())::float8"
FORGET_AFTER = 60.0  # seconds after which a chat's row is of no use and is deleted
IN_FLIGHT_AT_MOST = 60.0  # a send not ended after this long is taken as over (its process died)
WINDOW = 1.0  # the platforms count messages per second


@dataclass(frozen=True)
class Hold:
    """Why a message may not go yet, and for how long."""

    seconds: float
    whole_bot: bool  # the bot is full or paused by a 429 (nothing goes), not just this chat too soon
    paused: bool = False  # a 429's retry-after


class SharedBudget:
    """A platform's pace (bot and chats) kept in the database, for every process that sends through it."""

    def __init__(self, store: Store, platform: str, bot: str, per_second: int, chat_gap: float):
        self.store = store
        self.platform = platform
        self.bot = bot
        self.per_second = per_second  # messages of the bot in flight or ended within the last second
        self.chat_gap = chat_gap  # from the end of a chat's send to the start of its next one

    def slot_interval(self, send_seconds: float) -> float:
        """The time between two slots when a message is counted `send_seconds` before its send ends."""
        return (WINDOW + send_seconds) / self.per_second

    def reserve(self, interval: float) -> float:
        """Reserve the bot's next send slot, `interval` after the one before; returns the seconds until it
        (≤ 0: now)."""
        with self.store.transaction() as tx:
            return tx.one(
                f"INSERT INTO sendpace AS p (platform, bot, chat_id, next_slot, next_send, paused_until) "
                f"VALUES (?, ?, '', {NOW} + ?, 0, 0) ON CONFLICT (platform, bot, chat_id) DO UPDATE "
                f"SET next_slot = GREATEST(p.next_slot, p.paused_until, {NOW}) + ? "
                f"RETURNING p.next_slot - ? - {NOW}",
                (self.platform, self.bot, interval, interval, interval))[0]

    def pause(self, seconds: float) -> None:
        """A 429: no process sends through this bot for `seconds`."""
        with self.store.transaction() as tx:
            tx.execute(f"INSERT INTO sendpace AS p (platform, bot, chat_id, next_slot, next_send, paused_until) "
                       f"VALUES (?, ?, '', 0, 0, {NOW} + ?) ON CONFLICT (platform, bot, chat_id) DO UPDATE "
                       f"SET paused_until = GREATEST(p.paused_until, {NOW} + ?)",
                       (self.platform, self.bot, seconds, seconds))

    def take(self, tx: Tx, chat_id: str) -> Hold | None:
        """In the transaction that marks a row 'sending': let a message to `chat_id` go now (None), counting
        it in flight for the bot and the chat until `finish`, or say how long it must wait."""
        # The upsert locks the bot's row (creating it the first time): takers of this bot go one at a time.
        paused = tx.one(f"INSERT INTO sendpace AS p (platform, bot, chat_id, next_slot, next_send, paused_until) "
                        f"VALUES (?, ?, '', 0, 0, 0) ON CONFLICT (platform, bot, chat_id) DO UPDATE "
                        f"SET paused_until = p.paused_until RETURNING p.paused_until - {NOW}",
                        (self.platform, self.bot))[0]
        if paused > 0:
            return Hold(paused, whole_bot=True, paused=True)
        # The bot's window: chats whose send is in flight or ended within the last second.
        counted, first_out = tx.one(f"SELECT COUNT(*), MIN(next_send) - {NOW} FROM sendpace WHERE platform = ? "
                                    f"AND bot = ? AND chat_id <> '' AND next_send > {NOW} + ?",
                                    (self.platform, self.bot, self.chat_gap - WINDOW))
        if counted >= self.per_second:  # full until the oldest ended send is a second old (one in flight: ≥ 1 s)
            return Hold(min(WINDOW, first_out - self.chat_gap + WINDOW), whole_bot=True)
        chat = tx.one(f"SELECT next_send - {NOW} FROM sendpace WHERE platform = ? AND bot = ? AND chat_id = ?",
                      (self.platform, self.bot, chat_id))
        if chat and chat[0] > 0:
            return Hold(chat[0], whole_bot=False)
        self._stamp(tx, chat_id, IN_FLIGHT_AT_MOST + self.chat_gap)
        return None

    def finish(self, tx: Tx, chat_id: str) -> None:
        """The send to `chat_id` ended (whatever the answer): the chat and the bot count it from now."""
        self._stamp(tx, chat_id, self.chat_gap)

    def _stamp(self, tx: Tx, chat_id: str, seconds: float) -> None:
        """Set when `chat_id` may next get a message: `seconds` from now on the database's clock."""
        tx.execute(f"INSERT INTO sendpace AS p (platform, bot, chat_id, next_slot, next_send, paused_until) "
                   f"VALUES (?, ?, ?, 0, {NOW} + ?, 0) ON CONFLICT (platform, bot, chat_id) DO UPDATE "
                   f"SET next_send = {NOW} + ?", (self.platform, self.bot, chat_id, seconds, seconds))

    def cooling(self, tx: Tx, chat_ids: list[str]) -> dict[str, float]:
        """Of `chat_ids`, those in flight or that got a message too recently (from any process): chat → seconds left."""
        if not chat_ids:
            return {}
        marks = ", ".join("?" * len(chat_ids))
        return dict(tx.all(f"SELECT chat_id, next_send - {NOW} FROM sendpace WHERE platform = ? AND bot = ? "
                           f"AND chat_id IN ({marks}) AND next_send > {NOW}", (self.platform, self.bot, *chat_ids)))

    def forget_idle(self) -> None:
        """Delete the rows of chats free again long ago, so the table stays as small as the busy chats."""
        with self.store.transaction() as tx:
            tx.execute(f"DELETE FROM sendpace WHERE platform = ? AND bot = ? AND chat_id <> '' "
                       f"AND next_send < {NOW} - ?", (self.platform, self.bot, FORGET_AFTER))
