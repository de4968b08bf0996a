"""Slack end to end over real HTTP: slack-bolt behind `serve`, against a loopback Slack Web API."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import time
from urllib.parse import urlencode

import aiohttp
import pytest
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import text

from bot.serve import Service, StartupError
from bot.slack import SlackAdapter, plain
from core.domain import records
from core.config import Settings
from core.delivery.worker import Limits, utc_now
from core.domain.messages import Outbound
from core.domain.store import Store
from tests.fakes import FakeSlack, FakeTelegram, dead_worker, interrupt_and_resume, serving, settled, until
from tests.helpers import enrol

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
USER, DM = "U1", "D1"
ONBOARDING = ["@agree", "@en", "@keep", "drawing", "essays", "robots", "engineer", "4pm", "@/goals"]
GOAL = ["read 20 pages of my novel by Thursday", "@content_knowledge", "I enjoy the story", "I get distracted",
        "put my phone in the kitchen", "@4", "@no"]
ids = itertools.count(1)


@pytest.fixture
def fake():
    with FakeSlack() as server:
        yield server


@pytest.fixture
def quick(monkeypatch):
    """A faster pace than Slack's, so a whole dialog fits in a test; test_delivery checks the pace."""
    monkeypatch.setattr(SlackAdapter, "limits", Limits(per_chat=50.0, per_bot=200.0))


def slack_settings(fake: FakeSlack) -> Settings:
    return Settings(SLACK_BOT_TOKEN=fake.token, SLACK_SIGNING_SECRET=SIGNING_SECRET, SLACK_API_URL=fake.url + "/api",
                    COMPANION_HTTP_PORT=0)


class Workspace:
    """Slack's side of the conversation: signed requests to the app, as Slack sends them."""

    def __init__(self, port: int, session: aiohttp.ClientSession):
        self.url = f"http://127.0.0.1:{port}/slack/events"
        self.session = session

    async def post(self, body: str, content_type: str, timestamp: int | None = None, secret: str = SIGNING_SECRET,
                   retry: int | None = None) -> int:
        """Send a signed request as Slack does; returns the HTTP status."""
        return (await self.request(body, content_type, timestamp, secret, retry))[0]

    async def request(self, body: str, content_type: str, timestamp: int | None = None,
                      secret: str = SIGNING_SECRET, retry: int | None = None) -> tuple[int, str]:
        """Send a signed request as Slack does; returns the HTTP status and the response body."""
        timestamp = int(time.time()) if timestamp is None else timestamp
        headers = {"Content-Type": content_type, "X-Slack-Request-Timestamp": str(timestamp),
                   "X-Slack-Signature": SignatureVerifier(secret).generate_signature(timestamp=str(timestamp),
                                                                                     body=body)}
        if retry is not None:
            headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        async with self.session.post(self.url, data=body.encode(), headers=headers) as response:
            return response.status, await response.text()

    async def event(self, event: dict, event_id: str | None = None, **options) -> tuple[int, str]:
        event_id = event_id or f"Ev{next(ids)}"
        body = json.dumps({"token": "legacy", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
                           "event_id": event_id, "event_time": int(time.time()), "event": event})
        return await self.post(body, "application/json", **options), event_id

    async def dm(self, words: str, **options) -> tuple[int, str]:
        return await self.event({"type": "message", "channel_type": "im", "channel": DM, "user": USER,
                                 "text": words, "ts": f"{time.time():.6f}"}, **options)

    async def tap(self, fake: FakeSlack, payload: str) -> tuple[int, str]:
        """Tap the button with `payload` on the newest message that shows buttons."""
        message, actions = fake.last_buttons(DM)
        action = next(element for element in actions["elements"] if element["value"] == payload)
        trigger = f"trigger{next(ids)}"
        body = {"type": "block_actions", "trigger_id": trigger, "user": {"id": USER}, "team": {"id": "T1"},
                "api_app_id": "A1", "channel": {"id": DM}, "container": {"type": "message", "message_ts": message["ts"]},
                "message": {"ts": message["ts"], "text": message["text"], "blocks": message["blocks"]},
                "actions": [{"type": "button", "action_id": action["action_id"], "value": payload,
                             "block_id": "b", "action_ts": f"{time.time():.6f}"}]}
        return await self.post(urlencode({"payload": json.dumps(body)}), "application/x-www-form-urlencoded"), \
            "action:" + trigger

    async def tap_home(self, fake: FakeSlack, action_id: str) -> int:
        """Tap the button with `action_id` on the App Home the app published last."""
        home = fake.called("views.publish")[-1]["view"]
        assert any(element["action_id"] == action_id
                   for block in home["blocks"] if block["type"] == "actions" for element in block["elements"])
        body = {"type": "block_actions", "trigger_id": f"trigger{next(ids)}", "user": {"id": USER},
                "team": {"id": "T1"}, "api_app_id": "A1", "container": {"type": "view", "view_id": "VHOME"},
                "view": {"id": "VHOME", "type": "home", "blocks": home["blocks"]},
                "actions": [{"type": "button", "action_id": action_id, "block_id": "b",
                             "action_ts": f"{time.time():.6f}"}]}
        return await self.post(urlencode({"payload": json.dumps(body)}), "application/x-www-form-urlencoded")

    async def submit(self, view: dict, typed: dict[str, str]) -> tuple[int, dict | None]:
        """Press the modal's submit button after typing `typed` into its inputs; returns Slack's answer."""
        values = {block["block_id"]: {block["element"]["action_id"]: {
            "type": "plain_text_input", "value": typed.get(block["block_id"]) or None}}
            for block in view["blocks"] if block["type"] == "input"}
        body = {"type": "view_submission", "team": {"id": "T1"}, "user": {"id": USER}, "api_app_id": "A1",
                "trigger_id": f"trigger{next(ids)}", "view": {**view, "state": {"values": values}}}
        status, answer = await self.request(urlencode({"payload": json.dumps(body)}),
                                            "application/x-www-form-urlencoded")
        return status, json.loads(answer) if answer else None

    async def command(self, words: str) -> tuple[int, str]:
        trigger = f"trigger{next(ids)}"
        body = urlencode({"command": "/companion", "text": words, "user_id": USER, "team_id": "T1",
                          "channel_id": "C-general", "trigger_id": trigger, "response_url": "https://hooks.test/x"})
        return await self.post(body, "application/x-www-form-urlencoded"), "command:" + trigger


