"""One sending budget per bot and per chat, shared by every `serve` process through PostgreSQL.

Each process paces itself in memory (`worker.Pace`); with several processes each one would keep
the whole platform limit to itself (three processes, 90 messages a second through one Telegram
bot whose limit is 30). So on PostgreSQL the budget lives in the database, in `sendpace`, in two
steps:

1. **a slot.** A process with a message ready reserves the bot's next slot with one atomic upsert
   (`next_slot = GREATEST(next_slot, now, paused_until) + interval`) and sleeps until it (a few
   slots at once when several messages are ready, so a busy process is not held back by its round
   trips). The row is locked for that statement only, so the processes interleave, each holding a
   tenth of a second of slots at most: together they send at the limit (3% under it), and nobody
   waits on another's send.
2. **the send.** The transaction that marks the outbox row 'sending' — the last step before the
   platform is called — locks the bot's row and lets the message go only if the bot is not paused
   by a 429, fewer than `per_second` messages (one under the limit) went in the last second, and
   the chat's previous message, from whatever process, went a second (and 5%) ago. Otherwise it
   says how long to wait. Each chat's row holds the moment its last message went, so the sliding
   second is counted from the chats' rows. A process that woke late for its slot (a busy machine)
   loses nothing and cannot make a burst: the platform never sees its limit exceeded in any second.

A 429 seen by one process sets the bot's `paused_until` to its retry-after: no slot is handed out
and no message is let go before it ends, in any process.

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


@dataclass(frozen=True)
class Hold:
    """Why a message may not go yet, and for how long."""

    seconds: float
    paused: bool  # a 429's retry-after (the whole process waits), not just a moment too soon


class SharedBudget:
    """A platform's pace (bot and chats) kept in the database, for every process that sends through it."""

    def __init__(self, store: Store, platform: str, bot: str, slot_interval: float, per_second: int,
                 chat_gap: float):
        self.store = store
        self.platform = platform
        self.bot = bot
        self.slot_interval = slot_interval  # between the slots handed out
        self.per_second = per_second  # messages of the bot in any one second, checked at the send
        self.chat_gap = chat_gap  # the least time between two messages to one chat (more than a second)

    def reserve(self, count: int = 1) -> float:
        """Reserve the bot's next `count` send slots, `slot_interval` apart; returns the seconds until the
        first (≤ 0: now). Several at once spare a busy process a round trip per message."""
        span = count * self.slot_interval
        with self.store.transaction() as tx:
            return tx.one(
                f"INSERT INTO sendpace AS p (platform, bot, chat_id, next_slot, next_send, paused_until) "
                f"VALUES (?, ?, '', {NOW} + ?, 0, 0) ON CONFLICT (platform, bot, chat_id) DO UPDATE "
                f"SET next_slot = GREATEST(p.next_slot, p.paused_until, {NOW}) + ? "
                f"RETURNING p.next_slot - ? - {NOW}",
                (self.platform, self.bot, span, span, span))[0]

    def pause(self, seconds: float) -> None:
        """A 429: no process sends through this bot for `seconds`."""
        with self.store.transaction() as tx:
            tx.execute(f"INSERT INTO sendpace AS p (platform, bot, chat_id, next_slot, next_send, paused_until) "
                       f"VALUES (?, ?, '', 0, 0, {NOW} + ?) ON CONFLICT (platform, bot, chat_id) DO UPDATE "
                       f"SET paused_until = GREATEST(p.paused_until, {NOW} + ?)",
                       (self.platform, self.bot, seconds, seconds))

    def take(self, tx: Tx, chat_id: str) -> Hold | None:
        """In the transaction that marks a row 'sending': let a message to `chat_id` go now (None), taking
        its place in the bot's and the chat's pace, or say how long it must wait."""
        bot = tx.one(f"SELECT paused_until - {NOW} FROM sendpace WHERE platform = ? AND bot = ? AND chat_id = '' "
                     "FOR UPDATE", (self.platform, self.bot))  # takers of this bot's budget go one at a time
        paused = bot[0] if bot else 0.0
        # Each chat's row says when its last message went (next_send - chat_gap): those within the last second.
        recent, oldest = tx.one(f"SELECT COUNT(*), MIN(next_send) FROM sendpace WHERE platform = ? AND bot = ? "
                                f"AND chat_id <> '' AND next_send > {NOW} + ? - 1",
                                (self.platform, self.bot, self.chat_gap))
        full = oldest - self.chat_gap + 1.0 - tx.one(f"SELECT {NOW}")[0] if recent >= self.per_second else 0.0
        chat = tx.one(f"SELECT next_send - {NOW} FROM sendpace WHERE platform = ? AND bot = ? AND chat_id = ?",
                      (self.platform, self.bot, chat_id))
        wait = max(paused, full, chat[0] if chat else 0.0)
        if wait > 0:
            return Hold(wait, paused > 0)
        tx.execute(f"INSERT INTO sendpace AS p (platform, bot, chat_id, next_slot, next_send, paused_until) "
                   f"VALUES (?, ?, ?, 0, {NOW} + ?, 0) ON CONFLICT (platform, bot, chat_id) DO UPDATE "
                   f"SET next_send = {NOW} + ?", (self.platform, self.bot, chat_id, self.chat_gap, self.chat_gap))
        return None

    def cooling(self, tx: Tx, chat_ids: list[str]) -> dict[str, float]:
        """Of `chat_ids`, those that got a message too recently (from any process): chat → seconds left."""
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
