"""Telegram (python-telegram-bot 22): updates in as Inbound events, the outbox out as messages.

The adapter translates only: a message, a `/start CODE` deep link, a photo, a document or a link
becomes an `Inbound`; a tapped inline button becomes its payload, the tap is answered and the
keyboard under it is removed so it cannot be tapped twice. The engine decides everything else.
Updates come by polling, or by webhook when TELEGRAM_WEBHOOK_URL is set (the secret token header
is checked on every request).
"""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import logging
import re
import warnings
from datetime import datetime, timedelta
from typing import Callable

from aiohttp import web
from telegram import BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, Message, MessageEntity, Update
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application, CallbackQueryHandler, ContextTypes, MessageHandler, filters
from telegram.warnings import PTBDeprecationWarning

from bot.channel import Channel, Endpoint, StartupError
from core.config import Settings
from core.delivery.worker import Blocked, CannotTell, Limits, RateLimited, Refused, Unavailable
from core.engine.pipeline import Engine
from core.domain.messages import Attachment, Inbound, Rendered
from core.render.templates import DEFAULT_LOCALE, LOCALES

PLATFORM = "telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ["message", "callback_query"]
CALLBACK_DATA_LIMIT = 64  # bytes, a Bot API limit
POLLING_BACKOFF = (0.5, 1, 2, 4, 8, 15, 30, 60)  # seconds between tries of a polled update (two minutes in all)
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
        builder = Application.builder().token(settings.telegram_bot_token)
        if settings.telegram_api_url:
            root = settings.telegram_api_url.rstrip("/")
            builder = builder.base_url(f"{root}/bot").base_file_url(f"{root}/file/bot")
        self.app = builder.build()
        self.app.add_handler(CallbackQueryHandler(self.on_button))
        self.app.add_handler(MessageHandler(filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE, self.on_message))
        self.app.add_error_handler(self.on_error)
        # Errors of the update being handled in this task: the webhook answers 500 so Telegram re-sends it.
        self.errors: contextvars.ContextVar[list] = contextvars.ContextVar("telegram_update_errors")

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
        except InvalidToken as error:
            raise StartupError(f"TELEGRAM_BOT_TOKEN was refused by the Bot API ({error})") from error
        except NetworkError as error:
            raise StartupError(f"cannot reach the Telegram Bot API at {self.app.bot.base_url}: {error}") from error
        await self.publish_commands()
        if self.webhook_mode:
            await self.app.bot.set_webhook(self.settings.telegram_webhook_url, allowed_updates=ALLOWED_UPDATES,
                                           secret_token=self.settings.telegram_webhook_secret)
        else:
            await self.app.updater.start_polling(allowed_updates=ALLOWED_UPDATES)
        await self.app.start()

    async def stop_taking_work(self) -> None:
        """Stop polling; updates already fetched are still handled by stop()."""
        if self.app.updater and self.app.updater.running:
            await self.app.updater.stop()

    async def stop(self) -> None:
        """Finish the updates in hand and close the HTTP connections."""
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
        """POST /telegram/webhook: a wrong secret is refused before anything is read or stored."""
        secret = self.settings.telegram_webhook_secret or ""
        if not hmac.compare_digest(request.headers.get(SECRET_HEADER, ""), secret):
            return web.Response(status=403)
        try:
            update = Update.de_json(await request.json(), self.app.bot)
        except ValueError:
            return web.Response(status=400)
        errors: list = []
        self.errors.set(errors)
        await self.app.process_update(update)  # handled in this task: answered only once the engine committed
        return web.Response(status=500 if errors else 200)

    async def on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A student's message: text or a command, with a photo, document or link kept as an attachment."""
        message = update.effective_message
        await self._handle(Inbound(PLATFORM, str(update.update_id), str(update.effective_user.id),
                                   str(message.chat_id), text=message.text or message.caption,
                                   attachment=attachment_of(message)))

    async def on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A tapped inline button: its payload goes to the engine, the tap is answered, the keyboard removed."""
        query = update.callback_query
        chat_id = query.message.chat.id if query.message else query.from_user.id
        await self._handle(Inbound(PLATFORM, str(update.update_id), str(query.from_user.id), str(chat_id),
                                   payload=query.data))
        try:
            await query.answer()
            if query.message:
                await query.edit_message_reply_markup(reply_markup=None)
        except BadRequest as error:  # an old query, or a keyboard already gone: the answer is stored anyway
            log.info("tap %s: %s", update.update_id, error)

    async def _handle(self, inbound: Inbound) -> None:
        """Run the engine off the event loop (it is blocking database work), then wake delivery.

        A polled update is already confirmed to Telegram and will not come again, so while polling
        a failure (the database away) is retried with backoff; updates wait in order meanwhile. A
        webhook update fails at once: the 500 makes Telegram send it again.
        """
        attempts = 1 if self.webhook_mode else len(POLLING_BACKOFF) + 1
        for attempt in range(attempts):
            try:
                await asyncio.to_thread(self.conversation.handle, inbound)
                break
            except Exception:
                if attempt + 1 == attempts:
                    raise
                log.warning("update %s failed; trying again in %ss", inbound.event_id, POLLING_BACKOFF[attempt],
                            exc_info=True)
                await asyncio.sleep(POLLING_BACKOFF[attempt])
        self.queued()

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log a failed update; a webhook request then answers 500, and Telegram delivers the update again."""
        log.error("telegram update failed", exc_info=context.error)
        self.errors.get([]).append(context.error)

    # -- messages out (core.delivery.worker.Sender) --------------------------------------------------------

    async def send(self, chat_id: str, message: Rendered, outbox_id: int) -> str:
        """sendMessage, with the Bot API's errors translated into delivery's."""
        try:
            sent = await self.app.bot.send_message(chat_id=chat_id, text=message.text,
                                                   reply_markup=keyboard(message.buttons))
        except RetryAfter as error:
            raise RateLimited(retry_after(error), str(error)) from error
        except Forbidden as error:
            raise Blocked(str(error)) from error
        except BadRequest as error:
            if "chat not found" in str(error).lower():
                raise Blocked(str(error)) from error
            raise Refused(str(error)) from error
        except TelegramError as error:  # 5xx, timeouts, connection errors
            raise Unavailable(str(error)) from error
        return str(sent.message_id)

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


def attachment_of(message: Message) -> Attachment | None:
    """A photo (largest size), a document, or the first link in the text, as evidence to keep."""
    if message.photo:
        return Attachment("photo", message.photo[-1].file_id, message.caption)
    if message.document:
        return Attachment("file", message.document.file_id, message.caption or message.document.file_name)
    for entity, text in message.parse_entities([MessageEntity.URL, MessageEntity.TEXT_LINK]).items():
        return Attachment("link", entity.url or text, message.text)
    return None


def retry_after(error: RetryAfter) -> float:
    """Seconds to wait: python-telegram-bot 22 gives an int, or a timedelta with PTB_TIMEDELTA set."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)  # the int form is deprecated; both are handled
        value = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
