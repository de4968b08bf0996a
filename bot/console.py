"""The terminal as a chat platform: each line typed is a message, each reply is printed.

A message's image or document is copied from the file store into a folder (by default
`<temp>/companion-chat/<user>/`) and its path is printed, with its caption.
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from pathlib import Path
from typing import Callable, Iterable

from core.delivery import outbox
from core.domain.files import FileMissing, file_store
from core.engine.pipeline import Engine
from core.domain.messages import Inbound, Rendered, RenderedFile

PLATFORM = "console"


class ConsoleChat:
    """Translates terminal lines into inbound events and prints what the outbox holds for this chat."""

    def __init__(self, engine: Engine, user: str, write: Callable[[str], None] = print,
                 folder: str | Path | None = None):
        self.engine = engine
        self.user = user
        self.write = write
        self.shown_buttons: tuple[tuple[str, str], ...] = ()  # what is on screen, as a keyboard would be
        self.folder = Path(folder) if folder else Path(tempfile.gettempdir()) / "companion-chat" / safe_name(user)
        self.files = file_store(engine.settings.file_store, engine.store.engine)

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
                                   chat_id=self.user, text=None if payload else line, payload=payload,
                                   locale=os.environ.get("LC_ALL") or os.environ.get("LANG")))
        self.deliver()

    def deliver(self) -> None:
        """Print every queued message for this chat, then mark it sent."""
        now = self.engine.clock()
        for row in outbox.pending(self.engine.store, self.engine.catalog, PLATFORM, now, chat_id=self.user):
            self.show(row.message)
            outbox.mark_sent(self.engine.store, row.id, now)

    def show(self, message: Rendered) -> None:
        for _, part in message.files:
            self.write(self.save(part))
        self.write(message.text)
        if message.buttons:
            self.write("  ".join(f"[{n}] {label}" for n, (label, _) in enumerate(message.buttons, 1)))
        self.write("")
        self.shown_buttons = message.buttons

    def save(self, part: RenderedFile) -> str:
        """Copy a file of the message into the folder: the line to print (its path and caption, or its fallback)."""
        try:
            data = self.files.read(part.file.key)
        except FileMissing:
            return part.fallback
        path = self.folder / f"{part.file.key[:12]}-{safe_name(part.file.name)}"
        self.folder.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return f"📎 {path}" + (f"  {part.caption}" if part.caption else "")

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



def safe_name(name: str) -> str:
    """A file name that stays inside its folder, whatever a person or platform called the file."""
    return re.sub(r"[^\w.-]", "_", Path(name).name).lstrip(".") or "file"
