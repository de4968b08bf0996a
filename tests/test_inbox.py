"""Nothing lost between the platform and the database: the inbox, event ids per bot, a locked SQLite."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
import urllib.request
from datetime import timedelta

import aiohttp
import pytest
from sqlalchemy import text

from bot.serve import Service, retry_when_locked
from core.delivery.inbox import InboxWorker
from core.domain.messages import Attachment, FileRef, FormData, Inbound
from core.domain.store import Store, inbound_from_json, inbound_json
from core.engine.pipeline import Engine
from core.features import REGISTRY
from tests.fakes import (FakeSlack, FakeTelegram, dead_worker, free_port, outbox_statuses, serving, settled,
                         start_serve, until, wait_for)
from tests.helpers import enrol
from tests.test_slack import DM, SIGNING_SECRET, USER, Workspace, slack_settings
from tests.test_telegram import STUDENT, telegram_settings

OTHER_TOKEN = "987654321:AAAnotherBotTokenForLoopbackTests_9"


def rows(engine, statement: str, **params) -> list[tuple]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(statement), params)]


def handled_in_order(engine, platform: str) -> list[str]:
    """The event ids the engine recorded, in the order it handled them."""
    return [event_id for (event_id,) in rows(
        engine, "SELECT event_id FROM inboundevent WHERE platform = :platform ORDER BY received_at, event_id",
        platform=platform)]


class Waiting:
    """A channel whose events with extra {"wait": True} wait until `go` is set; it notes what it prepared."""

    platform = "console"

    def __init__(self):
        self.go = asyncio.Event()
        self.prepared: list[str] = []

    async def prepare(self, inbound: Inbound, extra: dict) -> Inbound:
        if extra.get("wait"):
            await self.go.wait()
        self.prepared.append(inbound.event_id)
        return inbound


def say(sender: str, event_id: str, words: str = "hi") -> Inbound:
    return Inbound("console", event_id, sender, sender, text=words)


# -- the inbox worker ---------------------------------------------------------------------------------


def test_an_event_round_trips_through_the_inbox_whole():
    inbound = Inbound("slack", "Ev1", "U1", "D1", text="my poster", payload=None, email="a@school.test",
                      attachment=Attachment("photo", "https://x.test/F1", "my poster",
                                            FileRef("slack/F1", "poster.jpg", "image/jpeg", 3)),
                      form=FormData("profile", {"strengths": "drawing", "aim": None}))
    assert inbound_from_json(inbound_json(inbound)) == inbound
    assert inbound_from_json(inbound_json(say("ana", "1"))) == say("ana", "1")


def test_each_senders_events_are_handled_in_order_and_a_slow_one_holds_up_only_its_sender(engine):
    channel = Waiting()
    worker = InboxWorker(Engine(Store(engine), REGISTRY), {"console": channel})
    worker.put(say("slow", "slow-1"), "", {"wait": True})
    worker.put(say("slow", "slow-2"), "", None)
    worker.put(say("fast", "fast-1"), "", None)

    async def scenario() -> None:
        stopping = asyncio.Event()
        running = asyncio.create_task(worker.run(stopping))
        await until(lambda: handled_in_order(engine, "console") == ["fast-1"])
        await asyncio.sleep(0.3)
        assert handled_in_order(engine, "console") == ["fast-1"]  # slow-2 waits for slow-1
        channel.go.set()
        await until(lambda: len(handled_in_order(engine, "console")) == 3)
        stopping.set()
        await running

    asyncio.run(scenario())
    assert handled_in_order(engine, "console") == ["fast-1", "slow-1", "slow-2"]
    assert rows(engine, "SELECT COUNT(*) FROM inbox") == [(0,)]  # handled rows, and the words in them, are gone


def test_a_failing_event_is_tried_again_then_left_failed_and_the_next_one_goes_on(engine, monkeypatch):
    conversation = Engine(Store(engine), REGISTRY)
    handle = Engine.handle

    def broken(self, inbound, *args, **kwargs):
        if inbound.event_id == "bad":
            raise RuntimeError("a bug that quotes the student: I feel sad")
        return handle(self, inbound, *args, **kwargs)

    monkeypatch.setattr(Engine, "handle", broken)
    worker = InboxWorker(conversation, {"console": Waiting()}, max_attempts=3, max_backoff=0.01)
    worker.put(say("ana", "bad", "I feel sad"), "")
    worker.put(say("ana", "next"), "")
    asyncio.run(worker.drain(10))
    assert rows(engine, "SELECT event_id, status, attempts, error FROM inbox") == [("bad", "failed", 3, "RuntimeError")]
    assert handled_in_order(engine, "console") == ["next"]


def test_a_claim_of_a_process_that_died_is_taken_over_at_once(engine, now):
    worker = InboxWorker(Engine(Store(engine), REGISTRY), {"console": Waiting()})
    worker.put(say("ana", "orphan"), "")
    with Store(engine).transaction() as tx:
        tx.execute("UPDATE inbox SET claimed_by = ?, claimed_at = ?", (dead_worker(), tx.ts(now)))

    async def scenario() -> None:
        stopping = asyncio.Event()
        running = asyncio.create_task(worker.run(stopping))
        await until(lambda: handled_in_order(engine, "console") == ["orphan"], timeout=5)
        stopping.set()
        await running

    asyncio.run(scenario())


def test_a_platforms_retry_of_an_event_not_handled_yet_is_stored_once(engine):
    worker = InboxWorker(Engine(Store(engine), REGISTRY), {"console": Waiting()})
    assert worker.put(say("ana", "Ev1"), "T1") and not worker.put(say("ana", "Ev1"), "T1")
    assert worker.put(say("ana", "Ev1"), "T2")  # another workspace's event with the same id
    assert rows(engine, "SELECT COUNT(*) FROM inbox") == [(2,)]


def test_two_workers_on_postgresql_share_the_inbox_each_sender_in_order(engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("several processes share the inbox on PostgreSQL (FOR UPDATE SKIP LOCKED)")
    channels = [Waiting(), Waiting()]
    workers = [InboxWorker(Engine(Store(engine), REGISTRY), {"console": channel}, worker=f"w{n}", in_flight=1)
               for n, channel in enumerate(channels)]  # one sender at a time each: the other's are left free
    for n in range(8):
        for sender in ("a", "b", "c"):
            workers[0].put(say(sender, f"{sender}-{n}"), "", {"n": n})

    async def scenario() -> None:
        await asyncio.gather(*(worker.drain(30) for worker in workers))

    asyncio.run(scenario())
    prepared = channels[0].prepared + channels[1].prepared
    assert sorted(prepared) == sorted(f"{s}-{n}" for s in "abc" for n in range(8))  # each once
    assert channels[0].prepared and channels[1].prepared  # both took a share
    order = handled_in_order(engine, "console")
    for sender in "abc":
        assert [event for event in order if event.startswith(sender)] == [f"{sender}-{n}" for n in range(8)]


# -- event ids per bot or workspace --------------------------------------------------------------------


def test_an_event_id_is_new_for_another_bot_and_a_repeat_for_the_same(engine):
    conversation = Engine(Store(engine), REGISTRY)
    first = conversation.handle(say("ana", "1000"), bot="111")
    assert first and conversation.handle(say("ana", "1000"), bot="222")  # another bot's update 1000
    assert conversation.handle(say("ana", "1000"), bot="111") == []  # a repeat changes nothing
    assert conversation.handle_many([say("ana", "1000"), say("ana", "1000")], ["111", "333"])  # only 333 is new
    assert sorted(rows(engine, "SELECT bot FROM inboundevent")) == [("111",), ("222",), ("333",)]


def test_a_telegram_update_id_seen_months_ago_from_another_bot_token_is_handled(engine, now):
    _, code = enrol(engine, now)
    with FakeTelegram() as old_bot:  # update ids start at 1000 on both
        update = old_bot.text_update(STUDENT, f"/start {code}")

        async def before() -> None:
            async with serving(Service(telegram_settings(old_bot), engine)):
                old_bot.push(update)
                await settled(engine, "telegram", str(update["update_id"]))

        asyncio.run(before())
    with Store(engine).transaction() as tx:  # months ago
        tx.execute("UPDATE inboundevent SET received_at = ?", (tx.ts(now - timedelta(days=120)),))
    with FakeTelegram(OTHER_TOKEN) as new_bot:
        again = new_bot.text_update(STUDENT, "hello")
        assert again["update_id"] == update["update_id"]

        async def after() -> None:
            async with serving(Service(telegram_settings(new_bot), engine)):
                new_bot.push(again)
                await until(lambda: new_bot.texts(STUDENT))

        asyncio.run(after())
        assert new_bot.texts(STUDENT)  # answered, not dropped as a repeat
    # The new bot's update is recorded under its own id (the old one's may be pruned by retention by now).
    recorded = set(rows(engine, "SELECT bot, event_id FROM inboundevent"))
    assert ("987654321", "1000") in recorded and recorded <= {("123456789", "1000"), ("987654321", "1000")}


# -- a polled update is stored before the poll that confirms it -----------------------------------------


def test_a_polled_update_that_cannot_be_stored_is_not_confirmed_until_it_is(engine, now, monkeypatch):
    _, code = enrol(engine, now)
    put = InboxWorker.put
    confirmed_when_stored: list[bool] = []
    outages = iter([RuntimeError("database is away"), RuntimeError("still away")])
    monkeypatch.setattr("bot.telegram.POLLING_BACKOFF", (0.2,))

    with FakeTelegram() as fake:
        def flaky(self, inbound, *args):
            for outage in outages:
                raise outage
            confirmed_when_stored.append(fake.confirmed(int(inbound.event_id)))
            return put(self, inbound, *args)

        monkeypatch.setattr(InboxWorker, "put", flaky)
        update = fake.text_update(STUDENT, f"/start {code}")

        async def scenario() -> None:
            async with serving(Service(telegram_settings(fake), engine)):
                fake.push(update)
                await settled(engine, "telegram", str(update["update_id"]))
                await until(lambda: fake.confirmed(update["update_id"]))

        asyncio.run(scenario())
        assert confirmed_when_stored == [False]  # Telegram still had it while the database was away
        assert "Welcome" in fake.texts(STUDENT)[0]


# -- `serve` killed between the platform and the database ----------------------------------------------


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def stop(process) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0


def test_serve_killed_right_after_acknowledging_slack_events_handles_each_once_in_order_after_restart(engine, now):
    student, _ = enrol(engine, now, given_name="Bea")
    with FakeSlack() as fake:
        fake.emails[USER] = rows(engine, "SELECT email FROM person WHERE id = :id", id=student)[0][0]
        variables = dict(SLACK_BOT_TOKEN=fake.token, SLACK_SIGNING_SECRET=SIGNING_SECRET,
                         SLACK_API_URL=fake.url + "/api")
        port = free_port()
        process = start_serve(engine, port, **variables)
        try:
            wait_for(lambda: healthy(port))
            fake.stall()  # users.info (and the rest of the Web API) hangs from now on

            async def three_messages() -> list[tuple[int, str, float]]:
                async with aiohttp.ClientSession() as session:
                    workspace = Workspace(port, session)
                    sent = []
                    for words in ("hi", "are you there?", "hello again"):
                        began = time.monotonic()
                        status, event_id = await workspace.dm(words)
                        sent.append((status, event_id, time.monotonic() - began))
                    return sent

            sent = asyncio.run(three_messages())
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            assert [status for status, _, _ in sent] == [200, 200, 200]
            assert max(took for _, _, took in sent) < 1.0  # acknowledged at once, users.info still hanging
            ids = [event_id for _, event_id, _ in sent]
            assert rows(engine, "SELECT event_id FROM inbox ORDER BY id") == [(event_id,) for event_id in ids]
            assert rows(engine, "SELECT COUNT(*) FROM inboundevent") == [(0,)]  # none handled before the kill
            fake.unstall()
            process = start_serve(engine, port, **variables)
            wait_for(lambda: len(handled_in_order(engine, "slack")) == 3 and set(outbox_statuses(engine)) == {"sent"})
            stop(process)
        finally:
            process.kill()
        assert handled_in_order(engine, "slack") == ids
        assert rows(engine, "SELECT COUNT(*) FROM inbox") == [(0,)]
        texts = fake.texts(DM)
        assert texts[0].startswith("Welcome, Bea!")  # linked by the e-mail users.info gave after the restart
        assert sum(said.startswith("Welcome") for said in texts) == 1
        assert len(fake.called("chat.postMessage")) == sum(outbox_statuses(engine).values())  # each reply once


def test_serve_killed_right_after_a_telegram_poll_handles_each_update_once_in_order_after_restart(engine, now):
    _, code = enrol(engine, now, given_name="Bea")
    with FakeTelegram() as fake:
        updates = [fake.text_update(STUDENT, None, caption=f"/start {code}", photo=fake.photo(b"poster")),
                   fake.text_update(STUDENT, "hello"), fake.text_update(STUDENT, "hello again")]
        for update in updates:
            fake.push(update)
        fake.stall("getFile")  # the photo's download hangs: the first update, and the two behind it, wait
        variables = dict(TELEGRAM_BOT_TOKEN=fake.token, TELEGRAM_API_URL=fake.url)
        port = free_port()
        process = start_serve(engine, port, **variables)
        try:
            wait_for(lambda: fake.confirmed(updates[-1]["update_id"]))  # the poll after them confirmed them
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            ids = [str(update["update_id"]) for update in updates]
            assert rows(engine, "SELECT event_id FROM inbox ORDER BY id") == [(event_id,) for event_id in ids]
            assert rows(engine, "SELECT COUNT(*) FROM inboundevent") == [(0,)]
            assert fake.updates == []  # Telegram forgot them: only the inbox has them now
            fake.unstall()
            process = start_serve(engine, port, **variables)
            wait_for(lambda: len(handled_in_order(engine, "telegram")) == 3
                     and set(outbox_statuses(engine)) == {"sent"})
            stop(process)
        finally:
            process.kill()
    assert handled_in_order(engine, "telegram") == ids
    assert rows(engine, "SELECT COUNT(*) FROM inbox") == [(0,)]
    texts = fake.texts(STUDENT)
    assert texts[0].startswith("Welcome, Bea!") and not any("invite code" in said for said in texts)
    assert len(fake.called("sendMessage")) == len(texts) == sum(outbox_statuses(engine).values())
    assert [call["file_path"] for call in fake.called("download")] == ["photos/file_0.jpg"]  # after the restart


# -- a locked SQLite database ----------------------------------------------------------------------------


def test_a_job_that_meets_a_locked_database_tries_again_within_the_minute():
    waits: list[float] = []
    outcomes = iter([sqlite3.OperationalError("database is locked"), sqlite3.OperationalError("database is locked")])

    def job() -> int:
        for outcome in outcomes:
            raise outcome
        return 7

    assert retry_when_locked(job, sleep=waits.append)() == 7
    assert len(waits) == 2 and sum(waits) < 10

    def broken() -> None:
        raise sqlite3.OperationalError("no such table: nudge")

    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        retry_when_locked(broken, sleep=waits.append)()
    assert len(waits) == 2  # another error is not retried

    def always_locked() -> None:
        raise sqlite3.OperationalError("database is locked")

    slept: list[float] = []

    def nap(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(0.05)

    with pytest.raises(sqlite3.OperationalError, match="locked"):  # a lock that lasts: given up, as before
        retry_when_locked(always_locked, give_up_after=0.3, sleep=nap)()
    assert slept and all(seconds <= 16 for seconds in slept)


def test_serve_plans_again_within_seconds_when_the_planning_met_a_locked_database(engine, monkeypatch):
    calls: list[float] = []

    def planning(*args) -> int:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise sqlite3.OperationalError("database is locked")
        return 0

    monkeypatch.setattr("core.schedule.policy.plan_coming_weeks", planning)
    with FakeSlack() as fake:
        async def scenario() -> None:
            async with serving(Service(slack_settings(fake), engine)):
                await until(lambda: len(calls) >= 2, timeout=20)

        asyncio.run(scenario())
    assert calls[1] - calls[0] < 5  # not the next hourly run
