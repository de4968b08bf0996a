"""Telegram end to end over real HTTP: python-telegram-bot against a loopback Bot API."""

from __future__ import annotations

import asyncio
import signal
import time

import aiohttp
import pytest
from sqlalchemy import text

from bot.serve import Service, StartupError, problems
from bot.telegram import TelegramAdapter, keyboard
from core.config import Settings
from core.delivery.inbox import InboxWorker
from core.delivery.worker import Limits, Refused, utc_now
from core.engine.pipeline import Engine
from core.domain.messages import Outbound
from core.domain.store import Store
from tests.fakes import FakeTelegram, interrupt_and_resume, serving, settled, until
from tests.helpers import enrol

ONBOARDING = ["@agree", "@en", "@keep", "drawing", "essays", "robots", "engineer", "4pm", "@/goals"]
GOAL = ["read 20 pages of my novel by Thursday", "@content_knowledge", "I enjoy the story", "I get distracted",
        "put my phone in the kitchen", "@4", "@no"]
SECRET = "s3cret-token_for-tests"
STUDENT = 4242


@pytest.fixture
def fake():
    with FakeTelegram() as server:
        yield server


@pytest.fixture
def quick(monkeypatch):
    """A faster pace than Telegram's, so a whole dialog fits in a test; test_delivery checks the pace."""
    monkeypatch.setattr(TelegramAdapter, "limits", Limits(per_chat=50.0, per_bot=200.0))


def telegram_settings(fake: FakeTelegram, **more) -> Settings:
    return Settings(TELEGRAM_BOT_TOKEN=fake.token, TELEGRAM_API_URL=fake.url, COMPANION_HTTP_PORT=0, **more)


def webhook_settings(fake: FakeTelegram) -> Settings:
    return telegram_settings(fake, TELEGRAM_WEBHOOK_URL="https://bot.school.test/telegram/webhook",
                             TELEGRAM_WEBHOOK_SECRET=SECRET)


def count(engine, table: str) -> int:
    with engine.connect() as connection:
        return connection.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


async def step(engine, fake: FakeTelegram, says: str) -> None:
    """The student types `says`, or taps the button whose payload follows "@"; wait for the answers."""
    update = fake.tap_update(STUDENT, says[1:]) if says.startswith("@") else fake.text_update(STUDENT, says)
    fake.push(update)
    await settled(engine, "telegram", str(update["update_id"]))


def test_a_student_links_onboards_and_sets_a_goal_by_polling(engine, now, fake, quick):
    _, code = enrol(engine, now)

    async def scenario() -> None:
        async with serving(Service(telegram_settings(fake), engine)):
            for says in [f"/start {code}", *ONBOARDING, *GOAL]:
                await step(engine, fake, says)
            await until(lambda: len(fake.called("editMessageReplyMarkup")) == sum(
                says.startswith("@") for says in ONBOARDING + GOAL))

    asyncio.run(scenario())
    with engine.connect() as connection:
        person = connection.execute(text("SELECT consent_at, locale FROM person")).one()
        goal = connection.execute(text("SELECT text, category, confidence FROM goal")).one()
        strengths = connection.execute(text("SELECT strengths FROM learnerprofile")).scalar_one()
    assert person.consent_at is not None and person.locale == "en" and strengths == "drawing"
    assert tuple(goal) == ("read 20 pages of my novel by Thursday", "content_knowledge", 4)
    taps = sum(says.startswith("@") for says in ONBOARDING + GOAL)
    edits = fake.called("editMessageReplyMarkup")  # every tap answered, every tapped keyboard removed
    assert len(fake.called("answerCallbackQuery")) == len(edits) == taps
    assert not any(edit.get("reply_markup") for edit in edits)
    menus = fake.called("setMyCommands")
    assert [m.get("language_code") for m in menus] == [None, "es"] and menus[0]["commands"][0]["command"] == "goals"


def test_a_polled_update_that_fails_is_tried_again_not_lost(engine, now, fake, quick, monkeypatch):
    _, code = enrol(engine, now)
    handle = Engine.handle
    outages = iter([RuntimeError("database is away"), RuntimeError("still away")])

    def flaky(self, inbound, *args, **kwargs):
        """The first two calls fail as a database outage would; later ones work."""
        for outage in outages:
            raise outage
        return handle(self, inbound, *args, **kwargs)

    monkeypatch.setattr(Engine, "handle", flaky)

    async def scenario() -> None:
        async with serving(Service(telegram_settings(fake), engine)):
            await step(engine, fake, f"/start {code}")  # Telegram will not send it again: the inbox keeps it

    asyncio.run(scenario())
    with engine.connect() as connection:
        assert connection.execute(text("SELECT person_id FROM chatidentity")).scalar_one() is not None
    assert "Welcome" in fake.texts(str(STUDENT))[0]


