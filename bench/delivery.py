"""Delivery at the platform's limit: a broadcast through python-telegram-bot to a loopback Bot API.

5,000 messages to 1,000 students are queued in the outbox (each student's five in a row, the
hardest order for per-chat pacing), then `--processes` delivery workers, each a process of its own
as `companion serve` would be, send them through the real Telegram adapter to a fake Bot API that
enforces Telegram's limits, 1 message/s per chat and 30/s per bot, answering 429 beyond them. With
several processes the database must be PostgreSQL (`--database-url`): they share one budget there
(core/delivery/budget.py). The figures come from the fake's arrival clock:

- the delivered rate from the first to the last message it accepted, as a fraction of the per-bot
  limit (the retry-after of an injected 429 left out), and the most messages in any sliding window of
  one second (not per calendar second: 20 at the end of one second and 20 at the start of the next
  are 40 within one second to the platform);
- how long a send took, from the adapter's call to its answer (median and 95th percentile): the
  shared budget counts each message until a second after its send ended, so the rate is about the
  limit / (1 + that time and the database's round trips);
- every message must arrive once: duplicates and losses are counted from what the fake received;
- `--inject-429-after K`: the fake answers the K-th message with a 429 (retry after
  `--retry-after` seconds); the processes that did not get it must send nothing until it is over.

    python bench/delivery.py [--messages 5000] [--students 1000] [--processes 3]
                             [--database-url postgresql://postgres@127.0.0.1:5432/test] [--inject-429-after 1000]

Last line: key=value figures.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import make_url, text  # noqa: E402

from bot.telegram import TelegramAdapter  # noqa: E402
from core.config import Settings  # noqa: E402
from core.delivery.worker import Delivery, RateLimited, utc_now  # noqa: E402
from core.domain.db import make_engine, upgrade  # noqa: E402
from core.domain.messages import Outbound  # noqa: E402
from core.domain.store import Store  # noqa: E402
from core.engine.pipeline import Engine  # noqa: E402
from core.features import REGISTRY  # noqa: E402
from tests.fakes import FakeTelegram  # noqa: E402

PER_CHAT, PER_BOT = 1.0, 30.0


@dataclass
class Send:
    """One call of a worker process to the platform, on the host's monotonic clock."""

    worker: str
    began: float
    ended: float
    rate_limited: bool


@dataclass
class Result:
    """What a run measured."""

    messages: int
    accepted: int
    seconds: float
    rate: float  # messages per second from the first to the last accepted, a 429's retry-after left out
    busiest_second: int  # the most messages accepted within any one second
    duplicates: int
    losses: int
    refused: int  # 429s the fake answered because the pace was exceeded
    sends: list[Send]
    arrivals: list[float]  # when the fake accepted each message
    paused_at: float | None = None  # when the injected 429 was answered
    retry_after: float = 0.0

    def send_seconds(self, quantile: float) -> float:
        """The `quantile` of how long the sends took, from the adapter's call to its answer."""
        took = sorted(send.ended - send.began for send in self.sends)
        return took[min(len(took) - 1, int(quantile * len(took)))] if took else 0.0

    def sent_during_pause(self, margin: float = 0.1) -> list[Send]:
        """Sends begun by any process while the injected 429's retry-after ran (a send already on the
        wire when it came, `margin` seconds, is not a breach)."""
        if self.paused_at is None:
            return []
        return [send for send in self.sends
                if self.paused_at + margin < send.began < self.paused_at + self.retry_after - margin]

    def arrived_during_pause(self, margin: float = 0.1) -> list[float]:
        """Messages the fake accepted while the injected 429's retry-after ran (after `margin` seconds for
        those already on the wire when it came)."""
        if self.paused_at is None:
            return []
        return [at for at in self.arrivals if self.paused_at + margin < at < self.paused_at + self.retry_after]


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


def busiest_second(times: list[float]) -> int:
    """The most arrivals within any sliding window of one second."""
    times = sorted(times)
    return max((bisect.bisect_left(times, at + 1.0) - n for n, at in enumerate(times)), default=0)


# -- one worker process ----------------------------------------------------------------------------


async def work(database_url: str, api_url: str, token: str, timeout: float) -> None:
    """Deliver the whole outbox from this process, printing each send as a JSON line."""
    database = make_engine(database_url)
    store = Store(database)
    settings = Settings(TELEGRAM_BOT_TOKEN=token, TELEGRAM_API_URL=api_url)
    adapter = TelegramAdapter(settings, Engine(store, REGISTRY, settings), queued=lambda: None)
    delivery = Delivery(store, adapter.conversation.catalog, [adapter])
    send = adapter.send

    async def logged(chat_id, message, outbox_id):
        began, limited = time.monotonic(), False
        try:
            return await send(chat_id, message, outbox_id)
        except RateLimited:
            limited = True
            raise
        finally:
            print(json.dumps({"worker": delivery.worker, "began": began, "ended": time.monotonic(),
                              "rate_limited": limited}), flush=True)

    adapter.send = logged
    await adapter.app.initialize()
    try:
        await delivery.drain(timeout=timeout)
    finally:
        await adapter.app.shutdown()
        database.dispose()


# -- the run ---------------------------------------------------------------------------------------


