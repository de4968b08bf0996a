"""A chat channel as `serve` and delivery see it (SPEC §7: a channel is one module).

Each channel checks its own settings, offers its HTTP routes, starts and stops, and sends the
outbox (it is delivery's `Sender`). `serve` loops over CHANNELS and names no platform, so a new
channel is its module plus one line here.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections import OrderedDict
from datetime import datetime
from functools import cache, cached_property
from typing import TYPE_CHECKING, Awaitable, Callable, ClassVar

from aiohttp import web

from core.config import Settings
from core.delivery.inbox import InboxWorker
from core.delivery.worker import Limits
from core.domain.files import FileMissing, FileStore, file_store
from core.domain.messages import FileRef, Inbound, Rendered, RenderedFile

if TYPE_CHECKING:
    from core.engine.pipeline import Engine

# Every channel, as module:class, imported only when serve needs them (each pulls in its platform's library).
CHANNELS = ("bot.telegram:TelegramAdapter", "bot.slack:SlackAdapter", "bot.email:EmailChannel")
Endpoint = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_DOWNLOAD = 20 * 1024 * 1024  # bytes of a file a person sends that are kept (the Bot API's getFile limit)
log = logging.getLogger(__name__)


class StartupError(Exception):
    """A configuration that cannot work, with what an operator needs to fix it."""


class Channel:
    """One chat platform: its settings, routes and lifecycle, and delivery's `Sender`."""

    platform: ClassVar[str]
    limits: ClassVar[Limits]
    needs: ClassVar[str]  # the settings that turn the channel on, for "nothing is configured"
    chat: ClassVar[bool] = True  # people write in on it (e-mail only carries alerts out)

    def __init__(self, settings: Settings, conversation: Engine, queued: Callable[[], None]):
        self.settings = settings
        self.conversation = conversation
        self.queued = queued  # called after the engine queued replies: wakes delivery
        self.sent_parts = SentParts()

    @cached_property
    def inbox(self) -> InboxWorker:
        """Where every event is stored before the platform is told it arrived; `serve` sets its worker's."""
        return InboxWorker(self.conversation)

    async def keep(self, inbound: Inbound, bot: str, extra: dict | None = None) -> None:
        """Store an event in the inbox (one INSERT, nothing slow), before the platform hears it arrived.

        `bot` is the bot or workspace it came through (event ids are per bot); `extra` is what
        `prepare` fetches when the event is handled. Raises when it could not be stored: the channel
        then refuses the event (HTTP 500) so the platform sends it again, or waits before confirming it.
        """
        await self.inbox.store(inbound, bot, extra)

    async def prepare(self, inbound: Inbound, extra: dict) -> Inbound:
        """An event taken from the inbox, completed from `extra` before the engine hears of it (a file
        downloaded, …); raising tries it again later. The inbox worker's `Preparer`."""
        return inbound

    @cached_property
    def files(self) -> FileStore:
        """The file store (COMPANION_FILE_STORE): where downloads go and files to send come from."""
        return file_store(self.settings.file_store, self.conversation.store.engine)

    async def keep_file(self, data: bytes, name: str, mime: str | None, key: str) -> FileRef:
        """Store a file a person sent, before the engine hears of it."""
        return await asyncio.to_thread(self.files.put, data, name, mime, key=key)

    async def read_file(self, part: RenderedFile) -> bytes | None:
        """The bytes of a file to send, or None when the store has none (the channel sends the fallback)."""
        try:
            return await asyncio.to_thread(self.files.read, part.file.key)
        except FileMissing:
            log.warning("file %s (%s) is not in the file store: sending its fallback caption", part.file.key,
                        part.file.name)
            return None

    # -- configuration (before anything starts) ----------------------------------------------------

    @classmethod
    def configured(cls, settings: Settings) -> bool:
        """Whether `settings` turn this channel on."""
        raise NotImplementedError

    @classmethod
    def problems(cls, settings: Settings) -> list[str]:
        """What is wrong with this channel's settings, configured or half-configured."""
        return []

    # -- lifecycle ---------------------------------------------------------------------------------

    def routes(self) -> dict[str, Endpoint]:
        """The POST endpoints this channel serves, by path."""
        return {}

    async def start(self) -> None:
        """Check the credentials with the platform and begin taking work; StartupError if that fails."""

    async def stop_taking_work(self) -> None:
        """Take no new work (stop polling); called before the HTTP listener closes."""

    async def stop(self) -> None:
        """Finish the work in hand and close connections; called after delivery stopped."""

    # -- messages out (core.delivery.worker.Sender) ----------------------------------------------

    async def send(self, chat_id: str, message: Rendered, outbox_id: int) -> str:
        """Send `message`; returns the platform's message id, or raises delivery's errors."""
        raise NotImplementedError

    async def find_sent(self, chat_id: str, outbox_id: int, since: datetime) -> str | None:
        """The id of a message for `outbox_id` that already arrived, or None; `CannotTell` if unknowable."""
        raise NotImplementedError


class SentParts:
    """The files of each outbox row a platform already took, in this process.

    A row goes out as several calls (its files, then the text). When a later call fails (a 429, a
    5xx) delivery retries the whole row; the channel then skips what was accepted. A file the
    platform refused is remembered with the fallback sentence the text then carries. Bounded: the
    oldest rows are forgotten first.
    """

    def __init__(self, limit: int = 10_000):
        self.limit = limit
        self.rows: OrderedDict[int, dict[str, str | None]] = OrderedDict()

    def of(self, outbox_id: int) -> dict[str, str | None]:
        """kind → None (sent) or the fallback sentence (refused), for `outbox_id`."""
        done = self.rows.setdefault(outbox_id, {})
        self.rows.move_to_end(outbox_id)
        while len(self.rows) > self.limit:
            self.rows.popitem(last=False)
        return done

    def finish(self, outbox_id: int) -> None:
        """The row went out whole."""
        self.rows.pop(outbox_id, None)


def with_fallbacks(text: str, done: dict[str, str | None]) -> str:
    """The message's text followed by the sentences of the files that could not be shown."""
    return "\n\n".join([text, *(fallback for fallback in done.values() if fallback)])


@cache
def channel_classes() -> tuple[type[Channel], ...]:
    """Every channel class, in CHANNELS order."""
    classes = []
    for spec in CHANNELS:
        module, name = spec.split(":")
        classes.append(getattr(importlib.import_module(module), name))
    return tuple(classes)