async def post_update(port: int, update: dict, secret: str | None) -> int:
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"http://127.0.0.1:{port}/telegram/webhook", json=update, headers=headers) as response:
            return response.status


def test_webhook_checks_the_secret_and_a_redelivered_update_changes_nothing(engine, now, fake, quick):
    _, code = enrol(engine, now)
    start = fake.text_update(STUDENT, f"/start {code}")

    async def scenario() -> None:
        async with serving(Service(webhook_settings(fake), engine)) as service:
            assert fake.called("setWebhook")[0]["secret_token"] == SECRET
            assert await post_update(service.port, start, "wrong") == 403
            assert await post_update(service.port, start, None) == 403
            assert (count(engine, "inboundevent"), count(engine, "chatidentity"), count(engine, "outbox")) == (0, 0, 0)
            assert await post_update(service.port, start, SECRET) == 200
            await settled(engine, "telegram", str(start["update_id"]))
            before = (count(engine, "outbox"), len(fake.called("sendMessage")))
            assert await post_update(service.port, start, SECRET) == 200  # Telegram re-delivers it
            await asyncio.sleep(0.3)
            assert (count(engine, "outbox"), len(fake.called("sendMessage"))) == before
            tap = fake.tap_update(STUDENT, "agree")
            assert await post_update(service.port, tap, SECRET) == 200
            await settled(engine, "telegram", str(tap["update_id"]))

    asyncio.run(scenario())
    with engine.connect() as connection:
        assert connection.execute(text("SELECT consent_at FROM person")).scalar_one() is not None


def test_a_webhook_update_that_cannot_be_stored_is_answered_500_so_telegram_sends_it_again(engine, now, fake, quick,
                                                                                        monkeypatch):
    _, code = enrol(engine, now)
    start = fake.text_update(STUDENT, f"/start {code}")
    put = InboxWorker.put
    outages = iter([RuntimeError("database is away")])

    def flaky(self, *args):
        """The first INSERT fails as a database outage would; later ones work."""
        for outage in outages:
            raise outage
        return put(self, *args)

    monkeypatch.setattr(InboxWorker, "put", flaky)

    async def scenario() -> None:
        async with serving(Service(webhook_settings(fake), engine)) as service:
            assert await post_update(service.port, start, SECRET) == 500
            assert count(engine, "inboundevent") == count(engine, "inbox") == 0
            assert await post_update(service.port, start, SECRET) == 200  # Telegram's next attempt
            await settled(engine, "telegram", str(start["update_id"]))

    asyncio.run(scenario())
    with engine.connect() as connection:
        assert connection.execute(text("SELECT person_id FROM chatidentity")).scalar_one() is not None


def test_a_reply_to_a_student_overtakes_a_broadcast_in_progress(engine, now, fake):
    _, code = enrol(engine, now)
    queue_broadcast(engine, 300)  # ten seconds of nudges at Telegram's 30 messages a second
    start = fake.text_update(STUDENT, f"/start {code}")

    async def scenario() -> float:
        async with serving(Service(telegram_settings(fake), engine)):
            await until(lambda: len(fake.called("sendMessage")) >= 30)
            began = time.monotonic()
            fake.push(start)
            await until(lambda: len(fake.texts(STUDENT)) >= 1)
            return time.monotonic() - began

    took = asyncio.run(scenario())
    # The reply takes the next free slot, ahead of the nudges leased and waiting for theirs.
    assert took < 0.5 and len(fake.called("sendMessage")) < 100


def test_a_429_is_waited_out_and_the_message_arrives_once(engine, now, fake):
    _, code = enrol(engine, now)
    fake.fail("sendMessage", 429, retry_after=1)
    start = fake.text_update(STUDENT, f"/start {code}")

    async def scenario() -> float:
        async with serving(Service(telegram_settings(fake), engine)):
            began = time.monotonic()
            fake.push(start)
            await settled(engine, "telegram", str(start["update_id"]))
            return time.monotonic() - began

    took = asyncio.run(scenario())
    texts = fake.texts(STUDENT)
    sends = fake.called("sendMessage")
    assert len(sends) == len(texts) + 1  # one refused, then each message once
    assert len(set(texts)) == len(texts) and took >= 1.0


def test_a_student_who_blocks_the_bot_is_marked_unreachable_not_retried(engine, now, fake, quick):
    _, code = enrol(engine, now)
    start = fake.text_update(STUDENT, f"/start {code}")
    fake.fail("sendMessage", 403, description="Forbidden: bot was blocked by the user")

    async def scenario() -> None:
        async with serving(Service(telegram_settings(fake), engine)):
            fake.push(start)
            await settled(engine, "telegram", str(start["update_id"]))
            await asyncio.sleep(0.3)

    asyncio.run(scenario())
    with engine.connect() as connection:
        assert connection.execute(text("SELECT unreachable FROM chatidentity")).scalar_one()
        statuses = connection.execute(text("SELECT status FROM outbox")).scalars().all()
    assert set(statuses) == {"failed"} and len(fake.called("sendMessage")) == 1


