"""The engine's promises: exactly-once handling, one transaction per event, safe linking, safety alerts."""

from __future__ import annotations

import json
import math
import threading
from datetime import date, timedelta

import pytest
from sqlalchemy import text

from core.features import REGISTRY
from core.engine.pipeline import Engine
from core.domain.messages import Inbound, Outbound
from core.domain.store import Store
from tests.helpers import Chat, enrol, play

TABLES = ("inboundevent", "conversation", "goal", "outbox", "learnerprofile", "chatidentity", "auditlog",
          "safetyalert")


def snapshot(engine) -> dict:
    """Row counts and conversation versions: what a repeated event must not change."""
    with engine.connect() as db:
        counts = {table: db.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar() for table in TABLES}
        versions = db.execute(text("SELECT person_id, state, version FROM conversation ORDER BY person_id")).all()
    return {"counts": counts, "versions": [tuple(v) for v in versions]}


@pytest.fixture
def conversation(engine, now):
    return Engine(Store(engine), REGISTRY, clock=lambda: now)


def linked(conversation, engine, now, user="s1") -> Chat:
    _, code = enrol(engine, now)
    chat = Chat(conversation, user)
    chat.say(code)
    return chat


def test_the_same_event_twice_changes_nothing(conversation, engine, now):
    chat = linked(conversation, engine, now)
    chat.say("@agree", event_id="tap-1")
    before = snapshot(engine)
    assert chat.say("@en", event_id="tap-1") == []  # a platform retry of the same event
    assert snapshot(engine) == before
    assert [t for t, _, _ in chat.say("@en", event_id="tap-2")] == ["profile/ask_timezone"]


def test_a_failing_event_leaves_no_trace(conversation, engine, now, monkeypatch):
    chat = linked(conversation, engine, now)
    before = snapshot(engine)

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("core.features.profile.records.set_person", explode)
    with pytest.raises(RuntimeError):
        chat.say("@agree", event_id="boom")
    assert snapshot(engine) == before  # not even the event id: the retry will be handled
    monkeypatch.undo()
    assert [t for t, _, _ in chat.say("@agree", event_id="boom")] == ["profile/ask_language"]


def test_group_commit_handles_each_event_as_if_alone(conversation, engine, now, monkeypatch):
    first, second = linked(conversation, engine, now, "a"), linked(conversation, engine, now, "b")
    events = [Inbound("console", "a-x", "a", "a", payload="agree"),
              Inbound("console", "b-x", "b", "b", payload="agree"),
              Inbound("console", "a-x", "a", "a", payload="agree"),  # duplicate inside the batch
              Inbound("console", "a-y", "a", "a", payload="en")]
    conversation.handle_many(events)
    assert [t for t, _, _ in first.deliver()] == ["profile/ask_language", "profile/ask_timezone"]
    assert [t for t, _, _ in second.deliver()] == ["profile/ask_language"]


def test_group_commit_retries_a_failing_event_alone(conversation, engine, now, monkeypatch):
    first, second = linked(conversation, engine, now, "a"), linked(conversation, engine, now, "b")
    original = Engine._handle
    calls = []

    def flaky(self, tx, inbound, priority=0):
        calls.append(inbound.event_id)
        if inbound.event_id == "b-x" and calls.count("b-x") == 1:
            raise RuntimeError("transient")
        return original(self, tx, inbound, priority)

    monkeypatch.setattr(Engine, "_handle", flaky)
    conversation.handle_many([Inbound("console", "a-x", "a", "a", payload="agree"),
                              Inbound("console", "b-x", "b", "b", payload="agree")])
    assert calls == ["a-x", "b-x", "b-x"]
    assert [t for t, _, _ in first.deliver()] == ["profile/ask_language"]
    assert [t for t, _, _ in second.deliver()] == ["profile/ask_language"]


