"""The mid-week check-in as dialog tables (English and Spanish, SQLite and PostgreSQL): on track, stuck with and
without a help request, done; the adviser's help-request message and marking it handled; what the digest reads."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import text

from core.domain.store import Store
from core.engine.pipeline import Engine
from core.features import REGISTRY, checkin
from tests.helpers import enrol, play
from tests.test_reflection import linked_adviser, linked_student

WEEK = date(2026, 11, 23)  # the week of `now`
GOALS = ("read 20 pages of my novel", "finish 3 algebra units", "write my essay draft")
WORDS = {
    "en": {"on_track": "@on_track", "stuck": "Stuck", "done": "@done", "obstacle": "I don't understand factoring",
           "yes": "@yes", "no": "No"},
    "es": {"on_track": "@on_track", "stuck": "Atascado", "done": "@done", "obstacle": "no entiendo factorizar",
           "yes": "@yes", "no": "No"},
}
LOCALES = tuple(WORDS)


@pytest.fixture
def conversation(engine, now):
    return Engine(Store(engine), REGISTRY, clock=lambda: now)


def sql(engine, statement: str, **params) -> list:
    with engine.begin() as db:
        result = db.execute(text(statement), params)
        return result.all() if result.returns_rows else []


def week_goals(engine, person_id: int, now, goals=GOALS) -> list[int]:
    for goal in goals:
        sql(engine, "INSERT INTO goal (person_id, week_start, text, category, status, created_at, updated_at) "
            "VALUES (:p, :w, :t, 'content_knowledge', 'open', :now, :now)", p=person_id, w=WEEK, t=goal, now=now)
    return [row[0] for row in sql(engine, "SELECT id FROM goal WHERE person_id = :p ORDER BY id", p=person_id)]


def people(conversation, engine, now, locale: str) -> tuple[Chat, int, Chat, int]:
    """A linked adviser, and a linked student (Lena) of their advisory group."""
    adviser, adviser_id = linked_adviser(conversation, engine, now)
    student, student_id = linked_student(conversation, engine, now, locale, adviser_id, given_name="Lena")
    return student, student_id, adviser, adviser_id


@pytest.mark.parametrize("locale", LOCALES)
def test_on_track_stuck_with_and_without_help_and_done(conversation, engine, now, locale):
    student, student_id, adviser, _ = people(conversation, engine, now, locale)
    goal_ids = week_goals(engine, student_id, now, (*GOALS, "practise piano 3 times"))
    w = WORDS[locale]
    transcript = play(student, [
        ("/checkin" if locale == "en" else "/revision", ["checkin/ask_status"]),
        (w["on_track"], ["checkin/ask_status"]),
        (w["stuck"], ["checkin/ask_obstacle"]),  # the label typed works like the button
        (w["obstacle"], ["checkin/ask_help"]),
        (w["yes"], ["checkin/help_sent", "checkin/ask_status"]),
        ("@stuck", ["checkin/ask_obstacle"]),
        ("no time this week", ["checkin/ask_help"]),
        (w["no"], ["checkin/no_help", "checkin/ask_status"]),
        (w["done"], ["checkin/done"]),
    ])
    assert GOALS[0] in transcript[0][0][1]
    rows = sql(engine, "SELECT goal_id, status, obstacle FROM goalcheckin WHERE person_id = :p ORDER BY id",
               p=student_id)
    assert [tuple(row) for row in rows] == [(goal_ids[0], "on_track", None), (goal_ids[1], "stuck", w["obstacle"]),
                                            (goal_ids[2], "stuck", "no time this week"), (goal_ids[3], "done", None)]
    statuses = [row[0] for row in sql(engine, "SELECT status FROM goal WHERE person_id = :p ORDER BY id", p=student_id)]
    assert statuses == ["open", "open", "open", "done"]  # done is done; the review will not ask again
    requests = sql(engine, "SELECT goal_id, text, status FROM helprequest WHERE person_id = :p", p=student_id)
    assert [tuple(row) for row in requests] == [(goal_ids[1], w["obstacle"], "open")]  # only the yes asked for help
    assert "2" in transcript[-1][0][1]  # the closing line counts the stuck goals

    # The adviser heard at once: the student, the goal and the obstacle, with a button to mark it handled.
    (template, message, buttons), = adviser.deliver()
    assert template == "checkin/help_request"
    assert "Lena" in message and GOALS[1] in message and w["obstacle"] in message
    assert buttons[0][1].startswith("/handled ")


def test_the_adviser_marks_a_help_request_handled_and_the_student_hears(conversation, engine, now):
    student, student_id, adviser, adviser_id = people(conversation, engine, now, "en")
    week_goals(engine, student_id, now, GOALS[:1])
    play(student, [("/checkin", ["checkin/ask_status"]), ("@stuck", ["checkin/ask_obstacle"]),
                   ("the book is too long", ["checkin/ask_help"]), ("@yes", ["checkin/help_sent", "checkin/done"])])
    (_, _, buttons), = adviser.deliver()
    store = Store(engine)
    with store.transaction() as tx:
        found = checkin.open_help_requests(tx, [student_id], now + timedelta(days=3))
    (request,) = found[student_id]
    assert request["goal"] == GOALS[0] and request["obstacle"] == "the book is too long" and request["age_days"] == 3

    assert [t for t, _, _ in adviser.say(buttons[0][1])] == ["checkin/handled"]
    assert [t for t, _, _ in adviser.say(buttons[0][1])] == ["checkin/handled"]  # again: already handled
    assert [t for t, _, _ in student.deliver()] == ["checkin/help_seen"]
    with store.transaction() as tx:
        assert checkin.open_help_requests(tx, [student_id]) == {student_id: []}
    actions = sql(engine, "SELECT actor_id, student_id, subject, action FROM adultaction WHERE subject = 'helprequest'")
    assert [tuple(a) for a in actions] == [(adviser_id, student_id, "helprequest", "handled")] * 2


def test_another_adviser_cannot_handle_a_request_about_someone_elses_student(conversation, engine, now):
    student, student_id, adviser, _ = people(conversation, engine, now, "en")
    week_goals(engine, student_id, now, GOALS[:1])
    play(student, [("/checkin", ["checkin/ask_status"]), ("@stuck", ["checkin/ask_obstacle"]),
                   ("stuck", ["checkin/ask_help"]), ("@yes", ["checkin/help_sent", "checkin/done"])])
    request_id = sql(engine, "SELECT id FROM helprequest")[0][0]
    other, _ = linked_adviser(conversation, engine, now, given_name="Tom")
    for attempt in (f"/handled {request_id}", "/handled 9999", "/handled soon"):
        assert [t for t, _, _ in other.say(attempt)] == ["checkin/no_such_request"]
    assert sql(engine, "SELECT status FROM helprequest") == [("open",)]


def test_a_student_whose_adviser_is_not_on_chat_still_gets_a_request_kept(conversation, engine, now):
    adviser_id, _code = enrol(engine, now, given_name="Rosa", role="adviser")  # never linked
    student, student_id = linked_student(conversation, engine, now, "en", adviser_id, given_name="Lena")
    week_goals(engine, student_id, now, GOALS[:1])
    transcript = play(student, [("/checkin", ["checkin/ask_status"]), ("@stuck", ["checkin/ask_obstacle"]),
                                ("stuck", ["checkin/ask_help"]), ("@yes", ["checkin/help_sent", "checkin/done"])])
    assert "weekly list" in transcript[-1][0][1]  # told the truth: nobody was messaged
    assert sql(engine, "SELECT status FROM helprequest") == [("open",)]


@pytest.mark.parametrize("locale", LOCALES)
def test_no_open_goal_offers_to_set_some(conversation, engine, now, locale):
    student, *_ = people(conversation, engine, now, locale)
    (template, _, buttons), = student.say("/checkin")
    assert template == "checkin/nothing" and buttons[0][1] == "/goals"


def test_the_checkin_nudge_opens_the_flow(conversation, engine, now):
    student, student_id, *_ = people(conversation, engine, now, "en")
    week_goals(engine, student_id, now, GOALS[:2])
    from core.domain.messages import Inbound
    conversation.handle(Inbound("console", "nudge:1", student.user, student.user, opens="checkin"))
    (template, text_, _), = student.deliver()
    assert template == "checkin/ask_status" and GOALS[0] in text_


@pytest.mark.parametrize("locale, said", [("en", ["going well", "im stuck", "finished"]),
                                          ("es", ["va bien", "atorado", "ya lo hice"])])
def test_typed_answers_work_like_the_buttons(conversation, engine, now, locale, said):
    student, student_id, *_ = people(conversation, engine, now, locale)
    week_goals(engine, student_id, now)
    play(student, [("/checkin", ["checkin/ask_status"]), (said[0], ["checkin/ask_status"]),
                   (said[1], ["checkin/ask_obstacle"]), ("no time", ["checkin/ask_help"]),
                   ("no", ["checkin/no_help", "checkin/ask_status"]), (said[2], ["checkin/done"])])
    assert [row[0] for row in sql(engine, "SELECT status FROM goalcheckin ORDER BY id")] == ["on_track", "stuck", "done"]
