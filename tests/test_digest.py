"""The weekly digest as it travels (issue 16): planned and claimed by the nudge scheduler at the adviser's time,
once even with two workers sweeping at once; its chart a PNG of the right size that differs between two
advisers' classes; a photo on Telegram and an uploaded file on Slack (loopback fakes), where "Followed up" is
recorded once even when the platform repeats the tap; the App Home dashboard and its summary modal;
`companion digest`."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo
from urllib.parse import urlencode

from click.testing import CliRunner
from PIL import Image, ImageChops

from bot.cli import main as companion
from bot.serve import Service
from core.domain import dates
from core.domain.messages import Inbound
from core.domain.store import Store
from core.engine.pipeline import Engine
from core.features import REGISTRY
from core.features.advisers.digest import compose
from core.render.charts import SIZE
from core.schedule import policy as schedule
from tests.fakes import FakeSlack, FakeTelegram, serving, settled, until
from tests.test_advisers import (LAST_WEEK, MONDAY, TRIAGE_ORDER, TWO_WEEKS_AGO, at, goal, group, lines_order, person,
                                 review, scripted_week, sql)
from tests.test_slack import DM, USER, Workspace, slack_settings
from tests.test_telegram import STUDENT as TELEGRAM_USER, telegram_settings

DUE = datetime(2026, 11, 23, 12, 30, tzinfo=timezone.utc)  # Monday 07:30 in New York, the school's default


def templates(engine, person_id: int) -> list[str]:
    return [row[0] for row in sql(engine, "SELECT template FROM outbox WHERE person_id = :p ORDER BY id", p=person_id)]


def sweep_at(engine, moment: datetime, worker: str = "w1") -> schedule.SweepReport:
    conversation = Engine(Store(engine), REGISTRY, clock=lambda: moment)
    return schedule.total(schedule.sweep_until_idle(engine, conversation, moment, worker, 50))


def test_the_scheduler_sends_each_adviser_their_digest_once_at_their_time(engine, now):
    s = scripted_week(engine)
    schedule.plan_week(engine, REGISTRY, MONDAY, now - timedelta(hours=2))
    sweep_at(engine, DUE - timedelta(minutes=1))
    assert "adviser/digest" not in templates(engine, s["adviser"])  # not before its time
    sweep_at(engine, DUE + timedelta(minutes=1))
    assert templates(engine, s["adviser"]) == ["adviser/digest", "adviser/digest_triage", "adviser/digest_triage"]
    assert templates(engine, s["other_adviser"]) == ["adviser/digest", "adviser/digest_triage"]
    (parts,), = sql(engine, "SELECT parts FROM outbox WHERE person_id = :p AND template = 'adviser/digest'",
                    p=s["adviser"])
    image = json.loads(parts)["image"]
    assert image["file"]["mime"] == "image/png" and image["caption"] == "adviser/chart_caption"
    sweep_at(engine, DUE + timedelta(minutes=30))
    assert templates(engine, s["adviser"]).count("adviser/digest") == 1  # once a week
    assert sql(engine, "SELECT status, followup_due_at FROM nudge WHERE person_id = :p", p=s["adviser"]) == [
        ("sent", None)]  # an adviser's digest leaves out the follow-up
    assert "adviser/digest" not in templates(engine, s["ana"])  # students get no digest


def test_two_workers_sweeping_at_once_send_each_digest_once(engine, now):
    advisers = []
    for n in range(12):
        adviser = person(engine, f"Adviser{n}", "Teacher", role="adviser")
        students = [person(engine, f"Student{n}x{k}", "Pupil") for k in range(3)]
        group(engine, adviser, *students)
        goal(engine, students[0], MONDAY, "a goal", confidence=1)
        advisers.append(adviser)
    schedule.plan_week(engine, REGISTRY, MONDAY, now - timedelta(hours=2))
    start = threading.Barrier(2)
    errors = []

    def worker(name: str) -> None:
        try:
            start.wait()
            sweep_at(engine, DUE + timedelta(minutes=1), name)
        except Exception as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(f"w{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    for adviser in advisers:
        assert templates(engine, adviser).count("adviser/digest") == 1, adviser
    assert sql(engine, "SELECT COUNT(*) FROM nudge WHERE kind = 'adviser_digest' AND status = 'sent'") == [(12,)]


def png_of(engine, conversation, adviser_id: int, locale: str = "en") -> bytes:
    with Store(engine).transaction() as tx:
        return compose(tx, REGISTRY, conversation.catalog, adviser_id, MONDAY, locale, "X").png


def test_the_chart_is_a_png_of_the_right_size_whose_pixels_differ_between_two_classes(engine, now):
    s = scripted_week(engine)
    for week in (TWO_WEEKS_AGO, LAST_WEEK):  # the other class does better
        done = goal(engine, s["gus"], week, "practise scales")
        review(engine, s["gus"], done, "done", at(week + timedelta(days=4)))
    conversation = Engine(Store(engine), REGISTRY, clock=lambda: now)
    first, second = png_of(engine, conversation, s["adviser"]), png_of(engine, conversation, s["other_adviser"])
    images = [Image.open(io.BytesIO(data)) for data in (first, second)]
    assert [image.format for image in images] == ["PNG", "PNG"]
    assert [image.size for image in images] == [SIZE, SIZE]
    difference = ImageChops.difference(images[0].convert("RGB"), images[1].convert("RGB"))
    assert difference.getbbox() is not None  # the two classes' lines are drawn differently
    assert png_of(engine, conversation, s["adviser"]) == first  # the same data draws the same picture


def this_monday() -> date:
    """The Monday of the real week in the school's zone: `serve` runs on the real clock."""
    return dates.week_start(datetime.now(ZoneInfo("America/New_York")).date())


