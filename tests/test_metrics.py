"""What an operator sees: /metrics in the Prometheus text format, /healthz that never hangs, JSON log lines."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sqlite3
import time
from datetime import timedelta

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot import logs
from bot.serve import HEALTH_DEADLINE, Service
from core.delivery.worker import utc_now
from core.domain.messages import Outbound
from core.domain.store import Store
from tests.fakes import FakeTelegram, serving, settled, until
from tests.test_telegram import telegram_settings


def queue(engine, chats: int) -> None:
    with Store(engine).transaction() as tx:
        for n in range(chats):
            tx.enqueue(None, "telegram", str(5000 + n), "en", Outbound("commands/unknown", {"command": f"m{n}"}),
                       utc_now(), priority=1)


async def get(port: int, path: str) -> tuple[int, str, float]:
    """Status, body and seconds taken of a GET."""
    began = time.monotonic()
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}{path}", timeout=aiohttp.ClientTimeout(total=10)) as response:
            return response.status, await response.text(), time.monotonic() - began


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample of a scrape: (name, sorted labels) → value; the text must parse as Prometheus'."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_metrics_scraped_during_a_delivery_run_show_the_queue_the_sends_the_429s_and_the_retries(engine, now):
    with FakeTelegram() as fake:
        fake.delay = 0.05  # sends stay in flight a moment: the scrape sees a queue
        queue(engine, 40)
        fake.fail("sendMessage", 429, retry_after=1)
        fake.fail("sendMessage", 500)  # a retry

        async def scenario() -> tuple[dict, dict]:
            async with serving(Service(telegram_settings(fake), engine)) as service:
                await until(lambda: len(fake.accepted_at) >= 3)
                _, during, _ = await get(service.port, "/metrics")
                update = fake.text_update(7777, "hello")  # an account not linked yet: stored, handled, answered
                fake.push(update)
                await settled(engine, "telegram", str(update["update_id"]), timeout=60)
                status, after, _ = await get(service.port, "/metrics")
                assert status == 200
                return samples(during), samples(after)

        during, after = asyncio.run(scenario())
    telegram = (("platform", "telegram"),)
    assert during[("companion_outbox_depth", telegram)] > 0
    assert during[("companion_outbox_oldest_seconds", telegram)] >= 0
    assert during[("companion_database_up", ())] == 1
    assert after[("companion_messages_sent_total", telegram)] == len(fake.accepted_at) >= 41  # 40 and the reply
    assert after[("companion_rate_limited_total", telegram)] == 1
    assert after[("companion_send_retries_total", telegram)] == 1
    assert after[("companion_inbound_events_total", telegram)] == 1
    assert after[("companion_inbound_handled_total", telegram)] == 1
    assert ("companion_outbox_depth", telegram) not in after  # nothing waits any more
    assert after[("companion_alerts_open", ())] == 0
    assert after[("companion_nudge_sweep_lag_seconds", ())] == 0


def test_the_sweep_lag_and_open_alerts_come_from_the_database(engine, now):
    from tests.helpers import enrol

    student, _ = enrol(engine, now)
    with Store(engine).transaction() as tx:
        tx.execute("INSERT INTO safetyalert (person_id, category, text, created_at, escalations) VALUES (?, ?, ?, ?, 0)",
                   (student, "self_harm", "…", tx.ts(now)))
        tx.execute("INSERT INTO nudge (person_id, kind, occasion, due_at, expires_at, status, created_at) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (student, "goals", tx.day(now.date()), tx.ts(now - timedelta(minutes=5)),
                    tx.ts(now + timedelta(hours=6)), "planned", tx.ts(now)))
    from core.delivery.metrics import Metrics

    metrics = Metrics()
    metrics.read_database(Store(engine), now)
    figures = samples(metrics.text().decode())
    assert figures[("companion_alerts_open", ())] == 1
    assert figures[("companion_nudge_sweep_lag_seconds", ())] == 300


def hold_write_lock(path: str) -> sqlite3.Connection:
    """A connection holding the SQLite file's write lock (as a long import or a stuck process would)."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def release(holder: sqlite3.Connection) -> None:
    holder.execute("ROLLBACK")
    holder.close()


