"""Conversations as dialog tables: what the student says → which templates the bot answers with,
then what is stored. Every table runs in English and in Spanish, on SQLite and PostgreSQL.

A row's message starting with "@" is a button tap (its payload); anything else is typed text.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import text

from core.features import REGISTRY
from core.domain import records
from core.engine.pipeline import Engine
from core.domain.store import Store
from tests.helpers import Chat, enrol, play

# The words a student types differ by language; the templates the bot answers with do not.
WORDS = {
    "en": {"strengths": "drawing and math", "needs": "essays", "interests": "robots", "aim": "engineer",
           "time": "4pm", "vague": "read more", "goal": "read 20 pages of my novel by Thursday",
           "goal2": "finish 3 algebra units", "day": "Friday", "outcome": "I will enjoy the story",
           "obstacle": "I get distracted by my phone", "plan": "I will put it in another room",
           "helped": "reading before dinner", "reflection": "I work best early", "pause": "next monday",
           "hello": "hello", "category": "Habits of success"},
    "es": {"strengths": "dibujar y matemáticas", "needs": "los ensayos", "interests": "robots", "aim": "ingeniera",
           "time": "16:00", "vague": "leer más", "goal": "leer 20 páginas de mi novela para el jueves",
           "goal2": "terminar 3 unidades de álgebra", "day": "viernes", "outcome": "disfrutaré la historia",
           "obstacle": "me distraigo con el celular", "plan": "voy a dejarlo en otro cuarto",
           "helped": "leer antes de cenar", "reflection": "trabajo mejor temprano", "pause": "lunes",
           "hello": "hola", "category": "Hábitos de éxito"},
}
LOCALES = tuple(WORDS)


@pytest.fixture
def conversation(engine, now):
    return Engine(Store(engine), REGISTRY, clock=lambda: now)


def onboarding_table(code: str, locale: str) -> list:
    """The chat app reports the student's language; the school's is English. A Spanish speaker
    confirms Spanish with one tap before the consent, which comes in Spanish, once."""
    w = WORDS[locale]
    language = ([(code, ["link/welcome", "onboarding/consent"]),
                 ("@agree", ["profile/ask_language"]),
                 (f"@{locale}", ["profile/ask_timezone"])] if locale == "en" else
                [(code, ["link/welcome", "onboarding/ask_language"]),  # the language first
                 (f"@{locale}", ["onboarding/consent"]),  # then the consent, in that language, once
                 ("@agree", ["profile/ask_timezone"])])
    return [
        (w["hello"], ["link/need_code"]),
        ("WRONG-CODE", ["link/bad_code"]),
        *language,
        ("Narnia", ["errors/need_timezone", "profile/ask_timezone"]),
        ("Chicago", ["profile/timezone_check"]),  # a typed place is confirmed by the local time there now
        ("@change", ["profile/ask_timezone"]),
        ("@keep", ["profile/ask_strengths"]),  # the school's zone, tapped: nothing to confirm
        (w["strengths"], ["profile/ask_needs"]),
        (w["needs"], ["profile/ask_interests"]),
        (w["interests"], ["profile/ask_aim"]),
        (w["aim"], ["profile/ask_checkin_time"]),
        ("banana", ["errors/need_time", "profile/ask_checkin_time"]),
        (w["time"], ["onboarding/done"]),
    ]


def onboard(conversation, engine, now, locale: str) -> tuple[Chat, int]:
    person_id, code = enrol(engine, now)
    chat = Chat(conversation, f"student-{person_id}", locale=locale)
    play(chat, onboarding_table(code, locale))
    return chat, person_id


def goals_table(locale: str) -> list:
    w = WORDS[locale]
    return [
        ("/goals", ["goals/ask_goal"]),
        (w["vague"], ["goals/smart_feedback"]),  # vague, not measurable, no day: gentle SMART feedback
        (w["goal"], ["goals/replace_or_add"]),  # a goal of its own: replace the first, or add to it?
        ("@replace", ["goals/confirm_goal"]),  # the result, shown for one tap
        ("@yes", ["goals/ask_category"]),  # sharper, with a day: the due question is skipped
        ("@content_knowledge", ["goals/ask_outcome"]),
        (w["outcome"], ["goals/ask_obstacle"]),
        (w["obstacle"], ["goals/ask_plan"]),
        (w["plan"], ["goals/ask_confidence"]),  # the if–then plan is shown with this question
        ("9", ["errors/need_number", "goals/ask_confidence"]),
        ("@4", ["goals/saved", "goals/ask_another"]),
        ("@yes", ["goals/ask_goal"]),
        (w["goal2"], ["goals/smart_feedback"]),  # measurable but no day
        ("@keep", ["goals/ask_category"]),
        (w["category"], ["goals/ask_due"]),  # a typed label works like the button
        (w["day"], ["goals/ask_outcome"]),
        (w["outcome"], ["goals/ask_obstacle"]),
        (w["obstacle"], ["goals/ask_plan"]),
        (w["plan"], ["goals/ask_confidence"]),
        ("@2", ["goals/saved", "goals/ask_smaller"]),  # low confidence: make it smaller, or keep it
        ("@keep", ["goals/ask_another"]),
        ("@no", ["goals/summary"]),
    ]


@pytest.mark.parametrize("locale", LOCALES)
def test_onboarding_builds_the_learner_profile(conversation, engine, now, locale):
    chat, person_id = onboard(conversation, engine, now, locale)
    with engine.connect() as db:
        person = db.execute(text("SELECT locale, timezone, consent_at FROM person WHERE id = :id"),
                            {"id": person_id}).one()
        profile = db.execute(text("SELECT strengths, needs, interests, aim, checkin_time FROM learnerprofile "
                                  "WHERE person_id = :id"), {"id": person_id}).one()
        used = db.execute(text("SELECT used_at FROM invitecode WHERE person_id = :id"), {"id": person_id}).scalar()
    w = WORDS[locale]
    assert person.locale == locale and person.timezone == "America/New_York" and person.consent_at is not None
    assert tuple(profile) == (w["strengths"], w["needs"], w["interests"], w["aim"], "16:00")
    assert used is not None


@pytest.mark.parametrize("locale", LOCALES)
def test_replies_are_in_the_students_language(conversation, engine, now, locale):
    chat, _ = onboard(conversation, engine, now, locale)
    (_, reply, buttons), = chat.say("/help")
    assert ("/goals" in reply) and (("/metas" in reply) == (locale == "es"))
    _, menu, buttons = chat.say(WORDS[locale]["hello"])[0]
    assert buttons[0][0] == {"en": "Set goals", "es": "Poner metas"}[locale]


def test_declining_consent_stores_nothing_more(conversation, engine, now):
    person_id, code = enrol(engine, now)
    chat = Chat(conversation, "decliner")
    play(chat, [(code, ["link/welcome", "onboarding/consent"]),
                ("@decline", ["onboarding/declined"]),
                ("robots", ["commands/stopped"]),
                ("/start", ["onboarding/consent"])])
    with engine.connect() as db:
        assert db.execute(text("SELECT consent_at FROM person WHERE id = :id"), {"id": person_id}).scalar() is None
        assert db.execute(text("SELECT COUNT(*) FROM learnerprofile")).scalar() == 0


@pytest.mark.parametrize("locale", LOCALES)
def test_weekly_goals_with_woop_and_if_then_plans(conversation, engine, now, locale):
    chat, person_id = onboard(conversation, engine, now, locale)
    play(chat, goals_table(locale))
    with engine.connect() as db:
        goals = db.execute(text("SELECT text, category, due_on, outcome, obstacle, plan, confidence, status, "
                                "week_start FROM goal WHERE person_id = :id ORDER BY id"), {"id": person_id}).all()
    w = WORDS[locale]
    assert [g.text for g in goals] == [w["goal"], w["goal2"]]
    assert [g.category for g in goals] == ["content_knowledge", "habits_of_success"]
    thursday, friday = date(2026, 11, 26), date(2026, 11, 27)
    assert [Store_date(g.due_on) for g in goals] == [thursday, friday]
    assert [g.confidence for g in goals] == [4, 2]
    assert all(g.status == "open" and Store_date(g.week_start) == date(2026, 11, 23) for g in goals)
    if_then = {"en": ("If I get distracted by my phone, then I will put it in another room"),
               "es": ("Si me distraigo con el celular, entonces voy a dejarlo en otro cuarto")}[locale]
    assert goals[0].plan == if_then
    assert goals[0].outcome == w["outcome"] and goals[0].obstacle == w["obstacle"]


def Store_date(value):
    """SQLite returns dates as text, PostgreSQL as dates."""
    return value if isinstance(value, date) else date.fromisoformat(value)


def test_three_goals_at_most(conversation, engine, now):
    chat, person_id = onboard(conversation, engine, now, "en")
    play(chat, goals_table("en")[:-1])
    third = [("@yes", ["goals/ask_goal"]), ("write 2 pages of my essay by Friday", ["goals/ask_category"]),
             ("@cognitive_skills", ["goals/ask_outcome"]), ("a better grade", ["goals/ask_obstacle"]),
             ("I feel tired", ["goals/ask_plan"]), ("take a short walk first", ["goals/ask_confidence"]),
             ("@5", ["goals/saved", "goals/summary"])]  # no "another?" after the third goal
    play(chat, third)
    play(chat, [("/goals", ["goals/this_week"])])  # the week is full: its goals, to edit, mark done or delete


@pytest.mark.parametrize("locale", LOCALES)
def test_review_then_next_week_carries_unfinished_goals(engine, now, locale):
    week_one = Engine(Store(engine), REGISTRY, clock=lambda: now)
    chat, person_id = onboard(week_one, engine, now, locale)
    play(chat, goals_table(locale))
    w = WORDS[locale]
    friday = Engine(Store(engine), REGISTRY, clock=lambda: now + timedelta(days=4))
    chat.engine = friday
    play(chat, [("/review", ["review/ask_status"]),
                ("@done", ["review/ask_notes"]),
                (w["helped"], ["review/ask_status"]),
                ("@partly", ["review/ask_notes"]),
                (w["helped"], ["review/ask_reflection"]),
                (w["reflection"], ["review/done"])])
    next_monday = Engine(Store(engine), REGISTRY, clock=lambda: now + timedelta(days=7))
    chat.engine = next_monday
    play(chat, [("/goals", ["goals/carry_over"]),  # the partly-done goal: carry it forward
                ("@carry", ["goals/this_week"]),  # now this week's: listed, with a new goal offered
                ("@new", ["goals/ask_goal"])])
    with engine.connect() as db:
        rows = db.execute(text("SELECT text, status, carried_from_id FROM goal WHERE person_id = :id ORDER BY id"),
                          {"id": person_id}).all()
        reviews = db.execute(text("SELECT status, notes FROM goalreview WHERE person_id = :id ORDER BY id"),
                             {"id": person_id}).all()
        reflection = db.execute(text("SELECT text FROM reflection WHERE person_id = :id"), {"id": person_id}).scalar()
    assert [r.status for r in rows] == ["done", "carried", "open"]
    assert rows[2].text == w["goal2"] and rows[2].carried_from_id is not None
    assert [tuple(r) for r in reviews] == [("done", w["helped"]), ("partly", w["helped"])]
    assert reflection == w["reflection"]


def test_review_streak_counts_consecutive_weeks(conversation, engine, now):
    chat, person_id = onboard(conversation, engine, now, "en")
    play(chat, goals_table("en"))
    with Store(engine).transaction() as tx:  # reflections in the two weeks before this one
        for weeks_ago in (1, 2):
            records.insert_reflection(tx, person_id, date(2026, 11, 23) - timedelta(weeks=weeks_ago), "ok", now)
    transcript = play(chat, [("/review", ["review/ask_status"]), ("@done", ["review/ask_notes"]),
                             ("focus", ["review/ask_status"]), ("@not_yet", ["review/ask_notes"]),
                             ("busy", ["review/ask_reflection"]), ("ok week", ["review/done"])])
    assert "3 weeks in a row" in transcript[-1][0][1]


def test_profile_can_be_read_and_changed(conversation, engine, now):
    chat, person_id = onboard(conversation, engine, now, "en")
    transcript = play(chat, [("/profile", ["profile/show"]),
                             ("@interests", ["profile/ask_interests"]),
                             ("chess and poetry", ["profile/show"]),
                             ("@language", ["profile/ask_language"]),
                             ("@es", ["profile/show"]),
                             ("@done", ["profile/closed"])])  # every button gets an answer
    assert "chess and poetry" in transcript[2][0][1]
    assert "Español" in transcript[4][0][1] and "Fortalezas" in transcript[4][0][1]
    with engine.connect() as db:
        assert db.execute(text("SELECT interests FROM learnerprofile WHERE person_id = :id"),
                          {"id": person_id}).scalar() == "chess and poetry"


def test_a_flow_can_be_left_and_resumed(conversation, engine, now):
    chat, person_id = onboard(conversation, engine, now, "en")
    play(chat, [("/goals", ["goals/ask_goal"]),
                ("read 20 pages by Thursday", ["goals/ask_category"]),
                ("/plan", ["plan/show", "goals/ask_category"]),  # a quick command, then the same question
                ("/profile", ["profile/show"]),  # another flow: goals waits
                ("@done", ["commands/resuming", "goals/ask_category"]),
                ("/cancel", ["commands/left"]),
                ("hi", ["commands/menu"]),
                ("/resume", ["commands/resume_pick"]),  # stack rule: /resume lists what was set aside
                ("@/resume 0", ["commands/resuming", "goals/ask_category"]),
                ("@sense_of_purpose", ["goals/ask_outcome"])])


def test_pause_until_a_date(conversation, engine, now):
    chat, person_id = onboard(conversation, engine, now, "en")
    play(chat, [("/pause", ["pause/ask_until"]),
                ("yesterday", ["errors/day_in_past", "pause/ask_until"]),
                ("Dec 7", ["pause/paused"]),
                ("/pause banana", ["pause/ask_until", "errors/need_day", "pause/ask_until"])])
    with engine.connect() as db:
        assert Store_date(db.execute(text("SELECT paused_until FROM person WHERE id = :id"),
                                     {"id": person_id}).scalar()) == date(2026, 12, 7)


def test_stop_and_start_again(conversation, engine, now):
    chat, person_id = onboard(conversation, engine, now, "en")
    play(chat, [("/stop", ["commands/stopped_now"]),
                ("/goals", ["commands/stopped"]),
                ("/start", ["commands/welcome_back", "commands/menu"]),
                ("/goals", ["goals/ask_goal"])])


def test_text_outside_a_flow_gets_the_menu_never_a_dead_end(conversation, engine, now):
    chat, _ = onboard(conversation, engine, now, "en")
    for says in ("what?", "/nonsense", "@agree", "3"):
        templates = [template for template, _, _ in chat.say(says)]
        assert templates[-1] == "commands/menu"


def test_an_unanswerable_button_is_refused_kindly(conversation, engine, now):
    chat, _ = onboard(conversation, engine, now, "en")
    play(chat, [("/goals", ["goals/ask_goal"]), ("read 20 pages by Thursday", ["goals/ask_category"]),
                ("@agree", ["errors/pick_one", "goals/ask_category"])])


def test_adviser_sees_their_advisees(conversation, engine, now):
    adviser_id, adviser_code = enrol(engine, now, given_name="Ms Rivera", role="adviser")
    _, bo_code = enrol(engine, now, given_name="Bo", adviser_id=adviser_id)
    enrol(engine, now, given_name="Cy")  # another adviser's student: never shown
    adviser = Chat(conversation, "adviser")
    bo = Chat(conversation, "bo")
    bo.say(bo_code)
    with engine.begin() as db:  # delivery found that Bo blocked the bot
        db.execute(text("UPDATE chatidentity SET unreachable = :yes WHERE external_id = 'bo'"), {"yes": True})
    transcript = play(adviser, [(adviser_code, ["commands/adult_menu"]), ("@/students", ["adviser/students"])])
    listing = transcript[1][0][1]
    assert "Bo" in listing and "Cy" not in listing
    assert "has blocked the bot" in listing
