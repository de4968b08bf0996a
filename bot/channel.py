"""A chat channel as `serve` and delivery see it (SPEC §7: a channel is one module).

Each channel checks its own settings, offers its HTTP routes, starts and stops, and sends the
outbox (it is delivery's `Sender`). `serve` loops over CHANNELS and names no platform, so a new
channel is its module plus one line here.
"""

from __future__ import annotations

import importlib
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Awaitable, Callable, ClassVar

from aiohttp import web

from core.config import Settings
from core.delivery.worker import Limits
from core.domain.messages import Rendered

if TYPE_CHECKING:
    from core.engine.pipeline import Engine

# Every channel, as module:class, imported only when serve needs them (each pulls in its platform's library).
CHANNELS = ("bot.telegram:TelegramAdapter", "bot.slack:SlackAdapter")
Endpoint = Callable[[web.Request], Awaitable[web.StreamResponse]]


class StartupError(Exception):
    """A configuration that cannot work, with what an operator needs to fix it."""


class Channel:
    """One chat platform: its settings, routes and lifecycle, and delivery's `Sender`."""

    platform: ClassVar[str]
    limits: ClassVar[Limits]
    needs: ClassVar[str]  # the settings that turn the channel on, for "nothing is configured"

    def __init__(self, settings: Settings, conversation: Engine, queued: Callable[[], None]):
        self.settings = settings
        self.conversation = conversation
        self.queued = queued  # called after the engine queued replies: wakes delivery

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


@cache
def channel_classes() -> tuple[type[Channel], ...]:
    """Every channel class, in CHANNELS order."""
    classes = []
    for spec in CHANNELS:
        module, name = spec.split(":")
        classes.append(getattr(importlib.import_module(module), name))
    return tuple(classes)