def adviser_on(engine, platform: str, external_id: str, chat_id: str) -> dict:
    """The scripted week (this real week), its adviser's chat account on `platform`."""
    s = scripted_week(engine, monday=this_monday())
    sql(engine, "UPDATE chatidentity SET platform = :pl, external_id = :e, chat_id = :c WHERE person_id = :p",
        pl=platform, e=external_id, c=chat_id, p=s["adviser"])
    return s


def queue_digest(engine, platform: str, external_id: str, chat_id: str) -> None:
    """What the scheduler does when the digest is due: `/digest` through the pipeline for the adviser (now)."""
    Engine(Store(engine), REGISTRY).handle(
        Inbound(platform, "nudge:digest-test", external_id, chat_id, payload="/digest"), priority=1)


def follow_ups(engine, student_id: int) -> int:
    return sql(engine, "SELECT COUNT(*) FROM adultaction WHERE student_id = :p AND action = 'followed_up'",
               p=student_id)[0][0]


def test_on_telegram_the_chart_is_a_photo_and_followed_up_is_recorded_once(engine, monkeypatch):
    from bot.telegram import TelegramAdapter
    from core.delivery.worker import Limits

    monkeypatch.setattr(TelegramAdapter, "limits", Limits(per_chat=50.0, per_bot=200.0))
    chat = str(TELEGRAM_USER)
    s = adviser_on(engine, "telegram", chat, chat)
    queue_digest(engine, "telegram", chat, chat)

    async def scenario(telegram: FakeTelegram) -> None:
        async with serving(Service(telegram_settings(telegram), engine)):
            await until(lambda: len(telegram.texts(TELEGRAM_USER)) >= 3)
            tap = telegram.tap_update(TELEGRAM_USER, f"/followedup {s['hal']}")
            telegram.push(tap)
            await settled(engine, "telegram", str(tap["update_id"]))
            telegram.push(tap)  # Telegram hands the same update out again
            again = telegram.tap_update(TELEGRAM_USER, f"/followedup {s['hal']}")  # and the adviser taps again
            telegram.push(again)
            await settled(engine, "telegram", str(again["update_id"]))
            await asyncio.sleep(0.3)  # a re-delivered update would be answered by now

    with FakeTelegram() as telegram:
        asyncio.run(scenario(telegram))
        photo, = telegram.shared[chat]
        texts = telegram.texts(TELEGRAM_USER)
    assert photo["kind"] == "photo" and Image.open(io.BytesIO(photo["data"])).size == SIZE
    assert lines_order("\n".join(texts), TRIAGE_ORDER) == TRIAGE_ORDER
    assert follow_ups(engine, s["hal"]) == 1
    assert sum(text.startswith("Recorded: you followed up Hal") for text in texts) == 1


