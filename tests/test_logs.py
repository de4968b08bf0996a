"""Logs that keep secrets: no line holds a student's words or a token, at any level, any logger's."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import httpx
import pytest

from bot import logs
from bot.serve import Service, StartupError
from core.config import Settings
from tests.fakes import FakeSlack, FakeTelegram, free_port, outbox_statuses, wait_for
from tests.helpers import enrol
from tests.test_inbox import healthy, rows
from tests.test_slack import SIGNING_SECRET, USER, Workspace

CANARY = "zebracanary"
ROOT = Path(__file__).resolve().parents[1]
TOKEN = "123456789:AAFakeTokenForLoopbackTests_0123"
SECRET_PART = TOKEN.split(":")[1]
SCRIPT = """
import logging
logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
from bot.serve import serve
from core.config import Settings
from core.domain.db import make_engine
settings = Settings()
serve(settings, make_engine(settings.database_url))
"""


@pytest.fixture
def captured():
    """Every record of every logger at DEBUG, formatted as a handler prints it, with the filter installed."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    logs.install(Settings(TELEGRAM_BOT_TOKEN=TOKEN, SLACK_BOT_TOKEN="xoxb-1234-abcd", SLACK_SIGNING_SECRET="s3cretsigning",
                          COMPANION_DATABASE_URL="postgresql://companion:dbpassword42@db.test/companion"))
    try:
        yield stream
    finally:
        logs.uninstall()
        root.removeHandler(handler)
        root.setLevel(level)


def emit(name: str, level: int, message: str, *args, exc_info=None) -> None:
    """A record as `name` makes it (through the record factory), whatever level that logger was left at."""
    logger = logging.getLogger(name)
    logger.handle(logger.makeRecord(name, level, __file__, 0, message, args, exc_info))


def test_the_libraries_lines_lose_their_bodies_and_every_line_its_tokens(captured):
    emit("slack_sdk.web.async_base_client", logging.DEBUG,
         "Sending a request - url: https://slack.test/api/chat.postMessage, query_params: {}, "
         f"body_params: {{'channel': 'D1', 'text': 'you wrote {CANARY}'}}, files: {{}}, json_body: None, "
         "headers: {'Authorization': 'Bearer xoxb-1234-abcd'}")
    emit("slack_sdk.web.async_base_client", logging.DEBUG,
         f"Received the following response - status: 200, headers: {{}}, body: {{'ok': True, 'text': '{CANARY}'}}")
    emit("slack_bolt.AsyncApp", logging.INFO,
         f"Invalid request signature detected (signature: v0=1, timestamp: 1, body: token=x&text={CANARY})")
    emit("slack_bolt.AsyncApp", logging.WARNING,
         f"Unhandled request ({{'type': 'event_callback', 'event': {{'text': '{CANARY}'}}}})")
    emit("telegram.Bot", logging.DEBUG, "Calling Bot API endpoint `%s` with parameters `%s`", "sendMessage",
         {"chat_id": 1, "text": CANARY})
    emit("telegram.ext.Application", logging.DEBUG, "Processing update %s", object())
    emit("httpx", logging.INFO, 'HTTP Request: %s %s "%s %d %s"', "POST",
         httpx.URL(f"https://api.telegram.org/bot{TOKEN}/getMe"), "HTTP/1.1", 200, "OK")
    try:
        raise RuntimeError(f"could not reach https://api.telegram.org/bot{TOKEN}/getMe with xoxb-1234-abcd")
    except RuntimeError:
        emit("telegram.ext.Updater", logging.ERROR, "polling failed", exc_info=sys.exc_info())
    emit("bot.channel", logging.WARNING, "connecting to postgresql://companion:dbpassword42@db.test with %s",
         "s3cretsigning")
    emit("a_library.engine", logging.INFO, "[generated in %s] %r", "0.0001s", ("Ana", CANARY))
    try:
        raise ValueError("new row violates check constraint\nDETAIL:  Failing row contains (1, zebracanary).")
    except ValueError:
        emit("core.delivery.inbox", logging.ERROR, "inbox row %s failed", 1, exc_info=sys.exc_info())

    printed = captured.getvalue()
    assert CANARY not in printed and SECRET_PART not in printed and "abcd" not in printed
    assert "dbpassword42" not in printed and "s3cretsigning" not in printed
    assert "chat.postMessage" in printed and "sendMessage" in printed and "Invalid request signature" in printed
    assert "123456789:[redacted]/getMe" in printed and "polling failed" in printed and "RuntimeError" in printed
    assert "inbox row 1 failed" in printed and "ValueError: new row violates check constraint" in printed
    assert "[generated in 0.0001s] '<tuple>'" in printed