def test_photos_documents_and_links_become_attachments(engine, fake, quick, monkeypatch):
    seen = []
    monkeypatch.setattr(Engine, "handle", lambda self, inbound, *args, **kwargs: seen.append(inbound) or [])
    updates = [fake.text_update(STUDENT, None, caption="my poster", photo=[
                   {"file_id": "small", "file_unique_id": "s", "width": 90, "height": 90},
                   {"file_id": "large", "file_unique_id": "l", "width": 900, "height": 900}]),
               fake.text_update(STUDENT, None, document={"file_id": "doc1", "file_unique_id": "d",
                                                        "file_name": "essay.pdf"}),
               fake.text_update(STUDENT, "see https://example.org/work", entities=[
                   {"type": "url", "offset": 4, "length": 24}])]

    async def scenario() -> None:
        async with serving(Service(telegram_settings(fake), engine)):
            for update in updates:
                fake.push(update)
            await until(lambda: len(seen) == 3)

    asyncio.run(scenario())
    assert [(i.attachment.kind, i.attachment.ref, i.attachment.caption) for i in seen] == [
        ("photo", "large", "my poster"), ("file", "doc1", "essay.pdf"),
        ("link", "https://example.org/work", "see https://example.org/work")]
    assert seen[0].text == "my poster" and seen[2].text == "see https://example.org/work"


def test_keyboards_keep_callback_data_within_64_bytes():
    markup = keyboard((("1", "1"), ("2", "2"), ("3", "3"), ("A much longer label for this choice", "long")))
    assert [[b.callback_data for b in row] for row in markup.inline_keyboard] == [["1", "2", "3"], ["long"]]
    with pytest.raises(Refused):
        keyboard((("too long", "x" * 65),))


def test_clear_errors_for_missing_or_wrong_configuration(engine, fake):
    assert problems(Settings()) == ["set TELEGRAM_BOT_TOKEN, or SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (or both)"]
    found = problems(Settings(TELEGRAM_BOT_TOKEN="nonsense", TELEGRAM_WEBHOOK_URL="http://x.test/hook"))
    assert len(found) == 3 and "TELEGRAM_WEBHOOK_SECRET" in found[2]
    wrong = Settings(TELEGRAM_BOT_TOKEN="999:AAwrongTokenForLoopbackTests_0123", TELEGRAM_API_URL=fake.url,
                     COMPANION_HTTP_PORT=0)
    with pytest.raises(StartupError, match="TELEGRAM_BOT_TOKEN was refused"):
        asyncio.run(Service(wrong, engine).run(asyncio.Event()))


# -- killing `companion serve` while it delivers ---------------------------------------------------


def queue_broadcast(engine, chats: int) -> dict[str, str]:
    """One nudge to each of `chats` students; returns the text each should receive."""
    from core.features import REGISTRY

    with Store(engine).transaction() as tx:
        for n in range(chats):
            tx.enqueue(None, "telegram", str(1000 + n), "en", Outbound("commands/unknown", {"command": f"n{n}"}),
                       utc_now(), priority=1)
    return {str(1000 + n): REGISTRY.catalog.text("commands/unknown", "en", {"command": f"n{n}"}) for n in range(chats)}


def received(fake: FakeTelegram) -> list[tuple[str, str]]:
    return [(str(call["chat_id"]), call["text"]) for call in fake.called("sendMessage")]


def test_killing_serve_while_it_delivers_loses_nothing_and_resends_only_what_was_in_flight(engine, fake):
    expected = queue_broadcast(engine, 60)
    fake.delay = 0.3  # each send takes a while: some are surely in flight when the process dies
    in_flight = interrupt_and_resume(engine, lambda: len(fake.called("sendMessage")), signal.SIGKILL, 60,
                                     TELEGRAM_BOT_TOKEN=fake.token, TELEGRAM_API_URL=fake.url)
    assert in_flight, "the kill should have caught sends in flight"
    got = received(fake)
    assert set(got) == set(expected.items())  # nothing lost
    doubled = {chat for chat, _ in got if got.count((chat, expected[chat])) > 1}
    assert doubled <= in_flight and all(got.count(item) <= 2 for item in got)  # at most once more, in-flight only


def test_sigterm_while_delivering_finishes_in_flight_and_sends_nothing_twice(engine, fake):
    expected = queue_broadcast(engine, 60)
    fake.delay = 0.3
    in_flight = interrupt_and_resume(engine, lambda: len(fake.called("sendMessage")), signal.SIGTERM, 60,
                                     TELEGRAM_BOT_TOKEN=fake.token, TELEGRAM_API_URL=fake.url)
    assert not in_flight
    assert sorted(received(fake)) == sorted(expected.items())  # every message exactly once