async def tap_twice(workspace: Workspace, fake: FakeSlack, payload: str) -> str:
    """Tap a button, then Slack sends the very same request again (a retry); returns the event id."""
    message, actions = fake.last_buttons(DM)
    action = next(element for element in actions["elements"] if element["value"] == payload)
    body = {"type": "block_actions", "trigger_id": "trigger-followed", "user": {"id": USER}, "team": {"id": "T1"},
            "api_app_id": "A1", "channel": {"id": DM}, "container": {"type": "message", "message_ts": message["ts"]},
            "message": {"ts": message["ts"], "text": message["text"], "blocks": message["blocks"]},
            "actions": [{"type": "button", "action_id": action["action_id"], "value": payload, "block_id": "b",
                         "action_ts": f"{time.time():.6f}"}]}
    form = urlencode({"payload": json.dumps(body)})
    assert await workspace.post(form, "application/x-www-form-urlencoded") == 200
    assert await workspace.post(form, "application/x-www-form-urlencoded", retry=1) == 200
    return "action:trigger-followed"


def test_on_slack_the_chart_is_an_uploaded_file_and_followed_up_is_recorded_once(engine, monkeypatch):
    import aiohttp

    from bot.slack import SlackAdapter
    from core.delivery.worker import Limits

    monkeypatch.setattr(SlackAdapter, "limits", Limits(per_chat=50.0, per_bot=200.0))
    s = adviser_on(engine, "slack", USER, DM)
    queue_digest(engine, "slack", USER, DM)

    async def scenario(fake: FakeSlack) -> None:
        async with serving(Service(slack_settings(fake), engine)) as service, aiohttp.ClientSession() as session:
            await until(lambda: len(fake.texts(DM)) >= 3)
            workspace = Workspace(service.port, session)
            await settled(engine, "slack", await tap_twice(workspace, fake, f"/followedup {s['cy']}"))  # the last chunk

    with FakeSlack() as fake:
        asyncio.run(scenario(fake))
        shared = fake.shared[DM]
        texts = fake.texts(DM)
    assert [(file["name"], Image.open(io.BytesIO(file["data"])).size) for file in shared] == [
        ("class-trend.png", SIZE)]
    assert lines_order("\n".join(texts), TRIAGE_ORDER) == TRIAGE_ORDER
    assert follow_ups(engine, s["cy"]) == 1
    assert sum(text.startswith("Recorded: you followed up Cy") for text in texts) == 1


