"""Rich messages both ways: one file store, files students send kept in it, images and documents sent out."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import text

from bot.console import ConsoleChat
from bot.serve import Service
from bot.slack import SlackAdapter
from bot.telegram import TelegramAdapter
from core.config import Settings
from core.delivery.worker import Limits, utc_now
from core.domain.files import DatabaseFiles, FileMissing, FolderFiles, file_store, platform_key
from core.domain.messages import FilePart, FileRef, Outbound
from core.domain.store import Store
from core.engine.pipeline import Engine
from core.features import REGISTRY
from tests.fakes import FakeSlack, FakeTelegram, serving, settled, until
from tests.helpers import enrol
from tests.test_slack import DM, USER, Workspace, slack_settings
from tests.test_telegram import STUDENT, telegram_settings

PHOTO = b"\xff\xd8\xff\xe0 a small poster, as JPEG bytes \xff\xd9"
REPORT = b"%PDF-1.4 a report card"


@pytest.fixture(params=["database", "folder"])
def location(request, tmp_path) -> str:
    """COMPANION_FILE_STORE: empty for the database, or a folder."""
    return "" if request.param == "database" else str(tmp_path / "files")


@pytest.fixture
def quick(monkeypatch):
    """A faster pace than the platforms', so a message of several parts goes out at once."""
    monkeypatch.setattr(TelegramAdapter, "limits", Limits(per_chat=50.0, per_bot=200.0))
    monkeypatch.setattr(SlackAdapter, "limits", Limits(per_chat=50.0, per_bot=200.0))


@pytest.fixture
def telegram():
    with FakeTelegram() as server:
        yield server


@pytest.fixture
def slack():
    with FakeSlack() as server:
        yield server


def artifacts(engine) -> list[tuple]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(
            "SELECT person_id, kind, ref, caption, file_key FROM artifact ORDER BY id"))]


def owner(engine, key: str) -> int | None:
    with engine.connect() as connection:
        return connection.execute(text("SELECT person_id FROM storedfile WHERE key = :key"), {"key": key}).scalar()


def put_files(engine, location: str) -> tuple[FileRef, FileRef]:
    """The school's image and document, in the file store."""
    files = file_store(location, engine)
    return files.put(PHOTO, "poster.jpg"), files.put(REPORT, "report card.pdf", "application/pdf")


def queue(engine, platform: str, chat_id: str, image: FileRef, document: FileRef) -> int:
    """One message with an image (captioned by its own template) and a document (no caption of its own)."""
    message = Outbound("commands/unknown", {"command": "poster"}, (),
                       image=FilePart(image, caption="commands/unknown"), document=FilePart(document))
    with Store(engine).transaction() as tx:
        return tx.enqueue(None, platform, chat_id, "en", message, utc_now())


def caption(command: str = "poster") -> str:
    return REGISTRY.catalog.text("commands/unknown", "en", {"command": command})


# -- the file store ------------------------------------------------------------------------------------


def test_the_file_store_round_trip_in_both_kinds(engine, location):
    files = file_store(location, engine)
    assert isinstance(files, FolderFiles if location else DatabaseFiles)
    ref = files.put(PHOTO, "poster.jpg")
    assert (ref.name, ref.mime, ref.size) == ("poster.jpg", "image/jpeg", len(PHOTO)) and len(ref.key) == 64
    assert files.read(ref.key) == PHOTO and files.ref(ref.key) == ref and files.exists(ref.key)
    assert files.put(PHOTO, "poster.jpg") == ref  # the same content is kept once
    again = file_store(location, engine)  # another process on the same database or folder
    assert again.read(ref.key) == PHOTO
    keyed = files.put(REPORT, "report.pdf", key=platform_key("telegram", "AQAD1"))
    assert keyed.key == platform_key("telegram", "AQAD1") and files.read(keyed.key) == REPORT
    assert files.delete(ref.key) and not files.exists(ref.key) and not files.delete(ref.key)
    with pytest.raises(FileMissing):
        files.read(ref.key)
    with pytest.raises(ValueError):
        files.read("../../etc/passwd")
    if location:  # written under a temporary name, then renamed: nothing half-written is left behind
        assert not [path for path in Path(location).rglob("*") if path.name.endswith(".tmp")]


# -- files a student sends -------------------------------------------------------------------------------


def test_a_photo_with_a_caption_sent_on_telegram_is_in_the_file_store(engine, now, telegram, quick,
                                                                       location):
    student, code = enrol(engine, now)
    start = telegram.text_update(STUDENT, f"/start {code}")
    photo = telegram.text_update(STUDENT, None, caption="my poster", photo=telegram.photo(PHOTO))

    async def scenario() -> None:
        async with serving(Service(telegram_settings(telegram, COMPANION_FILE_STORE=location), engine)):
            for update in (start, photo):
                telegram.push(update)
                await settled(engine, "telegram", str(update["update_id"]))

    asyncio.run(scenario())
    [(person, kind, ref, kept_caption, key)] = artifacts(engine)
    assert (person, kind, ref, kept_caption) == (student, "photo", photo["message"]["photo"][-1]["file_id"],
                                                 "my poster")
    files = file_store(location, engine)
    assert files.read(key) == PHOTO and files.ref(key).mime == "image/jpeg"
    assert owner(engine, key) == (None if location else student)
    assert [call["file_path"] for call in telegram.called("download")] == ["photos/file_0.jpg"]
    assert any("Saved to your portfolio" in said for said in telegram.texts(STUDENT))


