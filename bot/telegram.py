"""Telegram (python-telegram-bot 22): updates in as Inbound events, the outbox out as messages.

The adapter translates only: a message, a `/start CODE` deep link, a photo, a document or a link
becomes an `Inbound`; a tapped inline button becomes its payload, the tap is answered and the
keyboard under it is removed so it cannot be tapped twice. The engine decides everything else.
A photo or document is downloaded (getFile, then the Bot API's file URL) into the file store
before the engine hears of it; if that fails, the message still goes on with Telegram's file id.
A message's image and document go out by sendPhoto and sendDocument, before its text.
Updates come by polling, or by webhook when TELEGRAM_WEBHOOK_URL is set (the secret token header
is checked on every request).

Nothing is lost between Telegram and the database. Every update is written to the inbox
(core/delivery/inbox.py: one INSERT, the translated `Inbound`) before Telegram is told it arrived,
and handled from there, each student's in order; the download of a photo or document happens then.
A webhook update is stored before the 200 (if it cannot be, the 500 makes Telegram send it again).
A polled update is stored before the poll that confirms it: python-telegram-bot's Updater confirms
updates only by the `offset` of its next getUpdates call, and it sends that call only after
`await update_queue.put(update)` has returned for every update of the batch it fetched
(`Updater.start_polling`: put them all, then `_last_update_id = last + 1`, then poll again). The
adapter gives the Application its own queue (`Arrivals`) whose `put` stores the update first, so
the confirming poll waits for the INSERT; while the database is away it waits longer (Telegram
keeps the updates meanwhile), and a process killed before the INSERT never confirmed the update.
Storing in a handler would be too late: the Application takes updates off the queue and runs the
handlers in its own task, while the Updater is already polling again. Event ids are recorded per
bot (the bot id of the token): an update id another bot token used is a new update.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import re
import warnings
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import Awaitable, Callable

from aiohttp import web
from telegram import (BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, InputFile, Message, MessageEntity,
                      Update)
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application, CallbackQueryHandler, ContextTypes
from telegram.warnings import PTBDeprecationWarning

from bot.channel import MAX_DOWNLOAD, Channel, Endpoint, StartupError, with_fallbacks
from core.config import Settings
from core.delivery.worker import Blocked, CannotTell, Limits, RateLimited, Refused, Unavailable
from core.engine.pipeline import Engine
from core.domain.files import platform_key
from core.domain.messages import Attachment, Inbound, Rendered, RenderedFile
from core.render.templates import DEFAULT_LOCALE, LOCALES

PLATFORM = "telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ["message", "callback_query"]
CALLBACK_DATA_LIMIT = 64  # bytes, a Bot API limit
CAPTION_LIMIT = 1024  # characters of a photo's or document's caption, a Bot API limit
POLLING_BACKOFF = (0.5, 1, 2, 4, 8, 15, 30, 60)  # seconds between tries to store a polled update (then each minute)
DEFAULT_API_URL = "https://api.telegram.org"
ROW_WIDTH = 30  # characters of labels per keyboard row, so short choices (1–5) share a row
TOKEN = re.compile(r"^\d+:[\w-]{20,}$")
WEBHOOK_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
log = logging.getLogger(__name__)


class TelegramAdapter(Channel):
    """One bot: its python-telegram-bot Application, the handlers, and delivery's `Sender`."""

    platform = PLATFORM
    limits = Limits(per_chat=1.0, per_bot=30.0)
    needs = "TELEGRAM_BOT_TOKEN"

    def __init__(self, settings: Settings, conversation: Engine, queued: Callable[[], None]):
        super().__init__(settings, conversation, queued)
        self.bot_id = (settings.telegram_bot_token or "").split(":")[0]  # update ids are this bot's own
        self.api_root = (settings.telegram_api_url or DEFAULT_API_URL).rstrip("/")  # without the token
        builder = Application.builder().token(settings.telegram_bot_token).update_queue(Arrivals(self.keep_polled))
        if settings.telegram_api_url:
            builder = builder.base_url(f"{self.api_root}/bot").base_file_url(f"{self.api_root}/file/bot")
        self.app = builder.build()
        self.app.add_handler(CallbackQueryHandler(self.on_button))
        self.app.add_error_handler(self.on_error)

    @classmethod
    def configured(cls, settings: Settings) -> bool:
        """A bot token turns Telegram on."""
        return bool(settings.telegram_bot_token)

    @classmethod
    def problems(cls, settings: Settings) -> list[str]:
        """A token that is not BotFather's, or a webhook Telegram would not call or that has no secret."""
        found = []
        token, webhook = settings.telegram_bot_token, settings.telegram_webhook_url
        if token and not TOKEN.match(token):
            found.append("TELEGRAM_BOT_TOKEN does not look like a BotFather token (123456789:AA…)")
        if webhook:
            if not token:
                found.append("TELEGRAM_WEBHOOK_URL is set but TELEGRAM_BOT_TOKEN is not")
            if settings.telegram_api_url:  # a self-hosted Bot API server (--local) also calls plain http
                if not webhook.startswith(("https://", "http://")):
                    found.append("TELEGRAM_WEBHOOK_URL must be an http:// or https:// URL")
            elif not webhook.startswith("https://"):
                found.append("TELEGRAM_WEBHOOK_URL must be an https:// URL (Telegram only calls HTTPS webhooks; "
                             "a self-hosted Bot API server, set by TELEGRAM_API_URL, also takes http://)")
            if not WEBHOOK_SECRET.match(settings.telegram_webhook_secret or ""):
                found.append("webhook mode needs TELEGRAM_WEBHOOK_SECRET: 1–256 characters of A–Z, a–z, 0–9, _ and -")
        return found

    @property
    def webhook_mode(self) -> bool:
        """Updates come by webhook when its URL is set, by polling otherwise."""
        return bool(self.settings.telegram_webhook_url)

    # -- lifecycle ---------------------------------------------------------------------------------

    def routes(self) -> dict[str, Endpoint]:
        """The webhook endpoint, in webhook mode only."""
        return {"/telegram/webhook": self.webhook} if self.webhook_mode else {}

    async def start(self) -> None:
        """Check the token (getMe), publish the command menu, then poll or register the webhook."""
        try:
            await self.app.initialize()
        except InvalidToken as error:  # its text, like the Bot API's URL, holds the token: neither is shown
            raise StartupError(f"TELEGRAM_BOT_TOKEN was refused by the Bot API at {self.api_root}") from error
        except NetworkError as error:
            raise StartupError(f"cannot reach the Telegram Bot API at {self.api_root}: "
                               f"{str(error).replace(self.settings.telegram_bot_token, '<token>')}") from error
        await self.publish_commands()
        if self.webhook_mode:
            await self.app.bot.set_webhook(self.settings.telegram_webhook_url, allowed_updates=ALLOWED_UPDATES,
                                           secret_token=self.settings.telegram_webhook_secret)
        else:
            await self.app.updater.start_polling(allowed_updates=ALLOWED_UPDATES)
        await self.app.start()

    async def stop_taking_work(self) -> None:
        """Stop polling; the updates fetched are in the inbox already (its worker handles them)."""
        if self.app.updater and self.app.updater.running:
            await self.app.updater.stop()

    async def stop(self) -> None:
        """Answer the taps in hand and close the HTTP connections."""
        await self.stop_taking_work()
        if self.app.running:
            await self.app.stop()
        await self.app.shutdown()

    async def publish_commands(self) -> None:
        """The command menu in every language, from the feature registry: the default for all, the others by code."""
        for locale in LOCALES:
            commands = [BotCommand(name, description) for name, description in self.conversation.command_menu(locale)]
            await self.app.bot.set_my_commands(commands, language_code=None if locale == DEFAULT_LOCALE else locale)

    # -- updates in --------------------------------------------------------------------------------

    async def webhook(self, request: web.Request) -> web.Response:
        """POST /telegram/webhook: a wrong secret is refused before anything is read or stored; the update
        is answered 200 once it is in the inbox, 500 when it could not be stored (Telegram sends it again)."""
        secret = self.settings.telegram_webhook_secret or ""
        if not hmac.compare_digest(request.headers.get(SECRET_HEADER, ""), secret):
            return web.Response(status=403)
        try:
            update = Update.de_json(await request.json(), self.app.bot)
        except ValueError:
            return web.Response(status=400)
        try:
            await self.keep_update(update)
        except Exception:
            log.exception("update %s could not be stored: answered 500, so Telegram sends it again",
                          update.update_id)
            return web.Response(status=500)
        self.app.update_queue.put_nowait(update)  # stored already (not through Arrivals.put): a tap is answered
        return web.Response(status=200)

    async def keep_update(self, update: Update) -> None:
        """Store the update in the inbox if the bot acts on it; raises when it could not be stored."""
        kept = inbound_of(update)
        if kept is not None:
            inbound, extra = kept
            await self.keep(inbound, self.bot_id, extra)

    async def keep_polled(self, update: Update) -> None:
        """A polled update, before the poll that confirms it: stored, or tried again until it is (the
        Updater, and so the confirming poll, waits; Telegram keeps the update meanwhile)."""
        for attempt in itertools.count():
            try:
                await self.keep_update(update)
                return
            except Exception:
                pause = POLLING_BACKOFF[min(attempt, len(POLLING_BACKOFF) - 1)]
                log.warning("update %s could not be stored; polling waits %ss and tries again", update.update_id,
                            pause, exc_info=True)
                await asyncio.sleep(pause)

    async def prepare(self, inbound: Inbound, extra: dict) -> Inbound:
        """Before the engine hears of an update from the inbox: its photo or document copied into the file store."""
        if extra.get("file"):
            inbound = replace(inbound, attachment=await self.download(extra["file"], inbound.attachment,
                                                                      inbound.chat_id))
        return inbound

    async def download(self, source: dict, attachment: Attachment | None, chat_id: str) -> Attachment | None:
        """A photo or document copied into the file store, with its caption; a failure is logged and the
        attachment keeps Telegram's file id only, so the student's message is never lost."""
        if attachment is None:
            return attachment
        if source.get("size") and source["size"] > MAX_DOWNLOAD:
            log.warning("file of update in chat %s is %s bytes: not downloaded", chat_id, source["size"])
            return attachment
        try:
            file = await self.app.bot.get_file(source["file_id"])
            data = bytes(await file.download_as_bytearray())
            if len(data) > MAX_DOWNLOAD:
                raise ValueError(f"{len(data)} bytes")
            name = source.get("name") or PurePosixPath(file.file_path).name
            stored = await self.keep_file(data, name or "file", source.get("mime"),
                                          platform_key(PLATFORM, source["unique_id"]))
        except Exception as error:  # the Bot API, the network or the store: the message goes on without the copy
            log.warning("could not keep the file %s from chat %s: %s", source["file_id"], chat_id, error,
                        exc_info=not isinstance(error, TelegramError))
            return attachment
        return replace(attachment, file=stored)

    async def on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A tapped inline button (its payload is in the inbox already): the tap is answered, the keyboard removed."""
        query = update.callback_query
        try:
            await query.answer()
            if query.message:
                await query.edit_message_reply_markup(reply_markup=None)
        except BadRequest as error:  # an old query, or a keyboard already gone: the answer is stored anyway
            log.info("tap %s: %s", update.update_id, error)

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log a failed tap answer; the update itself is in the inbox and handled from there."""
        log.error("telegram update failed", exc_info=context.error)

    # -- messages out (core.delivery.worker.Sender) --------------------------------------------------------

    async def send(self, chat_id: str, message: Rendered, outbox_id: int) -> str:
        """sendPhoto and sendDocument for the files not sent yet, then sendMessage with the keyboard;
        the Bot API's errors translated into delivery's."""
        markup = keyboard(message.buttons)  # refused before anything goes out
        done = self.sent_parts.of(outbox_id) if message.files else {}
        try:
            for kind, part in message.files:
                if kind not in done:
                    done[kind] = await self._send_file(chat_id, kind, part)
            sent = await self.app.bot.send_message(chat_id=chat_id, text=with_fallbacks(message.text, done),
                                                   reply_markup=markup)
        except RetryAfter as error:
            raise RateLimited(retry_after(error), str(error)) from error
        except Forbidden as error:
            raise Blocked(str(error)) from error
        except BadRequest as error:
            if chat_not_found(error):
                raise Blocked(str(error)) from error
            raise Refused(str(error)) from error
        except TelegramError as error:  # 5xx, timeouts, connection errors
            raise Unavailable(str(error)) from error
        self.sent_parts.finish(outbox_id)
        return str(sent.message_id)

    async def _send_file(self, chat_id: str, kind: str, part: RenderedFile) -> str | None:
        """sendPhoto or sendDocument: None once sent, or the fallback sentence when the file is gone
        from the store or Telegram refuses it (too large, not an image it can show)."""
        data = await self.read_file(part)
        if data is None:
            return part.fallback
        upload = InputFile(data, filename=part.file.name)
        caption = part.caption[:CAPTION_LIMIT] if part.caption else None
        try:
            if kind == "image":
                await self.app.bot.send_photo(chat_id=chat_id, photo=upload, caption=caption)
            else:
                await self.app.bot.send_document(chat_id=chat_id, document=upload, caption=caption)
        except BadRequest as error:
            if chat_not_found(error):
                raise
            log.warning("Telegram refused the %s %s: %s; its fallback caption goes instead", kind, part.file.name,
                        error)
            return part.fallback
        return None

    async def find_sent(self, chat_id: str, outbox_id: int, since: datetime) -> str | None:
        """The Bot API cannot list a bot's own messages: whether it arrived is unknowable."""
        raise CannotTell()