async def step(engine, fake: FakeSlack, workspace: Workspace, says: str) -> None:
    """The student writes `says`, or taps the button whose payload follows "@"; wait for the answers."""
    status, event_id = await (workspace.tap(fake, says[1:]) if says.startswith("@") else workspace.dm(says))
    assert status == 200
    await settled(engine, "slack", event_id)


async def open_profile_modal(engine, fake: FakeSlack, workspace: Workspace) -> dict:
    """Link the student by e-mail, open their App Home and tap "Edit my profile"; returns the modal."""
    status, event_id = await workspace.dm("hi")
    assert status == 200
    await settled(engine, "slack", event_id)
    await workspace.event({"type": "app_home_opened", "user": USER, "channel": DM, "tab": "home"})
    await until(lambda: fake.called("views.publish"))
    assert await workspace.tap_home(fake, "profile_modal") == 200
    await until(lambda: fake.views)
    return fake.views[-1]


def enrol_by_email(engine, now, fake: FakeSlack, **profile) -> int:
    """A student whose Slack e-mail is on the roster, with a learner profile filled in so far."""
    student, _ = enrol(engine, now)
    with Store(engine).transaction() as tx:
        fake.emails[USER] = tx.one("SELECT email FROM person WHERE id = ?", (student,))[0]
        records.save_profile(tx, student, now, **profile)
    return student


def stored_profile(engine) -> tuple:
    """The one learner profile row: its five fields and when it was last written."""
    with engine.connect() as connection:
        return tuple(connection.execute(text(
            "SELECT strengths, needs, interests, aim, checkin_time, updated_at FROM learnerprofile")).one())