def test_a_photo_with_a_caption_sent_on_slack_is_in_the_file_store(engine, now, slack, quick, location):
    student, _ = enrol(engine, now)
    with engine.connect() as connection:
        slack.emails[USER] = connection.execute(text("SELECT email FROM person WHERE id = :id"),
                                                {"id": student}).scalar_one()
    shared = slack.add_file(PHOTO, "poster.jpg", "image/jpeg")

    async def scenario() -> None:
        async with serving(Service(slack_settings(slack).model_copy(update={"file_store": location}), engine)) \
                as service, aiohttp.ClientSession() as session:
            workspace = Workspace(service.port, session)
            status, event_id = await workspace.dm("hi")
            await settled(engine, "slack", event_id)
            status, event_id = await workspace.event({
                "type": "message", "subtype": "file_share", "channel_type": "im", "channel": DM, "user": USER,
                "text": "my poster", "files": [shared], "ts": f"{time.time():.6f}"})
            assert status == 200
            await settled(engine, "slack", event_id)

    asyncio.run(scenario())
    [(person, kind, ref, kept_caption, key)] = artifacts(engine)
    assert (person, kind, ref, kept_caption) == (student, "photo", shared["permalink"], "my poster")
    assert file_store(location, engine).read(key) == PHOTO and key == platform_key("slack", shared["id"])
    assert owner(engine, key) == (None if location else student)
    assert [call["authorization"] for call in slack.called("download")] == [f"Bearer {slack.token}"]


def test_a_failed_download_still_delivers_the_text_and_keeps_the_platform_reference(engine, now, telegram,
                                                                                    quick, caplog):
    student, code = enrol(engine, now)
    start = telegram.text_update(STUDENT, f"/start {code}")
    photo = telegram.text_update(STUDENT, None, caption="/help", photo=telegram.photo(PHOTO))
    telegram.fail("getFile", 500)

    async def scenario() -> None:
        async with serving(Service(telegram_settings(telegram), engine)):
            for update in (start, photo):
                telegram.push(update)
                await settled(engine, "telegram", str(update["update_id"]))

    with caplog.at_level(logging.WARNING, logger="bot.telegram"):
        asyncio.run(scenario())
    assert artifacts(engine) == [(student, "photo", photo["message"]["photo"][-1]["file_id"], "/help", None)]
    assert any("could not keep the file" in record.getMessage() for record in caplog.records)
    with engine.connect() as connection:  # the caption, a command, was handled as the student's text
        templates = connection.execute(text("SELECT template FROM outbox ORDER BY id")).scalars().all()
    assert templates[templates.index("artifacts/saved") + 1] == "commands/help"


def test_a_slack_download_that_fails_keeps_the_message(engine, now, slack, quick, caplog):
    student, _ = enrol(engine, now)
    with engine.connect() as connection:
        slack.emails[USER] = connection.execute(text("SELECT email FROM person WHERE id = :id"),
                                                {"id": student}).scalar_one()
    shared = slack.add_file(PHOTO, "poster.jpg", "image/jpeg")
    slack.fail("download", 500)

    async def scenario() -> None:
        async with serving(Service(slack_settings(slack), engine)) as service, aiohttp.ClientSession() as session:
            workspace = Workspace(service.port, session)
            _, event_id = await workspace.dm("hi")
            await settled(engine, "slack", event_id)
            _, event_id = await workspace.event({
                "type": "message", "subtype": "file_share", "channel_type": "im", "channel": DM, "user": USER,
                "text": "my poster", "files": [shared], "ts": f"{time.time():.6f}"})
            await settled(engine, "slack", event_id)

    with caplog.at_level(logging.WARNING, logger="bot.slack"):
        asyncio.run(scenario())
    assert artifacts(engine) == [(student, "photo", shared["permalink"], "my poster", None)]
    assert any("could not keep the file" in record.getMessage() for record in caplog.records)


