"""Channels: what every platform module owes `serve`, Slack's 3-second acknowledgements, Telegram's webhooks."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest
from sqlalchemy import text

from bot.channel import Channel, channel_classes
from bot.serve import Service, problems
from bot.slack import SlackAdapter, profile_modal
from bot.telegram import TelegramAdapter
from core.config import Settings
from core.engine.pipeline import Engine
from tests.fakes import FakeSlack, FakeTelegram, serving, settled, until
from tests.test_slack import DM, USER, Workspace, slack_settings

SECRET = "s3cret-token_for-tests"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def slack():
    with FakeSlack() as server:
        yield server


@pytest.fixture
def telegram():
    with FakeTelegram() as server:
        yield server


def outbox(engine) -> list[tuple[str, str | None]]:
    """Every outbox row's status and error."""
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text("SELECT status, error FROM outbox ORDER BY id"))]


# -- the base every channel module implements ------------------------------------------------------


def test_serve_builds_every_configured_channel_from_one_list(engine, slack, telegram):
    assert {channel.platform for channel in channel_classes()} == {"telegram", "slack", "email"}
    assert all(issubclass(channel, Channel) for channel in channel_classes())
    both = Settings(SLACK_BOT_TOKEN=slack.token, SLACK_SIGNING_SECRET="x", SLACK_API_URL=slack.url + "/api",
                    TELEGRAM_BOT_TOKEN=telegram.token, TELEGRAM_API_URL=telegram.url)
    service = Service(both, engine)
    assert isinstance(service.telegram, TelegramAdapter) and isinstance(service.slack, SlackAdapter)
    only_slack = Service(slack_settings(slack), engine)
    assert only_slack.telegram is None and only_slack.slack is not None
    with pytest.raises(AttributeError):
        only_slack.whatsapp


@pytest.mark.parametrize("module", ["bot.telegram", "bot.slack", "bot.channel"])
def test_a_channel_module_imports_without_serve(module):
    """No cycle: a channel module stands on bot.channel, never on bot.serve."""
    script = f"import sys, {module}; assert 'bot.serve' not in sys.modules, 'bot.serve was imported'"
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert result.returncode == 0, result.stderr


# -- Slack: every request acknowledged at once -----------------------------------------------------


def test_events_and_closed_modals_the_app_does_not_act_on_are_acknowledged(engine, slack):
    async def scenario() -> list[tuple[int, float]]:
        async with serving(Service(slack_settings(slack), engine)) as service, aiohttp.ClientSession() as session:
            workspace = Workspace(service.port, session)
            answers = []
            for event in ({"type": "app_mention", "user": USER, "channel": "C1", "text": "<@UBOT> hi",
                           "ts": f"{time.time():.6f}"},
                          {"type": "reaction_added", "user": USER, "reaction": "tada",
                           "item": {"type": "message", "channel": DM, "ts": "1.0"}}):
                began = time.monotonic()
                status, _ = await workspace.event(event)
                answers.append((status, time.monotonic() - began))
            closed = {"type": "view_closed", "team": {"id": "T1"}, "user": {"id": USER}, "api_app_id": "A1",
                      "is_cleared": False, "view": {"id": "V1", "type": "modal", "callback_id": "profile_modal"}}
            began = time.monotonic()
            status = await workspace.post(urlencode({"payload": json.dumps(closed)}),
                                          "application/x-www-form-urlencoded")
            answers.append((status, time.monotonic() - began))
            return answers

    answers = asyncio.run(scenario())
    assert [status for status, _ in answers] == [200, 200, 200]
    assert max(took for _, took in answers) < 1.0


@pytest.mark.parametrize("event", [
    {"type": "app_uninstalled"},
    {"type": "tokens_revoked", "tokens": {"oauth": [], "bot": ["UBOT"]}},
], ids=["app_uninstalled", "tokens_revoked"])
def test_an_uninstall_or_a_revoked_token_is_acknowledged_logged_and_stops_sending(engine, slack, caplog, event):
    async def scenario() -> None:
        async with serving(Service(slack_settings(slack), engine)) as service, aiohttp.ClientSession() as session:
            workspace = Workspace(service.port, session)
            status, _ = await workspace.event(event)
            assert status == 200
            await until(lambda: service.slack.unusable)
            status, event_id = await workspace.dm("hello?")  # its reply is queued, and never reaches Slack
            assert status == 200
            await settled(engine, "slack", event_id)
            async with session.get(f"http://127.0.0.1:{service.port}/healthz") as response:
                assert response.status == 200  # serve carries on

    with caplog.at_level(logging.WARNING, logger="bot.slack"):
        asyncio.run(scenario())
    assert any(record.levelno == logging.WARNING and "no more messages go to Slack" in record.getMessage()
               for record in caplog.records)
    rows = outbox(engine)
    assert rows and all(status == "failed" and "not sent: the Slack" in error for status, error in rows)
    assert slack.called("chat.postMessage") == []