def test_healthz_answers_within_a_second_while_the_database_is_locked_and_says_what_is_wrong(engine, now):
    if engine.dialect.name != "sqlite":
        pytest.skip("a held SQLite lock is the case that hung")
    path = engine.url.database
    with FakeTelegram() as fake:

        async def scenario() -> list[tuple[int, str, float]]:
            async with serving(Service(telegram_settings(fake), engine)) as service:
                answers = [await get(service.port, "/healthz")]
                holder = await asyncio.to_thread(hold_write_lock, path)
                try:
                    answers.append(await get(service.port, "/healthz"))
                    answers.append(await get(service.port, "/healthz"))  # the first probe is still stuck
                    answers.append(await get(service.port, "/metrics"))
                finally:
                    await asyncio.to_thread(release, holder)
                for _ in range(100):  # the stuck probe finishes once the lock is gone
                    answer = await get(service.port, "/healthz")
                    if answer[0] == 200:
                        break
                    await asyncio.sleep(0.2)
                answers.append(answer)
                return answers

        healthy, locked, still, metrics, again = asyncio.run(scenario())
    assert healthy[0] == 200 and json.loads(healthy[1]) == {"status": "ok"}
    for status, body, took in (locked, still):
        assert status == 503 and took < 1.0
        problems = json.loads(body)["problems"]
        assert len(problems) == 1 and "database" in problems[0] and "busy or locked" in problems[0]
    assert "within" in json.loads(locked[1])["problems"][0]
    assert "has not answered for" in json.loads(still[1])["problems"][0]
    assert metrics[0] == 200 and metrics[2] < 1.0  # the figures only read: WAL lets them past a write lock
    assert samples(metrics[1])[("companion_database_up", ())] == 1
    assert again[0] == 200
    assert HEALTH_DEADLINE < 1.0


def test_a_log_line_is_one_json_object_with_the_ids_of_the_event_and_never_the_words(engine):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonLines())
    logger = logging.getLogger("core.delivery.worker")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("outbox row sent", extra={"event": "outbox.sent", "platform": "telegram", "outbox_id": 7,
                                              "person_id": 12})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("sending outbox row %s failed", 8)
    finally:
        logger.removeHandler(handler)
    first, second = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    assert {key: first[key] for key in ("level", "logger", "message", "event", "platform", "outbox_id", "person_id")} \
        == {"level": "INFO", "logger": "core.delivery.worker", "message": "outbox row sent", "event": "outbox.sent",
            "platform": "telegram", "outbox_id": 7, "person_id": 12}
    assert first["time"].endswith("+00:00")
    assert second["level"] == "ERROR" and "ValueError: boom" in second["traceback"]


def test_serve_logs_each_handled_event_and_each_send_as_json_with_the_persons_id_only(engine, now, caplog):
    from tests.helpers import enrol

    student, code = enrol(engine, now, given_name="Noa")
    caplog.set_level(logging.INFO)
    with FakeTelegram() as fake:

        async def scenario() -> None:
            async with serving(Service(telegram_settings(fake), engine)):
                for words in (code, "my secret words"):
                    update = fake.text_update(6161, words)
                    fake.push(update)
                    await settled(engine, "telegram", str(update["update_id"]), timeout=60)

        asyncio.run(scenario())
    lines = [json.loads(logs.JsonLines().format(record)) for record in caplog.records]
    handled = [line for line in lines if line.get("event") == "inbound.handled"]
    sent = [line for line in lines if line.get("event") == "outbox.sent"]
    assert len(handled) == 2 and handled[1]["person_id"] == student  # linked by the code, then known
    assert sent and all(line["person_id"] == student for line in sent)
    assert not any("secret words" in json.dumps(line) or code in json.dumps(line) for line in lines)


def test_metrics_answer_at_once_with_database_up_0_while_a_table_is_locked_on_postgresql(engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("a table lock that shuts readers out is PostgreSQL's")
    with FakeTelegram() as fake:

        async def scenario() -> tuple[int, str, float]:
            async with serving(Service(telegram_settings(fake), engine)) as service:
                holder = await asyncio.to_thread(engine.connect)
                try:
                    await asyncio.to_thread(holder.exec_driver_sql, "LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE")
                    return await get(service.port, "/metrics")
                finally:
                    await asyncio.to_thread(holder.rollback)
                    await asyncio.to_thread(holder.close)

        status, body, took = asyncio.run(scenario())
    assert status == 200 and took < 1.5
    assert samples(body)[("companion_database_up", ())] == 0