def test_an_unreachable_bot_api_is_reported_without_the_token(engine, captured):
    settings = Settings(TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_API_URL=f"http://127.0.0.1:{free_port()}",
                        COMPANION_HTTP_PORT=0)
    with pytest.raises(StartupError) as raised:
        asyncio.run(Service(settings, engine).run(asyncio.Event()))
    message = str(raised.value)
    assert message.startswith("cannot reach the Telegram Bot API at http://127.0.0.1:")
    assert SECRET_PART not in message and SECRET_PART not in captured.getvalue()


def test_a_run_at_debug_level_logs_no_students_words_and_no_token(engine, now, tmp_path):
    """`serve` as a school runs it, every logger at DEBUG, both platforms, a forged and a stale Slack request."""
    slack_student, _ = enrol(engine, now, given_name="Bea")
    _, code = enrol(engine, now, given_name="Cy")
    with FakeSlack() as slack, FakeTelegram(TOKEN) as telegram:
        slack.emails[USER] = rows(engine, "SELECT email FROM person WHERE id = :id", id=slack_student)[0][0]
        port = free_port()
        log_file = tmp_path / "serve.log"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "COMPANION_HTTP_PORT": str(port),
               "COMPANION_DATABASE_URL": engine.url.render_as_string(hide_password=False),
               "SLACK_BOT_TOKEN": slack.token, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
               "SLACK_API_URL": slack.url + "/api", "TELEGRAM_BOT_TOKEN": telegram.token,
               "TELEGRAM_API_URL": telegram.url}
        with log_file.open("w") as output:
            process = subprocess.Popen([sys.executable, "-c", SCRIPT], env=env, stdout=output, stderr=output)
        try:
            wait_for(lambda: healthy(port))
            for update in (telegram.text_update(7, f"/start {code}"), telegram.text_update(7, f"/{CANARY}"),
                           telegram.text_update(7, f"my {CANARY} words"),
                           telegram.text_update(7, None, caption=f"{CANARY} poster",
                                                photo=[{"file_id": "gone", "file_unique_id": "g", "width": 9,
                                                        "height": 9}])):
                telegram.push(update)

            async def on_slack() -> None:
                async with aiohttp.ClientSession() as session:
                    workspace = Workspace(port, session)
                    assert (await workspace.dm("hi"))[0] == 200
                    assert (await workspace.command(CANARY))[0] == 200
                    assert (await workspace.dm(f"I love {CANARY}s"))[0] == 200
                    assert (await workspace.dm(f"forged {CANARY}", secret="not-the-secret"))[0] == 401
                    assert (await workspace.dm(f"stale {CANARY}", timestamp=int(time.time()) - 600))[0] == 401

            asyncio.run(on_slack())
            wait_for(lambda: rows(engine, "SELECT COUNT(*) FROM inboundevent") == [(7,)]
                     and set(outbox_statuses(engine)) == {"sent"})
            process.send_signal(signal.SIGTERM)
            assert process.wait(30) == 0
        finally:
            process.kill()
        assert any(CANARY in said for said in telegram.texts(7))  # the words did travel: the replies quote them
        assert any(CANARY in said for said in slack.texts("D1"))
    printed = log_file.read_text()
    assert len(printed.splitlines()) > 50  # DEBUG from the libraries too
    assert "Invalid request signature" in printed and "Calling Bot API endpoint" in printed
    assert "HTTP Request: POST" in printed and "123456789:[redacted]" in printed
    assert CANARY not in printed.lower()
    assert SECRET_PART not in printed and slack.token not in printed and SIGNING_SECRET not in printed
