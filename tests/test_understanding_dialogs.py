"""Whole conversations as students really type them, in English and Spanish, on SQLite and PostgreSQL:
language before consent, typed answers at button steps, goals edited instead of replaced, vague goals,
the week's goals to edit, delete or mark done, the review's end, double taps, /stop, invite codes.

A row's message starting with "@" is a button tap (its payload); anything else is typed text.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import text

from core.domain.messages import Attachment, Inbound
from core.domain.store import Store
from core.engine.flow import Choice, Flow, Step
from core.engine.pipeline import Engine
from core.engine.registry import Command, Feature
from core.features import REGISTRY
from tests.helpers import Chat, Clock, enrol, play

SPANISH_ONBOARDING = [
    ("¡hola!", ["link/need_code"]),
    (None, ["link/welcome", "onboarding/ask_language"]),  # the code: the language first, in Spanish
    ("sí", ["onboarding/consent"]),  # typed, not tapped; the consent follows in Spanish, once
    ("acepto", ["profile/ask_timezone"]),
    ("vivo en la ciudad de méxico", ["profile/timezone_check"]),
    ("si", ["profile/ask_strengths"]),
    ("dibujar", ["profile/ask_needs"]), ("los ensayos", ["profile/ask_interests"]),
    ("robots", ["profile/ask_aim"]), ("ingeniera", ["profile/ask_checkin_time"]),
    ("5 de la tarde", ["onboarding/done"]),
]


@pytest.fixture
def conversation(engine, now):
    return Engine(Store(engine), REGISTRY, clock=lambda: now)


def spanish_student(conversation, engine, now) -> tuple[Chat, int]:
    person_id, code = enrol(engine, now)
    chat = Chat(conversation, f"es-{person_id}", locale="es-MX")  # Telegram's language_code
    play(chat, [(says if says is not None else code, expected) for says, expected in SPANISH_ONBOARDING])
    return chat, person_id


def english_student(conversation, engine, now, user: str = "en") -> tuple[Chat, int]:
    person_id, code = enrol(engine, now)
    chat = Chat(conversation, f"{user}-{person_id}", locale="en")
    play(chat, [(code, ["link/welcome", "onboarding/consent"]), ("yeah", ["profile/ask_language"]),
                ("english", ["profile/ask_timezone"]), ("keep", ["profile/ask_strengths"]),
                ("art", ["profile/ask_needs"]), ("math", ["profile/ask_interests"]), ("music", ["profile/ask_aim"]),
                ("teacher", ["profile/ask_checkin_time"]), ("5", ["onboarding/done"])])
    return chat, person_id


def person(engine, person_id: int):
    with engine.connect() as db:
        return db.execute(text("SELECT p.locale, p.timezone, p.consent_at, l.checkin_time FROM person p "
                               "JOIN learnerprofile l ON l.person_id = p.id WHERE p.id = :id"),
                          {"id": person_id}).one()


def goals_of(engine, person_id: int) -> list:
    with engine.connect() as db:
        return db.execute(text("SELECT text, due_on, plan, confidence, status FROM goal WHERE person_id = :id "
                               "ORDER BY id"), {"id": person_id}).all()


def as_date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def test_a_spanish_speaker_chooses_spanish_before_the_consent_and_is_asked_once(conversation, engine, now):
    chat, person_id = spanish_student(conversation, engine, now)
    stored = person(engine, person_id)
    assert stored.locale == "es" and stored.timezone == "America/Mexico_City" and stored.consent_at is not None
    assert stored.checkin_time == "17:00"  # "5 de la tarde"


def test_an_english_speaker_types_every_answer_and_a_bare_hour_is_the_afternoon(conversation, engine, now):
    _, person_id = english_student(conversation, engine, now)
    stored = person(engine, person_id)
    assert stored.locale == "en" and stored.timezone == "America/New_York" and stored.checkin_time == "17:00"


def test_language_changes_at_any_time(conversation, engine, now):
    chat, person_id = english_student(conversation, engine, now)
    transcript = play(chat, [("/language", ["profile/ask_language"]), ("spanish", ["profile/language_set"])])
    assert "español" in transcript[1][0][1].lower()
    assert person(engine, person_id).locale == "es"


@pytest.mark.parametrize("language", ["en", "es"])
def test_a_goal_is_edited_not_replaced_and_the_plan_reads_well(conversation, engine, now, language):
    if language == "es":
        chat, person_id = spanish_student(conversation, engine, now)
        vague, goal, day, outcome, obstacle, plan = ("no sé", "leer 20 páginas", "el jueves", "disfrutar la historia",
                                                     "cuando me distraigo con el celular", "voy a dejarlo en otro cuarto.")
        expected_goal, expected_plan = ("leer 20 páginas el jueves",
                                        "Si me distraigo con el celular, entonces voy a dejarlo en otro cuarto")
        category, confidence, another = "hábitos", "cuatro", "no gracias"
    else:
        chat, person_id = english_student(conversation, engine, now)
        vague, goal, day, outcome, obstacle, plan = ("idk", "read 20 pages", "by thursday", "enjoy the story",
                                                     "when i get bored", "i will take a break.")
        expected_goal, expected_plan = "read 20 pages by thursday", "If I get bored, then I will take a break"
        category, confidence, another = "habits", "4/5", "nope"
    transcript = play(chat, [
        ("/goals", ["goals/ask_goal"]),
        (vague, ["goals/too_vague", "goals/ask_goal"]),  # not stored: two examples, then asked again
        (goal, ["goals/smart_feedback"]),  # no day yet
        (day, ["goals/confirm_goal"]),  # only a day: merged into the goal, shown for one tap
        ("@yes", ["goals/ask_category"]),  # the day is the goal's now: not asked again
        (category, ["goals/ask_outcome"]),
        (outcome, ["goals/ask_obstacle"]), (obstacle, ["goals/ask_plan"]), (plan, ["goals/ask_confidence"]),
        (confidence, ["goals/saved", "goals/ask_another"]),
        (another, ["goals/summary"]),
    ])
    examples = transcript[1][0][1]  # drawn from the student's profile
    assert all(word in examples for word in ({"es": ("los ensayos", "robots"), "en": ("math", "music")}[language]))
    saved, = goals_of(engine, person_id)
    assert saved.text == expected_goal and as_date(saved.due_on) == date(2026, 11, 26)
    assert saved.plan == expected_plan and saved.confidence == 4


def test_a_new_goal_at_the_smart_step_asks_replace_or_add_and_own_words_can_be_kept(conversation, engine, now):
    chat, person_id = english_student(conversation, engine, now)
    play(chat, [
        ("/goals", ["goals/ask_goal"]),
        ("read more", ["goals/smart_feedback"]),
        ("finish chapter 3 of my history book", ["goals/replace_or_add"]),
        ("add to it", ["goals/confirm_goal"]),
        ("@yes", ["goals/ask_category"]),
        ("@content_knowledge", ["goals/ask_due"]),
        ("next friday", ["common/which_day", "goals/ask_due"]),  # this week's or next week's? both as buttons
        ("@2026-12-04", ["goals/ask_outcome"]),
        ("I know the chapter", ["goals/ask_obstacle"]), ("I get tired", ["goals/ask_plan"]),
        ("take a walk first lol", ["goals/ask_confidence"]),
        ("my own words", ["goals/ask_confidence"]),  # keeps the student's wording, asks again
        ("2", ["goals/saved", "goals/ask_smaller"]),  # low: make it smaller, or keep it
        ("make it smaller", ["goals/ask_smaller_goal"]),
        ("read half of chapter 3 by next friday", ["goals/edited", "goals/ask_another"]),
        ("no", ["goals/summary"]),
    ])
    saved, = goals_of(engine, person_id)
    assert saved.text == "read half of chapter 3 by next friday"
    assert as_date(saved.due_on) == date(2026, 12, 4) and saved.plan == "take a walk first lol"
    assert saved.confidence == 2


def test_goals_opens_with_the_weeks_goals_to_edit_mark_done_or_delete(conversation, engine, now):
    chat, person_id = english_student(conversation, engine, now)
    opening = {"read 20 pages by Thursday": [("/goals", ["goals/ask_goal"])],  # no goals yet: straight to one
               "do 10 math problems by Friday": [("/goals", ["goals/this_week"]), ("new goal", ["goals/ask_goal"])]}
    for goal, first_rows in opening.items():
        play(chat, [*first_rows, (goal, ["goals/ask_category"]), ("@habits_of_success", ["goals/ask_outcome"]),
                    ("ok", ["goals/ask_obstacle"]), ("tired", ["goals/ask_plan"]), ("rest", ["goals/ask_confidence"]),
                    ("@4", ["goals/saved", "goals/ask_another"]), ("@no", ["goals/summary"])])
    with engine.connect() as db:
        first, second = [row.id for row in db.execute(text("SELECT id FROM goal WHERE person_id = :id ORDER BY id"),
                                                        {"id": person_id})]
    play(chat, [("/goals", ["goals/this_week"]),
                (f"@edit:{first}", ["goals/ask_edit"]),
                ("read 30 pages by Wednesday", ["goals/edited", "goals/this_week"]),
                (f"@done:{second}", ["goals/marked_done", "goals/this_week"]),
                (f"@delete:{first}", ["goals/deleted", "goals/this_week"]),
                ("that's all", [])])
    rows = goals_of(engine, person_id)
    assert [(r.text, r.status) for r in rows] == [("read 30 pages by Wednesday", "dropped"),
                                                  ("do 10 math problems by Friday", "done")]
    assert as_date(rows[0].due_on) == date(2026, 11, 25)


def test_a_double_tap_answers_once(conversation, engine, now):
    chat, person_id = english_student(conversation, engine, now)
    play(chat, [("/goals", ["goals/ask_goal"]), ("read 20 pages by Thursday", ["goals/ask_category"])])
    assert [t for t, _, _ in chat.say("@content_knowledge")] == ["goals/ask_outcome"]
    # the second tap, 0 ms later: nothing changes, and the next question is not sent twice
    assert [t for t, _, _ in chat.say("@content_knowledge")] == ["common/already_answered"]
    play(chat, [("I will enjoy it", ["goals/ask_obstacle"])])
    assert chat.say("@content_knowledge")[-1][0] == "goals/ask_obstacle"  # an old button later: asked again


def test_stop_in_a_flow_says_goodbye_and_asks_nothing_more(conversation, engine, now):
    chat, _ = english_student(conversation, engine, now)
    play(chat, [("/goals", ["goals/ask_goal"]), ("/stop", ["commands/stopped_now"])])


def test_done_on_the_profile_gets_an_answer(conversation, engine, now):
    chat, _ = spanish_student(conversation, engine, now)
    transcript = play(chat, [("/perfil", ["profile/show"]), ("listo", ["profile/closed"])])
    assert "perfil" in transcript[1][0][1].lower()


def test_a_cancelled_flow_does_not_come_back_unasked(conversation, engine, now):
    chat, _ = english_student(conversation, engine, now)
    play(chat, [("/goals", ["goals/ask_goal"]), ("/cancel", ["commands/left"]), ("hello", ["commands/menu"])])


@pytest.mark.parametrize("typed", ["code 0001", "c0de-0001", "CODE 0001", "code-OOO1"])
def test_an_invite_code_in_any_case_with_spaces_and_look_alikes(conversation, engine, now, typed):
    person_id, code = enrol(engine, now)
    chat = Chat(conversation, "newcomer")
    number = code.split("-")[1]
    says = typed.replace("0001", number).replace("OOO1", number.replace("0", "O"))
    play(chat, [(says, ["link/welcome", "onboarding/consent"])])


def test_the_reviews_end_matches_the_answers_shows_the_streak_and_names_the_evidence(conversation, engine, now):
    chat, person_id = english_student(conversation, engine, now)
    play(chat, [("/goals", ["goals/ask_goal"]), ("draw 3 sketches by Friday", ["goals/ask_category"]),
                ("@habits_of_success", ["goals/ask_outcome"]), ("a portfolio", ["goals/ask_obstacle"]),
                ("I put it off", ["goals/ask_plan"]), ("start at 4pm", ["goals/ask_confidence"]),
                ("@4", ["goals/saved", "goals/ask_another"]), ("@no", ["goals/summary"]),
                ("/review", ["review/ask_status"])])
    conversation.handle(Inbound("console", "link-1", chat.user, chat.user,
                                attachment=Attachment("link", "https://example.org/sketches", None)))
    assert [t for t, _, _ in chat.deliver()] == ["artifacts/saved", "review/ask_status"]
    transcript = play(chat, [("did it", ["review/ask_notes"]),
                             ("drawing after school", ["review/ask_reflection"]),
                             ("I like drawing", ["review/done"])])
    closing = transcript[-1][0][1]
    assert "You finished every goal this week (1)" in closing
    assert "https://example.org/sketches" in closing and "draw 3 sketches by Friday" in closing
    assert "first week of the streak" in closing and "waiting on Monday" not in closing


def test_the_same_answer_tapped_on_the_next_question_is_not_taken_for_a_double_tap(engine, now):
    """Two questions in a row with the same buttons: a student who reads the second and taps the same answer
    2 s later is answered (a double tap lands within DOUBLE_TAP_SECONDS; an answer is never dropped)."""
    twice = Flow("twice", steps=(Step("first", ask="goals/ask_another", expect=Choice(("yes", "no")), then="second"),
                                 Step("second", ask="goals/ask_another", expect=Choice(("yes", "no")))))
    registry = REGISTRY.extended(Feature("twice", flows=(twice,), commands=(Command("twice", flow="twice"),),
                                         prompts=None))
    clock = Clock(now)
    conversation = Engine(Store(engine), registry, clock=clock)
    chat, _ = english_student(conversation, engine, now)
    play(chat, [("/twice", ["goals/ask_another"]), ("@yes", ["goals/ask_another"])])
    assert [t for t, _, _ in chat.say("@yes")] == ["common/already_answered"]  # the same tap again, at once
    clock.now = now + timedelta(seconds=2)
    assert [t for t, _, _ in chat.say("@yes")] != ["common/already_answered"]  # the second question's own answer
    assert chat.say("hello")[0][0] == "commands/menu"  # the flow ended: both questions were answered
