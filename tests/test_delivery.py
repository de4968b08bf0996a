"""The delivery worker: order, pace, retries, blocked chats, several workers, and the crash window."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from datetime import datetime, timedelta


from core.delivery.worker import (RESENT, Blocked, CannotTell, Delivery, Limits, Pace, RateLimited, Refused, Unavailable,
                           utc_now)
from core.domain.messages import Outbound, Rendered
from core.domain.store import Store
from core.features import REGISTRY
from tests.fakes import dead_worker

PLATFORM = "test"


class Recorder:
    """A Sender that keeps what it was given; `script` holds errors to raise on the next sends."""

    platform = PLATFORM

    def __init__(self, limits: Limits = Limits(per_chat=1000.0, per_bot=1000.0), can_tell: bool = False):
        self.limits = limits
        self.can_tell = can_tell
        self.sent: list[tuple[str, str, int, float]] = []  # chat, text, outbox id, when
        self.script: deque = deque()

    async def send(self, chat_id: str, message: Rendered, outbox_id: int) -> str:
        """Raise the next scripted error, or keep the message."""
        if self.script:
            step = self.script.popleft()
            if isinstance(step, Exception):
                raise step
            await step()  # a coroutine: e.g. hang, as a process would while it is killed
        self.sent.append((chat_id, message.text, outbox_id, time.monotonic()))
        return f"m{len(self.sent)}"

    async def find_sent(self, chat_id: str, outbox_id: int, since: datetime) -> str | None:
        """Like Slack when `can_tell`, like Telegram otherwise."""
        if not self.can_tell:
            raise CannotTell()
        return next((f"m{n}" for n, sent in enumerate(self.sent, 1) if sent[2] == outbox_id), None)

    def ids(self) -> list[int]:
        return [outbox_id for _, _, outbox_id, _ in self.sent]


def queue(engine, chats: list[str], priority: int = 1, platform: str = PLATFORM) -> list[int]:
    """One outbox row per chat in `chats`, each with its own text."""
    with Store(engine).transaction() as tx:
        return [tx.enqueue(None, platform, chat, "en", Outbound("commands/unknown", {"command": f"x{n}"}),
                           utc_now(), priority) for n, chat in enumerate(chats)]


def rows(engine) -> dict[int, tuple]:
    with Store(engine).transaction() as tx:
        return {row[0]: row[1:] for row in tx.all(
            "SELECT id, status, attempts, error, external_id, claimed_by FROM outbox ORDER BY id")}


def worker(engine, sender: Recorder, **options) -> Delivery:
    return Delivery(Store(engine), REGISTRY.catalog, [sender], **options)


def drain(delivery: Delivery, timeout: float = 20.0) -> None:
    asyncio.run(delivery.drain(timeout))


def test_every_row_is_sent_once_and_recorded(engine):
    ids = queue(engine, ["a", "b", "c"])
    sender = Recorder()
    drain(worker(engine, sender))
    assert sorted(sender.ids()) == ids
    assert all(status == "sent" and attempts == 1 and external for status, attempts, _, external, _ in
               rows(engine).values())


def test_replies_go_before_nudges_and_a_chat_gets_its_messages_in_order(engine):
    nudges = queue(engine, ["a", "b", "c", "d"], priority=1)
    later = queue(engine, ["a"], priority=1)
    reply = queue(engine, ["e"], priority=0)
    sender = Recorder()
    drain(worker(engine, sender, in_flight=1))
    assert sender.ids()[0] == reply[0]
    assert sender.ids().index(nudges[0]) < sender.ids().index(later[0])


def test_one_chat_is_paced_to_its_limit(engine):
    queue(engine, ["a", "a", "a"])
    sender = Recorder(Limits(per_chat=5.0, per_bot=1000.0))
    drain(worker(engine, sender))
    times = [at for _, _, _, at in sender.sent]
    assert [b - a for a, b in zip(times, times[1:])] > [0.19, 0.19] and len(times) == 3


def test_the_bot_is_paced_to_its_limit(engine):
    queue(engine, [f"chat{n}" for n in range(11)])
    sender = Recorder(Limits(per_chat=1000.0, per_bot=20.0))
    drain(worker(engine, sender))
    times = [at for _, _, _, at in sender.sent]
    assert len(times) == 11 and times[-1] - times[0] >= 0.45


def test_a_reply_takes_the_next_slot_ahead_of_nudges_already_waiting():
    async def scenario() -> list[str]:
        pace = Pace(Limits(per_chat=1000.0, per_bot=10.0))
        order: list[str] = []

        async def wait(chat: str, priority: int) -> None:
            await pace.turn(chat, priority)
            order.append(chat)

        waiting = [asyncio.create_task(wait(f"nudge{n}", 1)) for n in range(3)]
        await asyncio.sleep(0.02)  # the first nudge has its slot; the others wait 0.1 s each
        waiting.append(asyncio.create_task(wait("reply", 0)))
        await asyncio.gather(*waiting)
        return order

    assert asyncio.run(scenario()) == ["nudge0", "reply", "nudge1", "nudge2"]


def test_a_429_is_waited_out_and_the_message_arrives_once(engine):
    [row] = queue(engine, ["a"])
    other = queue(engine, ["b"])
    sender = Recorder()
    sender.script.append(RateLimited(0.5))
    started = time.monotonic()
    drain(worker(engine, sender, in_flight=1))
    assert sender.ids().count(row) == 1 and sender.ids().count(other[0]) == 1
    assert sender.sent[0][3] - started >= 0.5  # nothing at all went out on the platform during the wait
    status, attempts, error, _, _ = rows(engine)[row]
    assert (status, attempts) == ("sent", 1) and "rate" in error


def test_server_errors_are_retried_with_backoff_then_given_up(engine):
    [row] = queue(engine, ["a"])
    sender = Recorder()
    sender.script.extend([Unavailable("502 Bad Gateway"), Unavailable("timed out")])
    drain(worker(engine, sender, max_backoff=0.2))
    assert sender.ids() == [row] and rows(engine)[row][:2] == ("sent", 3)

    [doomed] = queue(engine, ["b"])
    sender.script.extend([Unavailable("500")] * 3)
    drain(worker(engine, sender, max_backoff=0.1, max_attempts=3))
    assert rows(engine)[doomed][:3] == ("failed", 3, "Unavailable: 500")
    assert doomed not in sender.ids()


def test_a_refused_message_fails_at_once(engine):
    [row] = queue(engine, ["a"])
    sender = Recorder()
    sender.script.append(Refused("Bad Request: message is too long"))
    drain(worker(engine, sender))
    assert rows(engine)[row][:3] == ("failed", 1, "Bad Request: message is too long") and sender.sent == []


def test_a_blocked_bot_marks_the_chat_unreachable_and_stops_sending_to_it(engine, now):
    with Store(engine).transaction() as tx:
        tx.add_identity(PLATFORM, "blocker", "a", now)
        tx.add_identity(PLATFORM, "friend", "b", now)
    first, second = queue(engine, ["a", "a"])
    [friend] = queue(engine, ["b"])
    sender = Recorder()
    sender.script.append(Blocked("Forbidden: bot was blocked by the user"))
    drain(worker(engine, sender, in_flight=1))
    assert sender.ids() == [friend]
    assert [rows(engine)[row][0] for row in (first, second)] == ["failed", "failed"]
    with Store(engine).transaction() as tx:
        assert dict(tx.all("SELECT chat_id, unreachable FROM chatidentity ORDER BY chat_id")) == {"a": True, "b": False}
    queue(engine, ["a"])  # the student unblocked the bot and wrote again: the reply goes, the flag clears
    drain(worker(engine, sender))
    with Store(engine).transaction() as tx:
        assert not tx.one("SELECT unreachable FROM chatidentity WHERE chat_id = 'a'")[0]


def crash_while_sending(engine, sender: Recorder, name: str) -> int:
    """Start delivering one row and kill the worker while the platform holds the message."""
    [row] = queue(engine, ["a"])
    arrived = asyncio.Event()

    async def deliver_then_die() -> None:
        sender.sent.append(("a", "", row, time.monotonic()))  # the platform has the message…
        arrived.set()
        await asyncio.Event().wait()  # …and the process dies before recording it

    async def scenario() -> None:
        sender.script.append(deliver_then_die)
        task = asyncio.create_task(worker(engine, sender, worker=name).drain())
        await arrived.wait()
        task.cancel()

    asyncio.run(scenario())
    assert rows(engine)[row][0] == "sending"
    return row


def test_crash_window_on_a_platform_that_cannot_tell_resends_once(engine):
    """Telegram's policy: a row in flight at the crash is sent again: at most one duplicate, never a loss."""
    sender = Recorder(can_tell=False)
    row = crash_while_sending(engine, sender, dead_worker())
    successor = worker(engine, sender)
    asyncio.run(successor.recover())
    drain(successor)
    assert sender.ids() == [row, row]
    status, _, error, _, _ = rows(engine)[row]
    assert status == "sent" and error == RESENT