def keyboard(buttons: tuple[tuple[str, str], ...]) -> InlineKeyboardMarkup | None:
    """Inline keyboard rows: short labels share a row, long ones get their own."""
    if not buttons:
        return None
    rows: list[list[InlineKeyboardButton]] = [[]]
    width = 0
    for label, payload in buttons:
        if len(payload.encode()) > CALLBACK_DATA_LIMIT:
            raise Refused(f"button payload over {CALLBACK_DATA_LIMIT} bytes: {payload!r}")
        if rows[-1] and width + len(label) > ROW_WIDTH:
            rows.append([])
            width = 0
        rows[-1].append(InlineKeyboardButton(label, callback_data=payload))
        width += len(label)
    return InlineKeyboardMarkup(rows)


class Arrivals(asyncio.Queue):
    """The Application's update queue, which every polled update enters: `put` stores it in the inbox first.

    The Updater awaits `put` for each update it fetched before it confirms them with its next poll
    (see the module's docstring), so what Telegram forgets is always stored.
    """

    def __init__(self, keep: Callable[[Update], Awaitable[None]]):
        super().__init__()
        self.keep = keep

    async def put(self, item: object) -> None:
        if isinstance(item, Update):
            await self.keep(item)
        await super().put(item)


def inbound_of(update: Update) -> tuple[Inbound, dict | None] | None:
    """An update the bot acts on (a private message, a tapped button), translated without asking Telegram
    anything, with the file `TelegramAdapter.prepare` downloads when it is handled; None for the rest."""
    if update.callback_query is not None:
        query = update.callback_query
        chat_id = query.message.chat.id if query.message else query.from_user.id
        return Inbound(PLATFORM, str(update.update_id), str(query.from_user.id), str(chat_id), payload=query.data,
                       locale=query.from_user.language_code), None
    message = update.message
    if message is None or message.chat.type != "private" or message.from_user is None:
        return None
    inbound = Inbound(PLATFORM, str(update.update_id), str(message.from_user.id), str(message.chat_id),
                      text=message.text or message.caption, attachment=attachment_of(message),
                      locale=message.from_user.language_code)
    source = message.photo[-1] if message.photo else message.document
    if inbound.attachment is None or source is None:
        return inbound, None
    file = {"file_id": source.file_id, "unique_id": source.file_unique_id, "size": source.file_size,
            "name": None if message.photo else message.document.file_name,
            "mime": "image/jpeg" if message.photo else message.document.mime_type}
    return inbound, {"file": {key: value for key, value in file.items() if value is not None}}


def attachment_of(message: Message) -> Attachment | None:
    """A photo (largest size), a document, or the first link in the text, as evidence to keep."""
    if message.photo:
        return Attachment("photo", message.photo[-1].file_id, message.caption)
    if message.document:
        return Attachment("file", message.document.file_id, message.caption or message.document.file_name)
    for entity, text in message.parse_entities([MessageEntity.URL, MessageEntity.TEXT_LINK]).items():
        return Attachment("link", entity.url or text, message.text)
    return None


def chat_not_found(error: BadRequest) -> bool:
    return "chat not found" in str(error).lower()


def retry_after(error: RetryAfter) -> float:
    """Seconds to wait: python-telegram-bot 22 gives an int, or a timedelta with PTB_TIMEDELTA set."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)  # the int form is deprecated; both are handled
        value = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