def test_the_app_home_is_the_advisers_dashboard_with_a_summary_modal(engine, monkeypatch):
    import aiohttp

    from bot.slack import SlackAdapter
    from core.delivery.worker import Limits

    monkeypatch.setattr(SlackAdapter, "limits", Limits(per_chat=50.0, per_bot=200.0))
    s = adviser_on(engine, "slack", USER, DM)

    async def scenario(fake: FakeSlack) -> None:
        async with serving(Service(slack_settings(fake), engine)) as service, aiohttp.ClientSession() as session:
            workspace = Workspace(service.port, session)
            status, _ = await workspace.event({"type": "app_home_opened", "user": USER, "channel": DM, "tab": "home"})
            assert status == 200
            await until(lambda: fake.called("views.publish"))
            home = fake.called("views.publish")[-1]["view"]
            buttons = {element["value"]: element["action_id"] for block in home["blocks"]
                       if block["type"] == "actions" for element in block["elements"]}
            summary = {"type": "block_actions", "trigger_id": "trigger-summary", "user": {"id": USER},
                       "team": {"id": "T1"}, "api_app_id": "A1", "container": {"type": "view", "view_id": "VHOME"},
                       "view": {"id": "VHOME", "type": "home", "blocks": home["blocks"]},
                       "actions": [{"type": "button", "action_id": buttons[f"/student #{s['ana']}"],
                                    "value": f"/student #{s['ana']}", "block_id": "b", "action_ts": "1"}]}
            assert await workspace.post(urlencode({"payload": json.dumps(summary)}),
                                        "application/x-www-form-urlencoded") == 200
            await until(lambda: fake.called("views.open"))
            tap = {"type": "block_actions", "trigger_id": "trigger-home-followed", "user": {"id": USER},
                   "team": {"id": "T1"}, "api_app_id": "A1", "container": {"type": "view", "view_id": "VHOME"},
                   "view": {"id": "VHOME", "type": "home", "blocks": home["blocks"]},
                   "actions": [{"type": "button", "action_id": buttons[f"/followedup {s['cy']}"],
                                "value": f"/followedup {s['cy']}", "block_id": "b", "action_ts": "1"}]}
            assert await workspace.post(urlencode({"payload": json.dumps(tap)}),
                                        "application/x-www-form-urlencoded") == 200
            await settled(engine, "slack", "action:trigger-home-followed")

    with FakeSlack() as fake:
        asyncio.run(scenario(fake))
        home = fake.called("views.publish")[-1]
        modal = fake.called("views.open")[-1]["view"]
        texts = fake.texts(DM)
    shown = "\n".join(block["text"]["text"] for block in home["view"]["blocks"] if block["type"] == "section")
    assert home["user_id"] == USER
    assert lines_order(shown, TRIAGE_ORDER) == TRIAGE_ORDER and "Class figures" in shown and "Gus" not in shown
    values = [element["value"] for block in home["view"]["blocks"] if block["type"] == "actions"
              for element in block["elements"]]
    assert [value for value in values if value.startswith("/followedup")] == [
        f"/followedup {s[name.split()[0].lower()]}" for name in TRIAGE_ORDER]
    assert {value for value in values if value.startswith("/student")} == {
        f"/student #{s[key]}" for key in ("ana", "bo", "cy", "di", "ed", "fay", "hal")}
    summary = "\n".join(block["text"]["text"] for block in modal["blocks"])
    assert modal["type"] == "modal" and summary.startswith("Ana Alvarez") and "illustrator" in summary
    assert follow_ups(engine, s["cy"]) == 1 and any(text.startswith("Recorded: you followed up Cy") for text in texts)


def test_companion_digest_prints_the_digest_and_saves_the_chart(engine, database_url, tmp_path, now, monkeypatch):
    monkeypatch.setattr("bot.digest_cli.utc_now", lambda: now)
    s = scripted_week(engine)
    result = CliRunner().invoke(companion, ["--database-url", database_url, "digest", "--adviser", str(s["adviser"]),
                                            "--print", "--out", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "== Rosa Rivera" in result.output and "Omar" not in result.output
    assert lines_order(result.output, TRIAGE_ORDER) == TRIAGE_ORDER
    chart, = tmp_path.glob("digest-*.png")
    assert Image.open(chart).size == SIZE


def test_companion_digest_sends_through_each_advisers_chat(engine, database_url):
    s = scripted_week(engine)
    result = CliRunner().invoke(companion, ["--database-url", database_url, "digest"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Rosa Rivera" in result.output and "Omar Ortiz" in result.output
    assert templates(engine, s["adviser"])[0] == "adviser/digest"
    unknown = CliRunner().invoke(companion, ["--database-url", database_url, "digest", "--adviser", "nobody@x.test"])
    assert unknown.exit_code != 0 and "no advisers match" in unknown.output