def run(database_url: str, messages: int, students: int, processes: int, inject_429_after: int | None = None,
        retry_after: float = 2.0, timeout: float = 3600.0) -> Result:
    """Queue the broadcast in a migrated database, deliver it with `processes` worker processes, measure."""
    engine = make_engine(database_url)
    upgrade(engine)
    expected = queue(Store(engine), messages, students)
    engine.dispose()
    with FakeTelegram() as fake:
        fake.enforce(per_chat=PER_CHAT, per_bot=PER_BOT)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        command = [sys.executable, __file__, "--work", database_url, fake.url, fake.token, str(timeout)]
        # Each worker writes its sends to a file of its own: a pipe read one worker after another would
        # fill up and stop the others mid-run.
        logs = [tempfile.TemporaryFile("w+") for _ in range(processes)]
        began = time.monotonic()
        workers = [subprocess.Popen(command, stdout=log, env=env, text=True) for log in logs]
        paused_at = None
        if inject_429_after is not None:
            while len(fake.accepted_at) < inject_429_after and any(worker.poll() is None for worker in workers):
                time.sleep(0.005)
            fake.fail("sendMessage", 429, retry_after=retry_after)
        for worker in workers:
            worker.wait()
        elapsed = time.monotonic() - began
        outputs = []
        for log in logs:
            log.seek(0)
            outputs.append(log.read())
            log.close()
        if any(worker.returncode for worker in workers):
            raise RuntimeError(f"a worker process failed: exit codes {[worker.returncode for worker in workers]}")
        sends = [Send(**json.loads(line)) for output in outputs for line in output.splitlines() if line.startswith("{")]
        limited = [send for send in sends if send.rate_limited]
        if inject_429_after is not None and limited:
            paused_at = min(send.ended for send in limited)
        got = Counter((chat, message["text"]) for chat, sent in fake.messages.items() for message in sent)
        times = sorted(fake.accepted_at)
        refused = fake.refused
    span = (times[-1] - times[0]) - (retry_after if paused_at is not None else 0.0) if len(times) > 1 else 0.0
    return Result(messages, len(times), elapsed, (len(times) - 1) / span if span > 0 else 0.0, busiest_second(times),
                  sum(count - 1 for count in got.values()), sum(1 for key in expected if key not in got), refused,
                  sends, times, paused_at, retry_after)


def fresh_schema(base_url: str) -> tuple[str, Callable[[], None]]:
    """A new schema in a PostgreSQL database, and the function that drops it."""
    schema = f"bench_{secrets.token_hex(5)}"
    admin = make_engine(base_url)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))

    def drop() -> None:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()

    url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False), drop


def main() -> None:
    """Queue, deliver, count, print."""
    if sys.argv[1:2] == ["--work"]:
        database_url, api_url, token, timeout = sys.argv[2:6]
        asyncio.run(work(database_url, api_url, token, float(timeout)))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--students", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--database-url", help="PostgreSQL (needed for several processes); a temporary SQLite file "
                                               "by default")
    parser.add_argument("--inject-429-after", type=int, help="answer the K-th message with a 429")
    parser.add_argument("--retry-after", type=float, default=2.0)
    args = parser.parse_args()
    if args.processes > 1 and not (args.database_url or "").startswith("postgresql"):
        parser.error("several processes share the sending budget through PostgreSQL: give --database-url")
    with tempfile.TemporaryDirectory() as scratch:
        drop = None
        if args.database_url:
            url, drop = fresh_schema(args.database_url)
        else:
            url = f"sqlite:///{Path(scratch) / 'bench.db'}"
        try:
            result = run(url, args.messages, args.students, args.processes, args.inject_429_after, args.retry_after)
        finally:
            if drop:
                drop()
    during, arrived = len(result.sent_during_pause()), len(result.arrived_during_pause())
    print(f"{result.accepted} of {result.messages} messages to {args.students} students by {args.processes} "
          f"processes in {result.seconds:.1f} s: {result.rate:.2f}/s against limits of {PER_BOT:.0f}/s per bot and "
          f"{PER_CHAT:.0f}/s per chat; at most {result.busiest_second} in any sliding one-second window; a send "
          f"took {result.send_seconds(0.5) * 1000:.0f} ms (median), {result.send_seconds(0.95) * 1000:.0f} ms (95th "
          f"percentile)")
    print(f"duplicates {result.duplicates}, losses {result.losses}, answered 429 by the fake {result.refused}"
          + (f"; injected 429 at message {args.inject_429_after}: {during} sends begun by any process and "
             f"{arrived} arrivals during its {args.retry_after:.0f} s retry-after" if args.inject_429_after else ""))
    print(f"messages={args.messages} students={args.students} processes={args.processes} seconds={result.seconds:.1f} "
          f"rate={result.rate:.2f} fraction_of_limit={result.rate / PER_BOT:.3f} "
          f"busiest_second={result.busiest_second} send_ms_p50={result.send_seconds(0.5) * 1000:.0f} "
          f"send_ms_p95={result.send_seconds(0.95) * 1000:.0f} "
          f"duplicates={result.duplicates} losses={result.losses} refused_429={result.refused} "
          f"sent_during_pause={during} arrived_during_pause={arrived}")


if __name__ == "__main__":
    main()