def audited(engine, action: str) -> int:
    """How many audit rows record `action`."""
    with engine.connect() as connection:
        return connection.execute(text("SELECT COUNT(*) FROM auditlog WHERE action = :action"),
                                  {"action": action}).scalar_one()


def database(engine) -> tuple[int, int, int, int]:
    with engine.connect() as connection:
        return tuple(connection.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
                     for table in ("inboundevent", "chatidentity", "outbox", "inbox"))


def test_a_student_links_by_email_onboards_and_sets_a_goal(engine, now, fake, quick):
    student, _ = enrol(engine, now, given_name="Bea")
    with engine.connect() as connection:
        fake.emails[USER] = connection.execute(text("SELECT email FROM person WHERE id = :id"),
                                               {"id": student}).scalar_one().upper()

    async def scenario() -> None:
        async with serving(Service(slack_settings(fake), engine)) as service, aiohttp.ClientSession() as session:
            workspace = Workspace(service.port, session)
            for says in ["hi", *ONBOARDING, *GOAL]:
                await step(engine, fake, workspace, says)
            status, event_id = await workspace.command("plan")
            assert status == 200
            await settled(engine, "slack", event_id)
            status, _ = await workspace.event({"type": "app_home_opened", "user": USER, "channel": DM, "tab": "home"})
            await until(lambda: fake.called("views.publish"))

    asyncio.run(scenario())
    with engine.connect() as connection:
        person = connection.execute(text("SELECT consent_at, locale FROM person")).one()
        goal = connection.execute(text("SELECT text, category, confidence FROM goal")).one()
        linked = connection.execute(text("SELECT person_id, chat_id FROM chatidentity")).one()
    assert tuple(linked) == (student, DM) and person.consent_at is not None
    assert tuple(goal) == ("read 20 pages of my novel by Thursday", "content_knowledge", 4)
    taps = sum(says.startswith("@") for says in ONBOARDING + GOAL)
    updates = fake.called("chat.update")  # every tapped message lost its buttons
    assert len(updates) == taps and not any(block["type"] == "actions" for call in updates for block in call["blocks"])
    assert "read 20 pages of my novel" in fake.texts(DM)[-1]  # /companion plan answered in the DM
    home = fake.called("views.publish")[0]
    assert home["user_id"] == USER and "read 20 pages of my novel" in home["view"]["blocks"][0]["text"]["text"]
    posted = fake.called("chat.postMessage")
    assert all(call["metadata"]["event_type"] == "companion_outbox" for call in posted)


def test_forged_and_stale_requests_are_refused_and_change_nothing(engine, now, fake, quick):
    _, code = enrol(engine, now)

    async def scenario() -> None:
        async with serving(Service(slack_settings(fake), engine)) as service, aiohttp.ClientSession() as session:
            workspace = Workspace(service.port, session)
            assert (await workspace.dm(code, secret="forged-secret"))[0] == 401
            assert (await workspace.dm(code, timestamp=int(time.time()) - 6 * 60))[0] == 401
            forged_command = urlencode({"command": "/companion", "text": code, "user_id": USER, "team_id": "T1",
                                        "channel_id": "C1", "trigger_id": "t-forged", "response_url": "https://x.test"})
            assert await workspace.post(forged_command, "application/x-www-form-urlencoded", secret="forged") == 401
            await asyncio.sleep(0.3)
            assert database(engine) == (0, 0, 0, 0) and fake.called("chat.postMessage") == []  # not even stored

            status, event_id = await workspace.dm(code, event_id="Ev-retried")
            await settled(engine, "slack", event_id)
            before = (database(engine), len(fake.called("chat.postMessage")))
            for retry in (1, 2, 3):  # Slack retries an event it thinks was not acknowledged
                assert (await workspace.dm(code, event_id="Ev-retried", retry=retry))[0] == 200
            await until(lambda: database(engine)[3] == 0)  # stored again, then handled as the repeat it is
            await asyncio.sleep(0.3)
            assert (database(engine), len(fake.called("chat.postMessage"))) == before

    asyncio.run(scenario())


