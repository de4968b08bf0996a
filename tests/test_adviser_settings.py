"""An adviser's digest settings on the Slack App Home (issue 16): "Digest settings" opens a modal with the day,
time and language as they are; its Save goes through the engine's pipeline like the profile form and moves the
next digest in the scheduler's plan; a time that is not one is refused under its field. Through the Slack
loopback fake, with signed requests, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import timedelta
from urllib.parse import urlencode

import aiohttp
import pytest

from bot.serve import Service
from bot.slack import SETTINGS_MODAL, SlackAdapter
from core.delivery.worker import Limits
from core.features import REGISTRY
from core.schedule.policy import plan_week
from tests.fakes import FakeSlack, serving, settled, until
from tests.test_advisers import MONDAY, person, sql
from tests.test_slack import DM, USER, Workspace, slack_settings

submissions = itertools.count(1)


@pytest.fixture
def quick(monkeypatch):
    """A faster pace than Slack's, so the whole exchange fits in a test."""
    monkeypatch.setattr(SlackAdapter, "limits", Limits(per_chat=50.0, per_bot=200.0))


def slack_adviser(engine, role: str = "adviser") -> int:
    """An adult whose chat account is Slack's USER in the DM channel DM."""
    adult = person(engine, "Rosa", "Rivera", role=role)
    sql(engine, "UPDATE chatidentity SET platform = 'slack', external_id = :u, chat_id = :c WHERE person_id = :p",
        u=USER, c=DM, p=adult)
    return adult


def fields(modal: dict) -> dict[str, str | None]:
    """Each input of the modal and the value it opens with (a menu's chosen option, a text's initial value)."""
    return {block["block_id"]: (block["element"].get("initial_option") or {}).get("value")
            or block["element"].get("initial_value") for block in modal["blocks"]}


async def submit(workspace: Workspace, modal: dict, chosen: dict[str, str | None]) -> tuple[int, dict | None]:
    """Press Save after choosing `chosen`: menus send the selected option, text inputs their value, as Slack does."""
    values = {}
    for block in modal["blocks"]:
        element, field = block["element"], block["block_id"]
        entered = ({"type": "static_select", "selected_option": {"value": chosen[field]}}
                   if element["type"] == "static_select" else {"type": element["type"], "value": chosen.get(field)})
        values[field] = {element["action_id"]: entered}
    body = {"type": "view_submission", "team": {"id": "T1"}, "user": {"id": USER}, "api_app_id": "A1",
            "trigger_id": f"trigger-settings-{next(submissions)}", "view": {**modal, "state": {"values": values}}}
    status, answer = await workspace.request(urlencode({"payload": json.dumps(body)}),
                                             "application/x-www-form-urlencoded")
    return status, json.loads(answer) if answer else None


async def open_settings(fake: FakeSlack, workspace: Workspace) -> dict:
    """Open the App Home and tap "Digest settings"; returns the modal Slack was asked to open."""
    opened = len(fake.views)
    await workspace.event({"type": "app_home_opened", "user": USER, "channel": DM, "tab": "home"})
    await until(lambda: fake.called("views.publish"))
    assert await workspace.tap_home(fake, SETTINGS_MODAL) == 200
    await until(lambda: len(fake.views) > opened)
    return fake.views[-1]


def digest_due(engine, adviser: int) -> list[str]:
    """The digest of MONDAY's week in the scheduler's plan, as UTC text (`serve` plans the real weeks too)."""
    return [str(due)[:16] for due, in sql(engine, "SELECT due_at FROM nudge WHERE person_id = :p AND kind = "
                                                  "'adviser_digest' AND due_at < :end", p=adviser,
                                          end=MONDAY + timedelta(days=7))]


def test_the_settings_modal_opens_as_it_is_and_saving_moves_the_next_digest(engine, now, quick):
    adviser = slack_adviser(engine)
    plan_week(engine, REGISTRY, MONDAY, now)
    assert digest_due(engine, adviser) == ["2026-11-23 12:30"]  # the school's default: Monday 07:30 in New York
    chosen = {"day": "wed", "at": "4:15pm", "language": "es"}

    async def scenario(fake: FakeSlack) -> tuple[dict, dict]:
        async with serving(Service(slack_settings(fake), engine)) as service, aiohttp.ClientSession() as session:
            workspace = Workspace(service.port, session)
            first = await open_settings(fake, workspace)
            assert await submit(workspace, first, chosen) == (200, None)
            await settled(engine, "slack", f"view:{first['id']}:{first['hash']}")
            assert await submit(workspace, first, chosen) == (200, None)  # Slack sends the same submission again
            await asyncio.sleep(0.3)
            return first, await open_settings(fake, workspace)

    with FakeSlack() as fake:
        first, again = asyncio.run(scenario(fake))
        texts = fake.texts(DM)
    assert first["title"]["text"] == "Digest settings" and first["submit"]["text"] == "Save"
    assert fields(first) == {"day": "mon", "at": "07:30", "language": "en"}
    assert [text for text in texts if text.startswith("Guardado")] == [
        "Guardado: tu informe llega el miércoles a las 16:15."]  # saved once, in the language just chosen
    plan_week(engine, REGISTRY, MONDAY, now)
    assert digest_due(engine, adviser) == ["2026-11-25 21:15"]  # Wednesday 16:15 in New York
    assert fields(again) == {"day": "wed", "at": "16:15", "language": "es"}
    assert again["title"]["text"] == "Ajustes del informe"


@pytest.mark.parametrize("chosen, field, error", [
    ({"day": "wed", "at": "a las nunca", "language": "en"}, "at",
     'I didn\'t catch a time. Try something like "7:30", "4pm" or "16:00".'),
    ({"day": "someday", "at": "16:00", "language": "en"}, "day",
     "Please pick one of the buttons (or type one of the options)."),
])
def test_a_bad_value_is_refused_under_its_field_and_changes_nothing(engine, now, quick, chosen, field, error):
    adviser = slack_adviser(engine)

    async def scenario(fake: FakeSlack) -> tuple[int, dict | None]:
        async with serving(Service(slack_settings(fake), engine)) as service, aiohttp.ClientSession() as session:
            workspace = Workspace(service.port, session)
            answer = await submit(workspace, await open_settings(fake, workspace), chosen)
            await asyncio.sleep(0.3)
            return answer

    with FakeSlack() as fake:
        answer = asyncio.run(scenario(fake))
        posted = fake.called("chat.postMessage")
    assert answer == (200, {"response_action": "errors", "errors": {field: error}})
    assert sql(engine, "SELECT COUNT(*) FROM chosentime WHERE person_id = :p", p=adviser) == [(0,)]
    assert posted == [] and sql(engine, "SELECT COUNT(*) FROM inbox") == [(0,)]


def test_turning_the_digest_off_needs_no_time_and_plans_none(engine, now, quick):
    adviser = slack_adviser(engine)

    async def scenario(fake: FakeSlack) -> None:
        async with serving(Service(slack_settings(fake), engine)) as service, aiohttp.ClientSession() as session:
            workspace = Workspace(service.port, session)
            modal = await open_settings(fake, workspace)
            assert await submit(workspace, modal, {"day": "off", "at": None, "language": "en"}) == (200, None)
            await settled(engine, "slack", f"view:{modal['id']}:{modal['hash']}")

    with FakeSlack() as fake:
        asyncio.run(scenario(fake))
        assert any(text.startswith("Saved: no weekly digest") for text in fake.texts(DM))
    plan_week(engine, REGISTRY, MONDAY, now)
    assert digest_due(engine, adviser) == []
