"""Safety alerts an adult answers (SPEC §2, issue 9): the student's support goes first and fits the
concern, a crisis message is never an answer, and an alert nobody acknowledges goes to the school's
escalation contacts — administrators in chat and e-mail through a real (local) SMTP server — once
per window, until someone says "I'm on it".
"""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import timedelta

import pytest
from aiosmtpd.smtp import SMTP
from sqlalchemy import text

from bot.email import EmailChannel
from core.config import Settings
from core.delivery.worker import Delivery
from core.domain.messages import FormData, Inbound
from core.domain.models import Role
from core.domain.store import Store
from core.engine.pipeline import Engine
from core.features import REGISTRY
from core.schedule.escalation import escalate_due
from tests.helpers import Chat, enrol, play

CRISIS = {"en": "I want to kill myself", "es": "ya no quiero vivir"}
ONBOARDED = ["@agree", "@en", "@keep", "art", "math", "music", "teacher", "4pm"]
CONTENT = ("goal", "goalreview", "reflection", "learnerprofile", "artifact")


@pytest.fixture
def conversation(engine, clock):
    return Engine(Store(engine), REGISTRY, clock=clock)


def linked(conversation, engine, now, name, role="student", adviser_id=None, onboard=True) -> tuple[Chat, int]:
    person_id, code = enrol(engine, now, given_name=name, role=role, adviser_id=adviser_id)
    chat = Chat(conversation, f"{role}-{person_id}")
    chat.say(code)
    if role == "student" and onboard:
        for says in ONBOARDED:
            chat.say(says)
    chat.deliver()
    return chat, person_id


def outbox(engine) -> list[tuple]:
    with engine.connect() as db:
        return db.execute(text("SELECT id, chat_id, template FROM outbox ORDER BY id")).all()


def counts(engine) -> dict[str, int]:
    with engine.connect() as db:
        return {table: db.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar() for table in CONTENT}


# -- the student: support first, fitting the concern, never an answer --------------------------------


def test_the_students_support_is_queued_before_any_alert(conversation, engine, now):
    adviser, adviser_id = linked(conversation, engine, now, "Ms Rivera", role="adviser")
    student, _ = linked(conversation, engine, now, "Eli", adviser_id=adviser_id)
    student.say("my dad hits me when he drinks")
    rows = [row for row in outbox(engine) if row.template in ("safety/support", "safety/alert")]
    assert [row.template for row in rows] == ["safety/support", "safety/alert"]
    assert rows[0].chat_id == student.user and rows[1].chat_id == adviser.user


@pytest.mark.parametrize("locale", ["en", "es"])
def test_a_crisis_at_every_step_of_every_flow_is_never_an_answer(conversation, engine, now, locale):
    """Every student step of every registered flow, so the features to come are covered too."""
    student, person_id = linked(conversation, engine, now, "Eli", onboard=False)
    adults_only = {c.flow for c in REGISTRY.commands.values() if c.flow and Role.student not in c.roles}
    steps = [(flow.name, step) for flow in REGISTRY.flows.values() if flow.name not in adults_only
             for step in flow.by_name]
    assert len(steps) > 20
    for n, (flow_name, step) in enumerate(steps):
        with engine.begin() as db:  # the student waits at this step
            db.execute(text("UPDATE conversation SET flow = :flow, state = :state, answers = '{}', stack = NULL "
                            "WHERE person_id = :id"), {"flow": flow_name, "state": step, "id": person_id})
            db.execute(text("UPDATE person SET locale = :locale WHERE id = :id"), {"locale": locale, "id": person_id})
        before = counts(engine)
        replies = student.say(CRISIS[locale], event_id=f"crisis-{n}")
        assert [template for template, _, _ in replies] == ["safety/support"], (flow_name, step, replies)
        assert "988" in replies[0][1]
        assert counts(engine) == before, (flow_name, step)  # nothing stored as an answer
        with engine.connect() as db:
            flow_now, kept = db.execute(text("SELECT flow, stack FROM conversation WHERE person_id = :id"),
                                        {"id": person_id}).one()
        assert flow_now is None and [(frame["flow"], frame["state"]) for frame in json.loads(kept)["aside"]] == [
            (flow_name, step)], (flow_name, step)  # set aside, not asked


@pytest.mark.parametrize("situation", ["paused", "stopped"])
def test_support_reaches_a_paused_or_stopped_student_at_once(conversation, engine, now, situation):
    student, person_id = linked(conversation, engine, now, "Eli")
    student.say("/pause next friday" if situation == "paused" else "/stop")
    student.deliver()
    (template, support, _), = student.say("nobody would even notice if i disappeared")
    assert template == "safety/support" and "988" in support


