"""Delivery at the platform's limit: a broadcast through python-telegram-bot to a loopback Bot API.

5,000 messages to 1,000 students are queued in the outbox (each student's five in a row, the
hardest order for per-chat pacing), then the delivery worker sends them through the real
Telegram adapter to a fake Bot API that enforces Telegram's limits, 1 message/s per chat and
30/s per bot, answering 429 beyond them. The delivered rate is measured from the first to the
last message the fake accepted, as a fraction of the per-bot limit; every message must arrive
once: duplicates and losses are counted from what the fake received.

    python bench/delivery.py [--messages 5000] [--students 1000]

Last line: key=value figures.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.telegram import TelegramAdapter  # noqa: E402
from core.config import Settings  # noqa: E402
from core.domain.db import make_engine, upgrade  # noqa: E402
from core.delivery.worker import Delivery, utc_now  # noqa: E402
from core.engine.pipeline import Engine  # noqa: E402
from core.domain.messages import Outbound  # noqa: E402
from core.domain.store import Store  # noqa: E402
from core.features import REGISTRY  # noqa: E402
from tests.fakes import FakeTelegram  # noqa: E402

PER_CHAT, PER_BOT = 1.0, 30.0


def queue(store: Store, messages: int, students: int) -> set[tuple[str, str]]:
    """The broadcast, student by student; returns the (chat, text) pairs that must each arrive once."""
    expected = set()
    with store.transaction() as tx:
        for n in range(messages):
            chat = str(10_000 + n * students // messages)
            message = Outbound("commands/unknown", {"command": f"nudge{n}"})
            tx.enqueue(None, "telegram", chat, "en", message, utc_now(), priority=1)
            expected.add((chat, REGISTRY.catalog.text(message.template, "en", message.context)))
    return expected


async def deliver(store: Store, fake: FakeTelegram) -> float:
    """Send the whole outbox through the Telegram adapter; returns the seconds it took."""
    settings = Settings(TELEGRAM_BOT_TOKEN=fake.token, TELEGRAM_API_URL=fake.url)
    adapter = TelegramAdapter(settings, Engine(store, REGISTRY, settings), queued=lambda: None)
    await adapter.app.initialize()
    try:
        began = time.monotonic()
        await Delivery(store, adapter.conversation.catalog, [adapter]).drain(timeout=3600)
        return time.monotonic() - began
    finally:
        await adapter.app.shutdown()


def main() -> None:
    """Queue, deliver, count, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--students", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, FakeTelegram() as fake:
        database = make_engine(f"sqlite:///{Path(scratch) / 'bench.db'}")
        upgrade(database)
        store = Store(database)
        expected = queue(store, args.messages, args.students)
        fake.enforce(per_chat=PER_CHAT, per_bot=PER_BOT)
        elapsed = asyncio.run(deliver(store, fake))
        database.dispose()
    got = Counter((chat, message["text"]) for chat, messages in fake.messages.items() for message in messages)
    times = fake.accepted_at
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    duplicates = sum(count - 1 for count in got.values())
    losses = sum(1 for key in expected if key not in got)
    print(f"{len(times)} of {args.messages} messages to {args.students} students in {elapsed:.1f} s: "
          f"{rate:.2f}/s against limits of {PER_BOT:.0f}/s per bot and {PER_CHAT:.0f}/s per chat")
    print(f"duplicates {duplicates}, losses {losses}, answered 429 by the fake {fake.refused}")
    print(f"messages={args.messages} students={args.students} seconds={elapsed:.1f} rate={rate:.2f} "
          f"fraction_of_limit={rate / PER_BOT:.3f} duplicates={duplicates} losses={losses} refused_429={fake.refused}")


if __name__ == "__main__":
    main()