def test_a_lost_update_is_retried_on_fresh_state(conversation, engine, now, monkeypatch):
    chat = linked(conversation, engine, now)
    from core.domain import store as store_module

    original = store_module.Tx.save_conversation
    raced = []

    def racing(self, sender, moment):
        if not raced:  # another worker bumps the version between our read and our write
            raced.append(True)
            self.execute("UPDATE conversation SET version = version + 1 WHERE person_id = ?", (sender.person_id,))
        return original(self, sender, moment)

    monkeypatch.setattr(store_module.Tx, "save_conversation", racing)
    # The bump above happens inside our own transaction, so the write sees a changed version,
    # raises ConcurrentUpdate, rolls back, and the event is handled again from the start.
    assert [t for t, _, _ in chat.say("@agree")] == ["profile/ask_language"]
    assert raced == [True]


def test_an_invite_code_works_once(conversation, engine, now):
    _, code = enrol(engine, now)
    play(Chat(conversation, "first"), [(code, ["link/welcome", "onboarding/consent"])])
    play(Chat(conversation, "second"), [(code, ["link/bad_code"])])


def test_an_expired_invite_code_is_refused(engine, now):
    _, code = enrol(engine, now)
    later = Engine(Store(engine), REGISTRY, clock=lambda: now + timedelta(days=31))
    play(Chat(later, "late"), [(code.lower(), ["link/bad_code"])])


def test_guessing_codes_is_rate_limited(conversation, engine, now):
    _, code = enrol(engine, now)
    chat = Chat(conversation, "guesser")
    play(chat, [(f"GUESS-{n:04d}", ["link/bad_code"]) for n in range(5)])
    play(chat, [(code, ["link/too_many"])])  # even the right code waits out the hour
    chat.engine = Engine(Store(engine), REGISTRY, clock=lambda: now + timedelta(hours=1, minutes=1))
    play(chat, [(code, ["link/welcome", "onboarding/consent"])])


def test_slack_links_by_roster_email(conversation, engine, now):
    person_id, _ = enrol(engine, now, given_name="Dee")
    with engine.connect() as db:
        email = db.execute(text("SELECT email FROM person WHERE id = :id"), {"id": person_id}).scalar()
    conversation.handle(Inbound("slack", "ev1", "U1", "D1", text="hi", email=email.upper()))
    with engine.connect() as db:
        assert db.execute(text("SELECT person_id FROM chatidentity WHERE external_id = 'U1'")).scalar() == person_id


# Each message with the help its concern calls for (issue 9: resources fit the category).
@pytest.mark.parametrize("message, resource", [("I want to kill myself", "988"), ("nobody cares, I can’t go on", "988"),
                                               ("no tengo comida en casa", "211"), ("my dad hits me", "1-800-422-4453")])
def test_crisis_language_alerts_the_adviser_at_once(conversation, engine, now, message, resource):
    adviser_id, adviser_code = enrol(engine, now, given_name="Ms Rivera", role="adviser")
    _, code = enrol(engine, now, given_name="Eli", adviser_id=adviser_id)
    adviser = Chat(conversation, "adviser")
    adviser.say(adviser_code)
    _, counselor_code = enrol(engine, now, given_name="Mr Okafor", role="counselor")
    counselor = Chat(conversation, "counselor")
    counselor.say(counselor_code)
    student = Chat(conversation, "eli")
    play(student, [(code, ["link/welcome", "onboarding/consent"]), ("@agree", ["profile/ask_language"])])
    replies = student.say(message)
    assert [t for t, _, _ in replies] == ["safety/support"]
    assert resource in replies[0][1]
    for adult in (adviser, counselor):
        (template, alert, _), = adult.deliver()
        assert template == "safety/alert" and "Eli" in alert and message in alert
    with engine.connect() as db:
        assert db.execute(text("SELECT COUNT(*) FROM safetyalert")).scalar() >= 1
        assert db.execute(text("SELECT COUNT(*) FROM auditlog WHERE action = 'safety_alert'")).scalar() == 1
        state, kept = db.execute(text("SELECT state, stack FROM conversation c JOIN chatidentity i "
                                      "ON i.person_id = c.person_id WHERE i.external_id = 'eli'")).one()
    # Stack rule: a crisis sets every flow aside, answers kept, and nothing is asked about it now.
    assert state is None and [(f["flow"], f["state"]) for f in json.loads(kept)["aside"]] == [("onboarding", "language")]


