"""Several `serve` processes on PostgreSQL: one platform budget shared by all, each student's messages in order."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.delivery import PER_BOT, busiest_second, run
from core.delivery.budget import NOW, Hold, SharedBudget
from core.delivery.worker import Delivery, Limits, Pace, utc_now
from core.domain.db import make_engine
from core.domain.messages import Outbound
from core.domain.store import Store
from core.features import REGISTRY
from tests.fakes import FakeTelegram, free_port, start_serve, wait_for
from tests.test_delivery import Recorder
from tests.test_inbox import handled_in_order, healthy, rows, stop

SECRET = "scale-out-secret"


def postgres_only(engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("several processes share the platform's budget through PostgreSQL; SQLite has one process")


def test_the_budget_is_shared_on_postgresql_and_in_memory_on_sqlite(engine):
    lane = Delivery(Store(engine), REGISTRY.catalog, [Recorder(Limits(per_chat=1.0, per_bot=30.0))]).lanes["test"]
    assert (lane.pace.shared is not None) == (engine.dialect.name == "postgresql")


def test_the_budget_counts_each_send_until_a_second_after_it_ended_and_holds_everything_in_a_pause(engine):
    postgres_only(engine)
    store = Store(engine)
    budget = SharedBudget(store, "telegram", "42", per_second=3, chat_gap=1.0)
    with store.transaction() as tx:
        assert [budget.take(tx, chat) for chat in ("a", "b")] == [None, None]
        in_flight = budget.take(tx, "a")  # a's send has not ended: a waits, the bot does not
        budget.finish(tx, "a")
        too_soon = budget.take(tx, "a")  # a second from the end of its send
        assert budget.take(tx, "c") is None  # three counted: a ended just now, b and c in flight
        time.sleep(0.3)
        full = budget.take(tx, "d")  # the fourth waits for a's end to be a second old
        cooling = budget.cooling(tx, ["a", "b", "q"])
    assert in_flight == Hold(in_flight.seconds, whole_bot=False) and in_flight.seconds > 60
    assert too_soon == Hold(too_soon.seconds, whole_bot=False) and 0.9 < too_soon.seconds <= 1.0
    assert full == Hold(full.seconds, whole_bot=True) and 0.6 < full.seconds <= 0.7
    assert set(cooling) == {"a", "b"}
    other = SharedBudget(store, "telegram", "43", per_second=3, chat_gap=1.0)
    other.pause(5)  # a 429 for bot 43: every process waits it out, bot 42 goes on
    with store.transaction() as tx:
        paused = other.take(tx, "z")
        assert not budget.take(tx, "z").paused  # 42 is full, not paused
    assert paused == Hold(paused.seconds, whole_bot=True, paused=True) and 4.5 < paused.seconds <= 5
    assert 4.5 < other.reserve(0.01) <= 5.1  # no slot is handed out before the pause ends


def test_slots_are_spaced_for_the_slow_sends_to_leave_the_window_in_time(engine):
    pace = Pace(Limits(per_chat=1.0, per_bot=30.0))
    for _ in range(300):  # nine sends of 10 ms, then one of 50 ms
        for seconds in [0.01] * 9 + [0.05]:
            pace.measure(seconds)
    assert 0.02 < pace.send_seconds < 0.04  # above the usual send, below the slowest
    budget = SharedBudget(Store(engine), "telegram", "42", per_second=30, chat_gap=1.0)
    assert budget.slot_interval(pace.send_seconds) == pytest.approx((1.0 + pace.send_seconds) / 30)


def test_three_processes_stay_within_telegrams_limit_together_and_a_429_pauses_them_all(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("several processes share the platform's budget through PostgreSQL")
    result = run(database_url, messages=240, students=240, processes=3, inject_429_after=80, retry_after=2.0,
                 timeout=120)
    assert (result.accepted, result.duplicates, result.losses) == (240, 0, 0)
    assert result.refused == 0  # the fake's token bucket (Telegram's 30/s and 1/s per chat) never said 429
    workers = defaultdict(list)
    for send in result.sends:
        workers[send.worker].append(send)
    assert len(workers) == 3 and all(len(sends) > 20 for sends in workers.values())
    assert sum(send.rate_limited for send in result.sends) == 1  # one process met the 429

    # Every send was recorded as ended: no chat's row is left counting a message in flight.
    engine = make_engine(database_url)
    try:
        with Store(engine).transaction() as tx:
            in_flight = tx.one(f"SELECT COUNT(*) FROM sendpace WHERE chat_id <> '' AND next_send > {NOW} + 1")[0]
            chats = tx.one("SELECT COUNT(*) FROM sendpace WHERE chat_id <> ''")[0]
    finally:
        engine.dispose()
    assert (chats, in_flight) == (240, 0)

    # On the fake's arrival clock, whatever the jitter of a busy machine: never more than 30 within a
    # second, and nothing arrives while the 429's retry-after runs but what was on the wire when it came.
    assert result.busiest_second <= PER_BOT
    assert not result.arrived_during_pause(margin=0.3) and not result.sent_during_pause(margin=0.3)
    assert result.rate >= 0.8 * PER_BOT


def test_three_workers_keep_each_chat_to_one_message_a_second_whichever_sends_it(engine):
    postgres_only(engine)
    chats = [chat for chat in "abcd" for _ in range(3)]  # each chat's three in a row
    with Store(engine).transaction() as tx:
        for n, chat in enumerate(chats):
            tx.enqueue(None, "test", chat, "en", Outbound("commands/unknown", {"command": f"x{n}"}), utc_now(), 1)
    senders = [Recorder(Limits(per_chat=1.0, per_bot=30.0)) for _ in range(3)]
    workers = [Delivery(Store(engine), REGISTRY.catalog, [sender], worker=f"w{n}", in_flight=1)
               for n, sender in enumerate(senders)]  # one row in hand each: the others take the rest

    async def together() -> None:
        await asyncio.gather(*(worker.drain(60) for worker in workers))

    asyncio.run(together())
    sent = sorted((at, chat, n) for n, sender in enumerate(senders) for chat, _, _, at in sender.sent)
    assert sorted(chat for _, chat, _ in sent) == sorted(chats)  # each once
    by_chat = defaultdict(list)
    for at, chat, n in sent:
        by_chat[chat].append((at, n))
    assert any(len({n for _, n in times}) > 1 for times in by_chat.values())  # a chat served by several workers
    gaps = [later[0] - earlier[0] for times in by_chat.values() for earlier, later in zip(times, times[1:])]
    assert len(gaps) == 8 and min(gaps) >= 1.0


def test_busiest_second_counts_a_sliding_window():
    assert busiest_second([0.0, 0.5, 0.99, 1.0, 1.2]) == 4  # 0.5 … 1.2 lie within one second
    assert busiest_second([0.0, 0.999, 1.0]) == 2  # a second later is the next window


@given(st.lists(st.floats(min_value=0, max_value=20, allow_nan=False), max_size=60))
def test_busiest_second_is_the_most_arrivals_in_any_window_opening_at_one(times):
    # A busiest window can always be slid right until it opens at an arrival.
    expected = max((sum(1 for other in times if at <= other < at + 1.0) for at in times), default=0)
    assert busiest_second(times) == expected
    assert busiest_second([0.0, 1.0, 2.0]) == 1
    assert busiest_second([]) == 0


# -- two serve processes, one student's burst ----------------------------------------------------------


async def post_update(session: aiohttp.ClientSession, port: int, update: dict) -> int:
    async with session.post(f"http://127.0.0.1:{port}/telegram/webhook", json=update,
                            headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}) as response:
        return response.status


def test_two_serve_processes_take_one_students_burst_each_once_in_order(engine, now):
    postgres_only(engine)
    from tests.helpers import enrol

    _, code = enrol(engine, now, given_name="Lia")
    burst = ["hi", "/goals", "read two chapters", "1", "2", "3", "/cancel", "/help", "thanks", "bye"]
    with FakeTelegram() as fake:
        variables = dict(TELEGRAM_BOT_TOKEN=fake.token, TELEGRAM_API_URL=fake.url, TELEGRAM_WEBHOOK_SECRET=SECRET,
                         TELEGRAM_WEBHOOK_URL="http://127.0.0.1/telegram/webhook")
        ports = [free_port(), free_port()]
        processes = [start_serve(engine, port, **variables) for port in ports]
        try:
            for port in ports:
                wait_for(lambda: healthy(port), timeout=120)
            updates = [fake.text_update(4343, code)] + [fake.text_update(4343, words) for words in burst]

            async def deliver_alternately() -> list[int]:
                async with aiohttp.ClientSession() as session:
                    return [await post_update(session, ports[n % 2], update) for n, update in enumerate(updates)]

            assert asyncio.run(deliver_alternately()) == [200] * len(updates)
            wait_for(lambda: len(handled_in_order(engine, "telegram")) == len(updates)
                     and rows(engine, "SELECT COUNT(*) FROM inbox") == [(0,)], timeout=120)
            for process in processes:
                stop(process)
        finally:
            for process in processes:
                process.kill()
    ids = [str(update["update_id"]) for update in updates]
    assert handled_in_order(engine, "telegram") == ids  # each once, in the order they arrived
    assert fake.texts(4343)[0].startswith("Welcome")  # the code linked her first, then the rest followed on