def test_a_429_with_retry_after_is_waited_out_and_the_message_arrives_once(engine, now, fake):
    _, code = enrol(engine, now)
    fake.fail("chat.postMessage", 429, retry_after=1)

    async def scenario() -> float:
        async with serving(Service(slack_settings(fake), engine)) as service, aiohttp.ClientSession() as session:
            began = time.monotonic()
            _, event_id = await Workspace(service.port, session).dm(code)
            await settled(engine, "slack", event_id)
            return time.monotonic() - began

    took = asyncio.run(scenario())
    texts = fake.texts(DM)
    assert len(fake.called("chat.postMessage")) == len(texts) + 1 and len(set(texts)) == len(texts)
    assert took >= 1.0


def test_a_crash_after_posting_is_reconciled_from_the_history_not_resent(engine, now, fake, quick):
    """Slack can tell what arrived: a row left 'sending' by a dead process is recorded, not doubled."""
    with Store(engine).transaction() as tx:
        arrived = tx.enqueue(None, "slack", DM, "en", Outbound("commands/unknown", {"command": "a"}), utc_now())
        lost = tx.enqueue(None, "slack", "D2", "en", Outbound("commands/unknown", {"command": "b"}), utc_now())
        tx.execute("UPDATE outbox SET status = 'sending', claimed_by = ?, claimed_at = ?",
                   (dead_worker(), tx.ts(utc_now())))

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:  # the dead process had posted the first one
            async with session.post(f"{fake.url}/api/chat.postMessage", headers={"Authorization": f"Bearer {fake.token}"},
                                    json={"channel": DM, "text": "I don't know /a.", "metadata": {
                                        "event_type": "companion_outbox", "event_payload": {"outbox_id": arrived}}}):
                pass
        async with serving(Service(slack_settings(fake), engine)):
            await until(lambda: len(fake.texts("D2")) == 1)
            await asyncio.sleep(0.2)

    asyncio.run(scenario())
    assert len(fake.texts(DM)) == 1 and len(fake.texts("D2")) == 1
    with engine.connect() as connection:
        rows = dict(connection.execute(text("SELECT id, error FROM outbox WHERE status = 'sent'")).all())
    assert set(rows) == {arrived, lost}  # the posted one recorded from the history, the other sent once
    assert rows[arrived] is None or "resent" not in rows[arrived]


def test_a_wrong_token_fails_at_start_up(engine, fake):
    settings = Settings(SLACK_BOT_TOKEN="xoxb-wrong", SLACK_SIGNING_SECRET=SIGNING_SECRET,
                        SLACK_API_URL=fake.url + "/api", COMPANION_HTTP_PORT=0)
    with pytest.raises(StartupError, match="SLACK_BOT_TOKEN was refused"):
        asyncio.run(Service(settings, engine).run(asyncio.Event()))


def test_slack_markup_is_taken_off_what_students_write():
    assert plain("see <https://example.org/a|my essay> &amp; <https://x.test> &lt;3") == \
        "see my essay & https://x.test <3"


def test_killing_serve_while_it_delivers_loses_nothing_and_sends_nothing_twice(engine, fake):
    """Slack can tell what arrived, so even a kill in the crash window doubles nothing."""
    with Store(engine).transaction() as tx:
        for n in range(60):
            tx.enqueue(None, "slack", f"D{100 + n}", "en", Outbound("commands/unknown", {"command": f"n{n}"}),
                       utc_now(), priority=1)
    fake.delay = 0.3
    in_flight = interrupt_and_resume(engine, lambda: len(fake.called("chat.postMessage")), signal.SIGKILL, 60,
                                     SLACK_BOT_TOKEN=fake.token, SLACK_SIGNING_SECRET=SIGNING_SECRET,
                                     SLACK_API_URL=fake.url + "/api")
    assert in_flight, "the kill should have caught sends in flight"
    got = sorted((call["channel"], call["text"]) for call in fake.called("chat.postMessage"))
    assert got == sorted((f"D{100 + n}", f"I don't know /n{n}.") for n in range(60))