def test_the_slack_bot_token_goes_only_to_slack_file_hosts(engine, slack):
    adapter = SlackAdapter(Settings(SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s"),
                           Engine(Store(engine), REGISTRY), lambda: None)
    assert adapter.trusts("https://files.slack.com/files-pri/T1-F1/download/a.jpg")
    assert not adapter.trusts("http://files.slack.com/files-pri/T1-F1/download/a.jpg")
    assert not adapter.trusts("https://files.slack.com.evil.test/a.jpg")
    local = SlackAdapter(slack_settings(slack), Engine(Store(engine), REGISTRY), lambda: None)
    assert local.trusts(slack.url + "/files-pri/F1/a.jpg")


# -- files sent to a student -----------------------------------------------------------------------------


def test_an_image_and_a_document_reach_telegram_as_send_photo_and_send_document(engine, telegram,
                                                                               quick, location):
    image, document = put_files(engine, location)
    queue(engine, "telegram", str(STUDENT), image, document)

    async def scenario() -> None:
        async with serving(Service(telegram_settings(telegram, COMPANION_FILE_STORE=location), engine)):
            await until(lambda: telegram.texts(STUDENT))

    asyncio.run(scenario())
    shared = telegram.shared[str(STUDENT)]
    assert [(file["kind"], file["filename"], file["data"], file["caption"]) for file in shared] == [
        ("photo", "poster.jpg", PHOTO, caption()), ("document", "report card.pdf", REPORT, None)]
    assert telegram.texts(STUDENT) == [caption()]
    assert [call.method for call in telegram.calls if call.method.startswith("send")] == [
        "sendPhoto", "sendDocument", "sendMessage"]


def test_a_429_halfway_through_a_message_sends_only_the_rest_again(engine, telegram):
    image, document = put_files(engine, "")
    queue(engine, "telegram", str(STUDENT), image, document)
    telegram.fail("sendDocument", 429, retry_after=1)

    async def scenario() -> None:
        async with serving(Service(telegram_settings(telegram), engine)):
            await until(lambda: telegram.texts(STUDENT))

    asyncio.run(scenario())
    assert [file["kind"] for file in telegram.shared[str(STUDENT)]] == ["photo", "document"]
    assert len(telegram.called("sendPhoto")) == 1 and len(telegram.called("sendDocument")) == 2
    assert telegram.texts(STUDENT) == [caption()]


def test_a_file_gone_from_the_store_is_named_in_the_text_instead(engine, telegram, quick):
    image, document = put_files(engine, "")
    file_store("", engine).delete(document.key)
    queue(engine, "telegram", str(STUDENT), image, document)

    async def scenario() -> None:
        async with serving(Service(telegram_settings(telegram), engine)):
            await until(lambda: telegram.texts(STUDENT))

    asyncio.run(scenario())
    assert [file["kind"] for file in telegram.shared[str(STUDENT)]] == ["photo"]
    [said] = telegram.texts(STUDENT)
    assert said.startswith(caption()) and "report card.pdf" in said and "could not be shown" in said


def test_an_image_and_a_document_reach_slack_by_the_three_upload_calls(engine, slack, quick, location):
    image, document = put_files(engine, location)
    queue(engine, "slack", DM, image, document)

    async def scenario() -> None:
        async with serving(Service(slack_settings(slack).model_copy(update={"file_store": location}), engine)):
            await until(lambda: slack.texts(DM))

    asyncio.run(scenario())
    methods = [call.method for call in slack.calls if call.method not in ("auth.test",)]
    assert methods == ["files.getUploadURLExternal", "files.getUploadURLExternal", "upload", "upload",
                       "files.completeUploadExternal", "chat.postMessage"]
    assert [call["filename"] for call in slack.called("files.getUploadURLExternal")] == [
        "poster.jpg", "report card.pdf"]
    [complete] = slack.called("files.completeUploadExternal")
    assert complete["channel_id"] == DM
    assert [(file["name"], file["title"], file["data"]) for file in slack.shared[DM]] == [
        ("poster.jpg", caption(), PHOTO), ("report card.pdf", "report card.pdf", REPORT)]
    [posted] = slack.called("chat.postMessage")  # last, and the one that carries the outbox id
    assert posted["text"] == caption() and posted["metadata"]["event_type"] == "companion_outbox"


def test_an_upload_slack_refuses_is_named_in_the_text_instead(engine, slack, quick):
    image, document = put_files(engine, "")
    queue(engine, "slack", DM, image, document)
    slack.fail("files.getUploadURLExternal", 200, description="missing_scope")

    async def scenario() -> None:
        async with serving(Service(slack_settings(slack), engine)):
            await until(lambda: slack.texts(DM))

    asyncio.run(scenario())
    [said] = slack.texts(DM)
    assert "poster.jpg" in said and "report card.pdf" in said and not slack.shared[DM]
    with engine.connect() as connection:
        assert connection.execute(text("SELECT status FROM outbox")).scalar_one() == "sent"


def test_the_console_prints_the_saved_path_of_an_image_and_a_document(engine, tmp_path, location):
    image, document = put_files(engine, location)
    conversation = Engine(Store(engine), REGISTRY, Settings(COMPANION_FILE_STORE=location))
    lines: list[str] = []
    chat = ConsoleChat(conversation, "maria", lines.append, folder=tmp_path / "received")
    queue(engine, "console", "maria", image, document)
    chat.deliver()
    saved = [Path(line.removeprefix("📎 ").split("  ")[0]) for line in lines if line.startswith("📎 ")]
    assert [path.read_bytes() for path in saved] == [PHOTO, REPORT]
    assert all(path.parent == tmp_path / "received" for path in saved)
    assert saved[1].name.endswith("report_card.pdf") and lines[0].endswith(caption()) and caption() in lines