def test_the_profile_form_is_screened_too(conversation, engine, now):
    adviser, adviser_id = linked(conversation, engine, now, "Ms Rivera", role="adviser")
    student, person_id = linked(conversation, engine, now, "Eli", adviser_id=adviser_id)
    conversation.handle(Inbound("console", "form-1", student.user, student.user,
                                form=FormData("profile", {"needs": "we have no food at home since friday"})))
    templates = [template for template, _, _ in student.deliver()]
    assert templates[0] == "safety/support"
    (template, alert, buttons), = adviser.deliver()
    assert template == "safety/alert" and "no food" in alert and buttons[0][1].startswith("/onit ")


@pytest.mark.parametrize("message, resource", [
    ("i keep cutting my arms", "988"), ("mi padrastro me pega y tengo miedo de volver a casa", "1-800-422-4453"),
    ("theyre all laughing at me every day i cant take it anymore", "counselor"),
    ("a kid said hes bringing a gun to school tomorrow", "911"),
    ("we sleep in the car since last month", "211")])
def test_resources_fit_what_the_student_wrote(conversation, engine, now, message, resource):
    student, _ = linked(conversation, engine, now, "Eli")
    (template, support, _), = student.say(message)
    assert template == "safety/support" and resource in support


def test_the_student_is_told_only_what_is_true(conversation, engine, now):
    student, _ = linked(conversation, engine, now, "Eli")  # no adviser, counselor or administrator in chat
    (_, support, _), = student.say("I want to kill myself")
    assert "adviser" not in support and "adult you trust" in support


# -- the adults: "I'm on it", escalation each window ---------------------------------------------------


