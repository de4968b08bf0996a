"""Test helpers: a student on the roster with an invite code, and dialog tables."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Callable

import click
from click.testing import CliRunner
from sqlalchemy import Engine
from sqlmodel import Session

from core.delivery import outbox
from core.engine.pipeline import Engine as ConversationEngine
from core.features import REGISTRY
from core.domain.messages import Inbound
from core.domain.models import AdvisoryGroup, AdvisoryMember, InviteCode, Person, School

_ids = itertools.count(1)


def enrol(engine: Engine, now: datetime, given_name: str = "Ana", role: str = "student",
          school_timezone: str = "America/New_York", adviser_id: int | None = None) -> tuple[int, str]:
    """Put a person on the roster with a fresh invite code; returns (person id, code)."""
    n = next(_ids)
    with Session(engine) as session:
        school = session.get(School, 1) or School(id=1, sourced_id="school-1", name="Test School",
                                                   timezone=school_timezone)
        session.add(school)
        session.flush()
        person = Person(sourced_id=f"p-{n}", school_id=school.id, role=role, given_name=given_name,
                        family_name=f"Test{n}", email=f"{given_name.lower()}{n}@school.test")
        session.add(person)
        session.flush()
        code = f"CODE-{n:04d}"
        session.add(InviteCode(code=code, person_id=person.id, created_at=now, expires_at=now + timedelta(days=30)))
        if adviser_id is not None:
            group = AdvisoryGroup(sourced_id=f"g-{n}", school_id=school.id, title="Advisory")
            session.add(group)
            session.flush()
            session.add(AdvisoryMember(group_id=group.id, person_id=adviser_id, role="adviser"))
            session.add(AdvisoryMember(group_id=group.id, person_id=person.id, role="student"))
        session.commit()
        return person.id, code



@dataclass
class Clock:
    """A clock the test moves by hand (the engine's and the scheduler's `clock`)."""

    now: datetime

    def __call__(self) -> datetime:
        """The moment the test set."""
        return self.now

@dataclass
class Chat:
    """One chat account talking to the engine; keeps the transcript of templates and texts."""

    engine: ConversationEngine
    user: str
    platform: str = "console"
    events: itertools.count = field(default_factory=lambda: itertools.count(1))
    last_buttons: tuple = ()
    locale: str | None = None  # the language the chat app reports for this account (Telegram's language_code)

    def say(self, text: str | None = None, payload: str | None = None, event_id: str | None = None) -> list:
        """Send one message (text, or a button payload when it starts with @); returns the replies."""
        if text is not None and text.startswith("@"):
            text, payload = None, text[1:]
        event_id = event_id or f"{self.user}-{next(self.events)}"
        self.engine.handle(Inbound(self.platform, event_id, self.user, self.user, text=text, payload=payload,
                                   locale=self.locale))
        return self.deliver()

    def deliver(self) -> list:
        """Render and mark sent what the outbox holds for this chat: [(template, text, buttons)]."""
        store, catalog, now = self.engine.store, self.engine.catalog, self.engine.clock()
        replies = []
        with store.transaction() as tx:
            rows = tx.all("SELECT id, template, locale, context, buttons FROM outbox WHERE chat_id = ? "
                          "AND platform = ? AND status = 'pending' ORDER BY priority, id", (self.user, self.platform))
        for outbox_id, template, locale, context, buttons in rows:
            rendered = outbox.render(catalog, template, locale, context, buttons)
            replies.append((template, rendered.text, rendered.buttons))
            outbox.mark_sent(store, outbox_id, now)
        return replies


def play(chat: Chat, table: list[tuple[str, list[str]]]) -> list:
    """Run a dialog table: each row is what the student says and the templates the bot answers with."""
    transcript = []
    for says, expected in table:
        replies = chat.say(says)
        assert [template for template, _, _ in replies] == expected, (says, replies)
        transcript.append(replies)
    return transcript


def cli(engine: Engine, register: Callable) -> Callable:
    """A `companion`-like command group with the commands `register` adds, on the test database and the
    installed features; calling it runs one command line and gives click's result."""
    @click.group()
    @click.pass_context
    def main(ctx: click.Context) -> None:
        """The test's stand-in for `companion`."""
        ctx.obj = SimpleNamespace(engine=engine, registry=REGISTRY)

    register(main, lambda ctx: ctx.obj)
    return lambda *args: CliRunner().invoke(main, list(args))