def test_one_process_serves_both_platforms_and_a_health_check(engine, now, fake, quick):
    _, code = enrol(engine, now)
    with FakeTelegram() as telegram:
        settings = Settings(SLACK_BOT_TOKEN=fake.token, SLACK_SIGNING_SECRET=SIGNING_SECRET,
                            SLACK_API_URL=fake.url + "/api", TELEGRAM_BOT_TOKEN=telegram.token,
                            TELEGRAM_API_URL=telegram.url, COMPANION_HTTP_PORT=0)
        update = telegram.text_update(7, "hello")

        async def scenario() -> None:
            async with serving(Service(settings, engine)) as service, aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{service.port}/healthz") as response:
                    assert response.status == 200 and (await response.json()) == {"status": "ok"}
                _, event_id = await Workspace(service.port, session).dm(code)
                telegram.push(update)
                await settled(engine, "slack", event_id)
                await settled(engine, "telegram", str(update["update_id"]))

        asyncio.run(scenario())
        assert telegram.texts(7) and fake.texts(DM)


def test_the_profile_modal_opens_from_the_app_home_prefilled_and_saves_once(engine, now, fake, quick):
    enrol_by_email(engine, now, fake, strengths="drawing", checkin_time="16:00")
    typed = {"strengths": "drawing and maths", "needs": "essays", "interests": "robots", "aim": "engineer",
             "checkin_time": "7:30pm"}

    async def scenario() -> dict:
        async with serving(Service(slack_settings(fake), engine)) as service, aiohttp.ClientSession() as session:
            workspace = Workspace(service.port, session)
            modal = await open_profile_modal(engine, fake, workspace)
            assert await workspace.submit(modal, typed) == (200, None)
            await settled(engine, "slack", f"view:{modal['id']}:{modal['hash']}")
            saved = (stored_profile(engine), len(fake.texts(DM)))
            assert await workspace.submit(modal, typed) == (200, None)  # Slack retries the same submission
            await asyncio.sleep(0.3)
            assert (stored_profile(engine), len(fake.texts(DM))) == saved
            return modal

    modal = asyncio.run(scenario())
    assert fake.called("views.open")[0]["trigger_id"].startswith("trigger")
    assert modal["title"]["text"] == "My profile" and modal["submit"]["text"] == "Save"
    prefilled = {block["block_id"]: block["element"].get("initial_value") for block in modal["blocks"]}
    assert prefilled == {"strengths": "drawing", "needs": None, "interests": None, "aim": None,
                         "checkin_time": "16:00"}
    assert stored_profile(engine)[:5] == ("drawing and maths", "essays", "robots", "engineer", "19:30")
    assert audited(engine, "profile_saved") == 1
    confirmations = [said for said in fake.texts(DM) if said.startswith("Your profile is saved")]
    assert len(confirmations) == 1 and "drawing and maths" in confirmations[0] and "19:30" in confirmations[0]


def test_a_wrong_checkin_time_is_refused_in_the_modal_in_the_students_language(engine, now, fake, quick):
    student = enrol_by_email(engine, now, fake, strengths="dibujo", checkin_time="16:00")
    with Store(engine).transaction() as tx:
        records.set_person(tx, student, locale="es")

    async def scenario() -> tuple[dict, tuple]:
        async with serving(Service(slack_settings(fake), engine)) as service, aiohttp.ClientSession() as session:
            workspace = Workspace(service.port, session)
            modal = await open_profile_modal(engine, fake, workspace)
            before = (stored_profile(engine), database(engine), len(fake.called("chat.postMessage")))
            answer = await workspace.submit(modal, {"strengths": "matemáticas", "checkin_time": "a las nunca"})
            await asyncio.sleep(0.3)
            assert (stored_profile(engine), database(engine), len(fake.called("chat.postMessage"))) == before
            return modal, answer

    modal, (status, answer) = asyncio.run(scenario())
    assert modal["title"]["text"] == "Mi perfil" and modal["close"]["text"] == "Cancelar"
    assert status == 200 and answer == {"response_action": "errors", "errors": {
        "checkin_time": 'No entendí la hora. Prueba con algo como "7:30", "4pm" o "16:00".'}}
    assert audited(engine, "profile_saved") == 0 and stored_profile(engine)[0] == "dibujo"