def test_crash_window_on_a_platform_that_can_tell_sends_nothing_twice(engine):
    """Slack's policy: the platform is asked; what arrived is recorded, not re-sent."""
    sender = Recorder(can_tell=True)
    row = crash_while_sending(engine, sender, dead_worker())
    successor = worker(engine, sender)
    asyncio.run(successor.recover())
    drain(successor)
    assert sender.ids() == [row] and rows(engine)[row][0] == "sent"


def test_a_claim_by_a_live_worker_elsewhere_is_left_alone_until_it_times_out(engine):
    sender = Recorder(can_tell=False)
    row = crash_while_sending(engine, sender, "other-host:1")
    patient = worker(engine, sender)
    asyncio.run(patient.recover())
    assert rows(engine)[row][0] == "sending"  # it may still be sending: wait
    later = worker(engine, sender, clock=lambda: utc_now() + timedelta(minutes=3))
    asyncio.run(later.recover())
    drain(later)
    assert rows(engine)[row][0] == "sent" and sender.ids() == [row, row]


def test_two_workers_share_the_queue_and_send_each_row_once(engine):
    ids = queue(engine, [f"chat{n % 40}" for n in range(200)])
    sender = Recorder()

    async def both() -> None:
        await asyncio.gather(worker(engine, sender, worker="w1", in_flight=8).drain(),
                             worker(engine, sender, worker="w2", in_flight=8).drain())

    asyncio.run(both())
    assert sorted(sender.ids()) == ids
    per_chat: dict[str, list[int]] = {}
    for chat, _, row, _ in sender.sent:
        per_chat.setdefault(chat, []).append(row)
    assert all(sent == sorted(sent) for sent in per_chat.values())  # never out of order, even across workers


def test_a_worker_stops_cleanly_finishing_what_it_started(engine):
    queue(engine, [f"chat{n}" for n in range(30)])
    sender = Recorder(Limits(per_chat=1000.0, per_bot=40.0))

    async def scenario() -> None:
        stopping = asyncio.Event()
        task = asyncio.create_task(worker(engine, sender).run(stopping))
        await asyncio.sleep(0.3)
        stopping.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    statuses = [status for status, *_ in rows(engine).values()]
    assert "sending" not in statuses and 0 < statuses.count("sent") < 30
    assert statuses.count("sent") == len(sender.sent)


def test_the_core_never_imports_a_chat_library():
    from pathlib import Path

    import core

    for module in Path(core.__file__).parent.rglob("*.py"):
        source = module.read_text("utf-8")
        for library in ("telegram", "slack_bolt", "slack_sdk", "aiohttp"):
            assert f"import {library}" not in source and f"from {library}" not in source, module