def test_two_workers_racing_on_one_student_lose_no_answer(engine, now):
    """Two processes' worth of engines answer the same student at once: every answer lands once, in order."""
    workers = [Engine(Store(engine), REGISTRY, clock=lambda: now) for _ in range(2)]
    chat = linked(workers[0], engine, now, "racer")
    play(chat, [("@agree", ["profile/ask_language"]), ("@en", ["profile/ask_timezone"]),
                ("@keep", ["profile/ask_strengths"])])
    answers = ["first answer", "second answer", "third answer", "fourth answer"]
    barrier = threading.Barrier(2)

    def work(worker: Engine, mine: list[str]) -> None:
        barrier.wait()
        for says in mine:
            worker.handle(Inbound("console", f"race-{says}", "racer", "racer", text=says))

    threads = [threading.Thread(target=work, args=(workers[0], answers[0::2])),
               threading.Thread(target=work, args=(workers[1], answers[1::2]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with engine.connect() as db:
        profile = db.execute(text("SELECT strengths, needs, interests, aim FROM learnerprofile")).one()
        state = db.execute(text("SELECT state FROM conversation c JOIN chatidentity i ON i.person_id = c.person_id "
                                "WHERE i.external_id = 'racer'")).scalar()
    assert sorted(profile) == sorted(answers)  # each answer stored exactly once, none lost
    assert state == "checkin_time"


def test_a_conversation_left_in_a_step_that_no_longer_exists_starts_clean(conversation, engine, now):
    chat = linked(conversation, engine, now, "old")
    with engine.begin() as db:  # as if an upgrade renamed the step this student was waiting at
        db.execute(text("UPDATE conversation SET flow = 'goals', state = 'renamed_step', "
                        "stack = '{\"aside\": [{\"flow\": \"gone\", \"state\": \"x\", \"answers\": {}, \"at\": \"2026-11-23T13:00:00+00:00\"}]}'"))
    assert [t for t, _, _ in chat.say("hello")] == ["commands/menu"]
    assert [t for t, _, _ in chat.say("/resume")] == ["commands/menu"]


def test_shared_evidence_is_kept_for_the_goal_under_review(conversation, engine, now):
    from core.domain.messages import Attachment

    chat = linked(conversation, engine, now, "artist")
    play(chat, [("@agree", ["profile/ask_language"]), ("@en", ["profile/ask_timezone"]), ("@keep", [
        "profile/ask_strengths"]), ("/goals", ["goals/ask_goal"]), ("draw 3 sketches by Friday", ["goals/ask_category"]),
        ("@habits_of_success", ["goals/ask_outcome"]), ("a portfolio", ["goals/ask_obstacle"]),
        ("I put it off", ["goals/ask_plan"]), ("start at 4pm", ["goals/ask_confidence"]),
        ("@4", ["goals/saved", "goals/ask_another"]), ("@no", ["goals/summary", "commands/resuming",
                                                               "profile/ask_strengths"]),
        ("/review", ["review/ask_status"])])
    conversation.handle(Inbound("console", "photo-1", "artist", "artist",
                                attachment=Attachment("photo", "file-123", "my sketch")))
    replies = chat.deliver()
    assert [t for t, _, _ in replies] == ["artifacts/saved", "review/ask_status"]
    assert "draw 3 sketches by Friday" in replies[0][1]
    with engine.connect() as db:
        artifact = db.execute(text("SELECT a.kind, a.ref, a.caption, g.text FROM artifact a "
                                   "JOIN goal g ON g.id = a.goal_id")).one()
    assert tuple(artifact) == ("photo", "file-123", "my sketch", "draw 3 sketches by Friday")


def test_crisis_resources_come_in_the_students_language_unless_the_school_sets_its_own(engine, now):
    spanish = Chat(Engine(Store(engine), REGISTRY, clock=lambda: now), "ana")
    _, code = enrol(engine, now)
    play(spanish, [(code, ["link/welcome", "onboarding/consent"]), ("@agree", ["profile/ask_language"]),
                   ("@es", ["profile/ask_timezone"])])
    (_, support, _), = spanish.say("ya no quiero vivir")
    assert "marca 2 para español" in support
    with Store(engine).transaction() as tx:  # the school's own resources replace the built-in ones
        REGISTRY.settings.set(tx, 1, "safety_resources.suicidal_ideation", "call Ms Lee at 555-0100", now)
    (_, support, _), = spanish.say("quiero morir")
    assert "call Ms Lee at 555-0100" in support


def test_crisis_words_before_linking_still_get_support_at_once(conversation, engine, now):
    stranger = Chat(conversation, "stranger")
    (template, support, _), = stranger.say("I want to kill myself")
    assert template == "safety/support" and "988" in support and "adviser" not in support
    with engine.connect() as db:
        assert db.execute(text("SELECT COUNT(*) FROM auditlog WHERE action = 'safety_unlinked'")).scalar() == 1


# -- forms pass the same pipeline as messages ------------------------------------------------------


def onboarded_student(conversation, engine, now, user="eli"):
    adviser_id, adviser_code = enrol(engine, now, given_name="Ms Rivera", role="adviser")
    _, code = enrol(engine, now, given_name="Eli", adviser_id=adviser_id)
    adviser = Chat(conversation, f"adviser-of-{user}")
    adviser.say(adviser_code)
    adviser.deliver()
    student = Chat(conversation, user)
    for says in (code, "@agree", "@en", "@keep", "art", "math", "music", "teacher", "4pm"):
        student.say(says)
    return student, adviser


def test_crisis_words_in_the_profile_form_alert_the_adviser(conversation, engine, now):
    student, adviser = onboarded_student(conversation, engine, now)
    conversation.submit_form("console", "eli", "form-1", "profile", {"needs": "I want to die", "checkin_time": "5pm"})
    assert [t for t, _, _ in student.deliver()] == ["safety/support", "profile/saved"]
    (template, alert, _), = adviser.deliver()
    assert template == "safety/alert" and "I want to die" in alert
    with engine.connect() as db:  # the student's words are kept too: nothing they wrote is lost
        assert db.execute(text("SELECT needs, checkin_time FROM learnerprofile")).one() == ("I want to die", "17:00")


def test_a_stopped_student_cannot_save_the_profile_form(conversation, engine, now):
    student, _ = onboarded_student(conversation, engine, now)
    student.say("/stop")
    conversation.submit_form("console", "eli", "form-1", "profile", {"strengths": "changed"})
    assert [t for t, _, _ in student.deliver()] == ["commands/stopped"]
    with engine.connect() as db:
        assert db.execute(text("SELECT strengths FROM learnerprofile")).scalar() == "art"


def test_a_form_submitted_twice_is_saved_once(conversation, engine, now):
    student, _ = onboarded_student(conversation, engine, now)
    for _ in range(2):
        conversation.submit_form("console", "eli", "form-1", "profile", {"aim": "doctor"})
    assert [t for t, _, _ in student.deliver()] == ["profile/saved"]


def test_what_the_fast_json_cannot_write_is_kept_all_the_same(conversation, engine, now):
    """A number past 64 bits a student typed, NaN, dates: orjson refuses the first two; they are stored anyway."""
    chat = linked(conversation, engine, now)
    with conversation.store.transaction() as tx:
        sender = tx.sender(chat.platform, chat.user)
        sender.answers = {"pages": 10 ** 30, "ratio": float("nan"), "due": date(2026, 11, 27)}
        tx.save_conversation(sender, now)
        tx.enqueue(sender.person_id, chat.platform, sender.chat_id, "en",
                   Outbound("goals/saved", {"due": date(2026, 11, 27), "at": now}), now)
    with conversation.store.transaction() as tx:
        answers = tx.sender(chat.platform, chat.user).answers
        context = json.loads(tx.one("SELECT context FROM outbox ORDER BY id DESC LIMIT 1")[0])
    assert answers["pages"] == 10 ** 30 and math.isnan(answers["ratio"]) and answers["due"] == "2026-11-27"
    assert context == {"due": "2026-11-27", "at": str(now)}  # as json.dumps(default=str) writes them