class Mailbox:
    """A local SMTP server on a free port (port 0), keeping every message it receives."""

    def __init__(self):
        self.messages: list[tuple[list[str], str]] = []
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(5)

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            self.loop.create_server(lambda: SMTP(self), "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    async def handle_DATA(self, server, session, envelope):
        """Keep the message: who it was for, and its text."""
        self.messages.append((list(envelope.rcpt_tos), envelope.content.decode("utf-8", "replace")))
        return "250 OK"

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def mailbox():
    box = Mailbox()
    yield box
    box.close()


def send_mail(engine, settings: Settings, conversation: Engine) -> None:
    """Deliver the queued e-mail through the e-mail channel."""
    channel = EmailChannel(settings, conversation, lambda: None)

    async def drain():
        await Delivery(Store(engine), conversation.catalog, [channel]).drain(timeout=20)

    asyncio.run(drain())


def school_escalates_to(engine, now, address: str) -> None:
    with Store(engine).transaction() as tx:
        REGISTRY.settings.set(tx, 1, "safety.escalation_emails", address, now)


def test_an_unanswered_alert_goes_to_the_escalation_contacts_once_per_window_until_acknowledged(
        engine, clock, now, mailbox):
    settings = Settings(COMPANION_SMTP_URL=f"smtp://127.0.0.1:{mailbox.port}/?from=alerts@school.test")
    conversation = Engine(Store(engine), REGISTRY, settings, clock=clock)
    adviser, adviser_id = linked(conversation, engine, now, "Ms Rivera", role="adviser")
    principal, _ = linked(conversation, engine, now, "Dr Chen", role="admin")
    student, _ = linked(conversation, engine, now, "Eli", adviser_id=adviser_id)
    school_escalates_to(engine, now, "counselors@school.test")
    student.say("i have a plan to end it tonight")
    assert [t for t, _, _ in adviser.deliver()] == ["safety/alert"]
    store = Store(engine)
    clock.now = now + timedelta(minutes=14)
    assert escalate_due(store, REGISTRY, clock.now, emails=True) == 0  # the window has not passed
    clock.now = now + timedelta(minutes=15)
    assert escalate_due(store, REGISTRY, clock.now, emails=True) == 1
    assert escalate_due(store, REGISTRY, clock.now, emails=True) == 0  # once per window
    (template, reminder, buttons), = principal.deliver()
    assert template == "safety/alert" and "reminder 1" in reminder and "Eli" in reminder
    send_mail(engine, settings, conversation)
    (recipients, mail), = mailbox.messages
    assert recipients == ["counselors@school.test"] and "i have a plan to end it tonight" in mail
    clock.now = now + timedelta(minutes=30)
    assert escalate_due(store, REGISTRY, clock.now, emails=True) == 1  # again, the next window
    assert "reminder 2" in principal.deliver()[0][1]
    play(principal, [(buttons[0][1], ["safety/acknowledged"])])  # "I'm on it"
    clock.now = now + timedelta(hours=2)
    assert escalate_due(store, REGISTRY, clock.now, emails=True) == 0  # acknowledged: no more
    with engine.connect() as db:
        actions = db.execute(text("SELECT action FROM adultaction ORDER BY id")).scalars().all()
        logged = db.execute(text("SELECT action FROM auditlog WHERE action LIKE 'safety%' ORDER BY id")).scalars().all()
    assert actions == ["escalated", "escalated", "on_it"]
    assert logged == ["safety_alert", "safety_escalated", "safety_escalated", "safety_on_it"]


def test_an_alert_stays_open_until_someone_records_what_was_done(conversation, engine, now):
    adviser, adviser_id = linked(conversation, engine, now, "Ms Rivera", role="adviser")
    student, _ = linked(conversation, engine, now, "Eli", adviser_id=adviser_id)
    student.say("I want to kill myself")
    (_, _, buttons), = adviser.deliver()
    (_, _, next_buttons), = adviser.say(buttons[0][1])
    (_, listing, _), = adviser.say("/students")
    play(adviser, [(next_buttons[0][1], ["safety/ask_what_was_done"]),
                   ("called her mother, counselor meets her at 8", ["safety/resolved"])])
    with engine.connect() as db:
        closed, = db.execute(text("SELECT closed_at FROM safetyalert")).one()
        note = db.execute(text("SELECT note FROM adultaction WHERE action = 'resolved'")).scalar()
    assert closed is not None and note.startswith("called her mother")


def test_an_adult_cannot_act_on_another_advisers_student(conversation, engine, now):
    adviser, adviser_id = linked(conversation, engine, now, "Ms Rivera", role="adviser")
    other, _ = linked(conversation, engine, now, "Mr Diaz", role="adviser")
    student, _ = linked(conversation, engine, now, "Eli", adviser_id=adviser_id)
    student.say("I want to kill myself")
    (_, _, buttons), = adviser.deliver()
    assert [t for t, _, _ in other.say(buttons[0][1])] == ["safety/no_such_alert"]


def test_with_no_adviser_in_chat_the_escalation_contacts_get_it_at_once(conversation, engine, clock, now):
    adviser_id, adviser_code = enrol(engine, now, given_name="Ms Rivera", role="adviser")  # not linked yet
    principal, _ = linked(conversation, engine, now, "Dr Chen", role="admin")
    student, _ = linked(conversation, engine, now, "Eli", adviser_id=adviser_id)
    (_, support, _), = student.say("I want to kill myself")
    assert "adults in charge at your school" in support  # not "your adviser": they were not told yet
    assert escalate_due(Store(engine), REGISTRY, now, emails=False) == 1
    assert [t for t, _, _ in principal.deliver()] == ["safety/alert"]
    adviser = Chat(conversation, "late-adviser")
    replies = adviser.say(adviser_code)
    assert "safety/alert" in [template for template, _, _ in replies]  # it waited for the adviser


def test_two_workers_escalate_each_alert_once(engine, now, clock, database_url):
    conversation = Engine(Store(engine), REGISTRY, clock=clock)
    adviser, adviser_id = linked(conversation, engine, now, "Ms Rivera", role="adviser")
    principal, _ = linked(conversation, engine, now, "Dr Chen", role="admin")
    for n in range(20):
        student, _ = linked(conversation, engine, now, f"S{n}", adviser_id=adviser_id)
        student.say("I want to kill myself")
    later = now + timedelta(minutes=16)
    sent: list[int] = []
    barrier = threading.Barrier(2)

    def worker():
        barrier.wait()
        while went := escalate_due(Store(engine), REGISTRY, later, emails=False, limit=3):
            sent.append(went)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(sent) == 20
    with engine.connect() as db:
        assert db.execute(text("SELECT COUNT(*) FROM outbox WHERE template = 'safety/alert' "
                               "AND chat_id = :chat"), {"chat": principal.user}).scalar() == 20


def test_an_adult_who_left_the_roster_gets_no_alert(conversation, engine, now):
    counselor, counselor_id = linked(conversation, engine, now, "Mr Okafor", role="counselor")
    with engine.begin() as db:
        db.execute(text("UPDATE person SET left_on = '2026-11-01' WHERE id = :id"), {"id": counselor_id})
    student, _ = linked(conversation, engine, now, "Eli")
    (_, support, _), = student.say("I want to kill myself")
    assert counselor.deliver() == [] and "counselor" not in support
