"""The terminal as a chat platform: each line typed is a message, each reply is printed."""

from __future__ import annotations

import uuid
from typing import Callable, Iterable

from core.delivery import outbox
from core.engine.pipeline import Engine
from core.domain.messages import Inbound, Rendered

PLATFORM = "console"


class ConsoleChat:
    """Translates terminal lines into inbound events and prints what the outbox holds for this chat."""

    def __init__(self, engine: Engine, user: str, write: Callable[[str], None] = print):
        self.engine = engine
        self.user = user
        self.write = write
        self.shown_buttons: tuple[tuple[str, str], ...] = ()  # what is on screen, as a keyboard would be

    def resume(self) -> None:
        """Show what is waiting, and ask again the question a previous session left open."""
        self.deliver()
        self.send("/resume")

    def send(self, line: str) -> None:
        """One line from the student; a number picks the button of that number on screen."""
        line = line.strip()
        if not line:
            return
        payload = None
        if line.isdigit() and 1 <= int(line) <= len(self.shown_buttons):
            payload = self.shown_buttons[int(line) - 1][1]
        self.engine.handle(Inbound(platform=PLATFORM, event_id=uuid.uuid4().hex, sender=self.user,
                                   chat_id=self.user, text=None if payload else line, payload=payload))
        self.deliver()

    def deliver(self) -> None:
        """Print every queued message for this chat, then mark it sent."""
        now = self.engine.clock()
        for row in outbox.pending(self.engine.store, self.engine.catalog, PLATFORM, now, chat_id=self.user):
            self.show(row.message)
            outbox.mark_sent(self.engine.store, row.id, now)

    def show(self, message: Rendered) -> None:
        self.write(message.text)
        if message.buttons:
            self.write("  ".join(f"[{n}] {label}" for n, (label, _) in enumerate(message.buttons, 1)))
        self.write("")
        self.shown_buttons = message.buttons

    def run(self, lines: Iterable[str], prompt: Callable[[], str] | None = None) -> None:
        """Chat until the input ends: interactively with `prompt`, or line by line from a script."""
        if prompt is not None:
            while True:
                try:
                    self.send(prompt())
                except (EOFError, KeyboardInterrupt):
                    return
        for line in lines:
            self.send(line)

