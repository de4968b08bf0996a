"""A feature is one module plus its prompt folder: a toy feature written entirely in a temporary
folder, registered with COMPANION_FEATURES, shows up everywhere the registry is read — the help,
the menu, Telegram's command list, `companion flows`, `companion school show` and the nudge plan.
"""

from __future__ import annotations

import textwrap
from datetime import date

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from bot.cli import main as companion
from core.domain.store import Store
from core.engine.pipeline import Engine
from core.features import REGISTRY, registry
from core.schedule.policy import plan_week
from tests.helpers import Chat, enrol

MODULE = '''
"""A toy feature: a weekly question about a book, on the school's book day."""

from pathlib import Path

from core.domain.settings import Key, Weekday
from core.engine.flow import Flow, Step, Text
from core.engine.registry import Command, Feature, Trigger

BOOK = Flow("book", steps=(Step("title", ask="book/ask_title", expect=Text()),))

FEATURE = Feature(
    "book",
    flows=(BOOK,),
    commands=(Command("book", flow="book", menu=5),),
    triggers=(Trigger("book", day="book.day", priority=5, flow="book"),),
    settings=(Key("book.day", Weekday(), 2, "the day students are asked what they read"),),
    prompts=Path(__file__).parent / "prompts",
)
'''
PROMPTS = {"en": ("What book are you reading this week?", "Book talk", "Talk about your book", "My book"),
           "es": ("¿Qué libro lees esta semana?", "Hablar del libro", "Hablar de tu libro", "Mi libro")}


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy feature's module and prompt folder, importable as `toy_book`, named in COMPANION_FEATURES."""
    (tmp_path / "toy_book.py").write_text(textwrap.dedent(MODULE))
    for locale, (ask, menu, command, flow) in PROMPTS.items():
        folder = tmp_path / "prompts" / locale / "book"
        folder.mkdir(parents=True)
        (folder / "ask_title.j2").write_text(ask)
        (folder / "labels.toml").write_text(f'"menu.book" = "{menu}"\n"command.book" = "{command}"\n'
                                            f'"flow.book" = "{flow}"\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("COMPANION_FEATURES", "toy_book")
    return registry("toy_book")


def test_the_toy_feature_is_in_the_help_the_menu_and_telegrams_command_list(toy, engine, now):
    conversation = Engine(Store(engine), toy, clock=lambda: now)
    _, code = enrol(engine, now)
    chat = Chat(conversation, "reader")
    for says in (code, "@agree", "@en", "@keep", "art", "math", "music", "teacher", "4pm"):
        chat.say(says)
    (_, help_text, _), = chat.say("/help")
    assert "/book — Talk about your book" in help_text
    (_, _, menu), = chat.say("hello")
    assert ("Book talk", "/book") in menu
    assert ("book", "Talk about your book") in conversation.command_menu("en")
    assert ("book", "Hablar de tu libro") in conversation.command_menu("es")
    assert [t for t, _, _ in chat.say("@/book")] == ["book/ask_title"]
    assert "book" not in REGISTRY.commands  # registering is explicit: the installed registry is unchanged


def test_the_toy_feature_is_in_companion_flows_and_school_show(toy, database_url, engine, now):
    enrol(engine, now)  # a school to show
    runner = CliRunner()
    flows = runner.invoke(companion, ["--database-url", database_url, "flows", "--format", "text"])
    assert flows.exit_code == 0, flows.output
    assert "book:" in flows.output and "asks book/ask_title" in flows.output
    shown = runner.invoke(companion, ["--database-url", database_url, "school", "show"])
    assert shown.exit_code == 0, shown.output
    assert "book.day" in shown.output and "wednesday" in shown.output
    changed = runner.invoke(companion, ["--database-url", database_url, "school", "set", "book.day", "thursday"])
    assert changed.exit_code == 0, changed.output
    refused = runner.invoke(companion, ["--database-url", database_url, "school", "set", "book.day", "someday"])
    assert refused.exit_code == 1 and "book.day must be a weekday" in refused.output


def test_the_toy_feature_is_in_the_nudge_plan(toy, engine, now):
    enrol(engine, now)
    plan_week(engine, toy, date(2026, 11, 23), now)
    with engine.connect() as db:
        rows = db.execute(text("SELECT kind, due_at FROM nudge ORDER BY due_at")).all()
    kinds = [row.kind for row in rows]
    assert kinds == ["goals", "book", "review"]  # Monday, the school's book day (Wednesday), Friday
    book_due = rows[1].due_at
    assert str(book_due).startswith("2026-11-25")