def test_a_revocation_of_user_tokens_only_keeps_the_bot_sending(engine, slack):
    async def scenario() -> None:
        async with serving(Service(slack_settings(slack), engine)) as service, aiohttp.ClientSession() as session:
            workspace = Workspace(service.port, session)
            status, _ = await workspace.event({"type": "tokens_revoked", "tokens": {"oauth": ["U9"], "bot": []}})
            status, event_id = await workspace.dm("hello?")
            await settled(engine, "slack", event_id)
            assert service.slack.unusable is None

    asyncio.run(scenario())
    assert {status for status, _ in outbox(engine)} == {"sent"} and slack.texts(DM)


def test_a_profile_form_from_an_account_not_linked_is_refused_in_the_form_at_once(engine, slack):
    async def scenario() -> tuple[int, dict | None, float, dict]:
        async with serving(Service(slack_settings(slack), engine)) as service, aiohttp.ClientSession() as session:
            catalog = service.conversation.catalog
            blank = dict.fromkeys(("strengths", "needs", "interests", "aim", "checkin_time"))
            view = {**profile_modal(catalog, "en", blank), "id": "V1", "hash": "1.0"}
            began = time.monotonic()
            status, answer = await Workspace(service.port, session).submit(view, {"strengths": "maths"})
            took = time.monotonic() - began
            await asyncio.sleep(0.2)
            return status, answer, took, {"strengths": catalog.text("link/need_code", "en", {})}

    status, answer, took, errors = asyncio.run(scenario())
    assert status == 200 and answer == {"response_action": "errors", "errors": errors}
    assert took < 1.0
    with engine.connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM learnerprofile")).scalar_one() == 0
    assert outbox(engine) == []


def test_a_button_whose_handling_fails_is_still_acknowledged_at_once(engine, slack, monkeypatch):
    """Bolt forgets an ack when the listener raises just after it; the adapter keeps the ack."""

    def broken(self, inbound):
        """The engine fails at once, as a database refusing connections would."""
        raise RuntimeError("database is away")

    monkeypatch.setattr(Engine, "handle", broken)
    tap = {"type": "block_actions", "trigger_id": "trigger-broken", "user": {"id": USER}, "team": {"id": "T1"},
           "api_app_id": "A1", "channel": {"id": DM}, "container": {"type": "message", "message_ts": "1.0"},
           "actions": [{"type": "button", "action_id": "choice-0", "value": "agree", "block_id": "b",
                        "action_ts": f"{time.time():.6f}"}]}

    async def scenario() -> tuple[int, float]:
        async with serving(Service(slack_settings(slack), engine)) as service, aiohttp.ClientSession() as session:
            began = time.monotonic()
            status = await Workspace(service.port, session).post(urlencode({"payload": json.dumps(tap)}),
                                                                 "application/x-www-form-urlencoded")
            return status, time.monotonic() - began

    status, took = asyncio.run(scenario())
    assert status == 200 and took < 1.0


def test_the_first_event_after_start_is_acknowledged_at_once_while_the_web_api_stalls(engine, slack):
    async def scenario() -> tuple[int, float]:
        async with serving(Service(slack_settings(slack), engine)) as service, aiohttp.ClientSession() as session:
            workspace = Workspace(service.port, session)
            slack.stall()  # auth.test answered at start-up; from now on Slack hangs
            began = time.monotonic()
            status, event_id = await workspace.dm("hi")
            took = time.monotonic() - began
            slack.unstall()
            await settled(engine, "slack", event_id)  # handled once Slack answers again
            return status, took

    status, took = asyncio.run(scenario())
    assert status == 200 and took < 0.1
    assert len(slack.called("auth.test")) == 1  # start-up's only: bolt asks for nothing per request
    assert slack.texts(DM)


# -- Telegram: plain-http webhooks for a self-hosted Bot API server ---------------------------------


def test_a_plain_http_webhook_is_accepted_only_with_a_self_hosted_bot_api_server(engine, telegram):
    token, hook = telegram.token, "http://companion.school.internal:8080/telegram/webhook"
    assert problems(Settings(TELEGRAM_BOT_TOKEN=token, TELEGRAM_WEBHOOK_URL=hook, TELEGRAM_WEBHOOK_SECRET=SECRET)) \
        == ["TELEGRAM_WEBHOOK_URL must be an https:// URL (Telegram only calls HTTPS webhooks; a self-hosted "
            "Bot API server, set by TELEGRAM_API_URL, also takes http://)"]
    settings = Settings(TELEGRAM_BOT_TOKEN=token, TELEGRAM_API_URL=telegram.url, TELEGRAM_WEBHOOK_URL=hook,
                        TELEGRAM_WEBHOOK_SECRET=SECRET, COMPANION_HTTP_PORT=0)
    assert problems(settings) == []
    assert problems(settings.model_copy(update={"telegram_webhook_url": "ftp://companion.school.internal/hook"})) \
        == ["TELEGRAM_WEBHOOK_URL must be an http:// or https:// URL"]
    update = telegram.text_update(7, "hello")

    async def scenario() -> int:
        async with serving(Service(settings, engine)) as service, aiohttp.ClientSession() as session:
            async with session.post(f"http://127.0.0.1:{service.port}/telegram/webhook", json=update,
                                    headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}) as response:
                status = response.status
            await settled(engine, "telegram", str(update["update_id"]))
            return status

    assert asyncio.run(scenario()) == 200
    assert telegram.called("setWebhook")[0]["url"] == hook and telegram.texts(7)
