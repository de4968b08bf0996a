"""Genius hour as dialog tables, in English and Spanish, on SQLite and PostgreSQL: a passion from the
profile's interests, a pitch sent back with a comment and revised, approved by the first of two
advisers, a plan with a milestone on a holiday, three weekly check-ins (a blocker that becomes a help
request), the product, the presentation and its reflection — then what is stored and what the
adviser's views and digest say.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from sqlmodel import Session

from core.domain import records as profile_records
from core.domain.messages import Attachment, Inbound
from core.domain.models import AdvisoryMember
from core.domain.store import Store
from core.engine.pipeline import Engine
from core.features import REGISTRY
from core.features import genius
from core.features.genius import records
from tests.helpers import Chat, enrol, play

WORDS = {
    "en": {"interests": "drawing, robots and music", "search": "Is Pluto a planet?",
           "question": "How can I build a robot that waters plants?",
           "revised": "How can I build a robot that waters my class's plants when the soil is dry?",
           "why": "our plants keep dying over the weekend", "audience": "my class and our science teacher",
           "comment": "Make it about something your class can use", "m1": "Sketch the design", "holiday": "Dec 4",
           "late": "Dec 30", "d1": "Dec 2", "m2": "Build the frame", "d2": "Dec 9", "m3": "Code the moisture sensor",
           "d3": "Dec 16", "progress": "I drew three designs", "next": "buy the parts",
           "blocker": "the motor is too weak", "blocker2": "still the motor", "product": "A robot that waters plants",
           "present": "Dec 17", "present_to": "my class", "learned": "how sensors work",
           "differently": "start the code earlier", "proud": "it really works"},
    "es": {"interests": "dibujo, robots y música", "search": "¿Es Plutón un planeta?",
           "question": "¿Cómo puedo construir un robot que riegue las plantas?",
           "revised": "¿Cómo puedo construir un robot que riegue las plantas del salón cuando la tierra está seca?",
           "why": "nuestras plantas se mueren el fin de semana", "audience": "mi grupo y la maestra de ciencias",
           "comment": "Que sea algo que tu grupo pueda usar", "m1": "Dibujar el diseño", "holiday": "4 de diciembre",
           "late": "30 de diciembre", "d1": "2 de diciembre", "m2": "Armar la estructura", "d2": "9 de diciembre",
           "m3": "Programar el sensor de humedad", "d3": "16 de diciembre", "progress": "dibujé tres diseños",
           "next": "comprar las piezas", "blocker": "el motor es muy débil", "blocker2": "sigue el motor",
           "product": "Un robot que riega las plantas", "present": "17 de diciembre", "present_to": "mi grupo",
           "learned": "cómo funcionan los sensores", "differently": "empezar antes el código",
           "proud": "de que de verdad funciona"},
}
LOCALES = tuple(WORDS)
TERM = (date(2026, 8, 24), date(2026, 12, 18))
HOLIDAY = date(2026, 12, 4)


@pytest.fixture
def conversation(engine, clock):
    return Engine(Store(engine), REGISTRY, clock=clock)


def school_year(engine, now) -> None:
    """A term that ends on 18 December and a closure on Friday 4 December."""
    with engine.begin() as db:
        db.execute(text("INSERT INTO calendarevent (school_id, source, uid, kind, title, starts_on, ends_on, updated_at) "
                        "VALUES (1, 'test', 'term', 'term', 'Fall term', :t0, :t1, :now), "
                        "(1, 'test', 'closure', 'holiday', 'Teacher Work Day', :h, :h, :now)"),
                   {"t0": TERM[0], "t1": TERM[1], "h": HOLIDAY, "now": now})


def set_setting(engine, name: str, value: str, now) -> None:
    store = Store(engine)
    with store.transaction() as tx:
        REGISTRY.settings.set(tx, 1, name, value, now)


def onboarded(conversation, engine, now, locale: str, adviser_ids: tuple[int, ...]) -> tuple[Chat, int]:
    """A linked student of the advisers' group who agreed, chose `locale` and wrote three interests in one line
    (onboarding itself is tested elsewhere: here it is written directly)."""
    person_id, code = enrol(engine, now, adviser_id=adviser_ids[0])
    with Session(engine) as session:
        group_id = session.exec(text("SELECT group_id FROM advisorymember WHERE person_id = :p"),
                                params={"p": person_id}).one()[0]
        for other in adviser_ids[1:]:
            session.add(AdvisoryMember(group_id=group_id, person_id=other, role="adviser"))
        session.commit()
    chat = Chat(conversation, f"student{person_id}")
    chat.say(code)
    with Store(engine).transaction() as tx:
        tx.execute("UPDATE person SET locale = ?, consent_at = ? WHERE id = ?", (locale, tx.ts(now), person_id))
        profile_records.save_profile(tx, person_id, now, strengths="art", needs="math", aim="engineer",
                                     interests=WORDS[locale]["interests"], checkin_time="16:00")
        tx.execute("UPDATE conversation SET flow = NULL, state = NULL, answers = '{}', stack = NULL "
                   "WHERE person_id = ?", (person_id,))
    chat.deliver()
    return chat, person_id


def adviser(conversation, engine, now, name: str) -> tuple[Chat, int]:
    person_id, code = enrol(engine, now, given_name=name, role="adviser")
    chat = Chat(conversation, f"adviser{person_id}")
    chat.say(code)
    return chat, person_id


def templates(replies) -> list[str]:
    return [template for template, _, _ in replies]


@pytest.fixture
def school(conversation, engine, now):
    """Two advisers (Rivera, Chen) who share an advisory group."""
    rivera, rivera_id = adviser(conversation, engine, now, "Rivera")
    chen, chen_id = adviser(conversation, engine, now, "Chen")
    school_year(engine, now)
    set_setting(engine, "genius_hour_day", "friday", now)
    return rivera, rivera_id, chen, chen_id


@pytest.mark.parametrize("locale", LOCALES)
def test_a_project_through_the_six_ps(conversation, engine, now, clock, school, locale):
    w = WORDS[locale]
    rivera, rivera_id, chen, chen_id = school
    chat, student_id = onboarded(conversation, engine, now, locale, (rivera_id, chen_id))

    # Passion, from the profile's interests split into buttons with short payloads.
    (template, _, buttons), = chat.say("/project" if locale == "en" else "/proyecto")
    assert template == "genius/ask_passion"
    assert [label for label, _ in buttons] == (["drawing", "robots", "music"] if locale == "en"
                                              else ["dibujo", "robots", "música"])
    assert all(len(payload.encode()) <= 64 for _, payload in buttons)

    # The pitch: a quick-search question gets gentle feedback, is rephrased, and goes to both advisers.
    play(chat, [("@p1", ["genius/ask_question"]),
                (w["search"], ["genius/quick_search"]),
                ("@rephrase", ["genius/ask_question"]),
                (w["question"], ["genius/ask_why"]),
                (w["why"], ["genius/ask_audience"]),
                (w["audience"], ["genius/pitch_sent"]),
                ("hello", ["commands/menu"])])  # waiting leaves the student free
    (template, text_, buttons), = rivera.deliver()
    assert template == "genius/pitch_for_adviser" and w["question"] in text_
    assert [payload for _, payload in buttons] == [f"/pitchok {student_id}", f"/pitchfix {student_id}"]
    assert templates(chen.deliver()) == ["genius/pitch_for_adviser"]

    # Rivera asks for changes with a comment: the student hears it at once and revises; Chen sees who decided.
    play(rivera, [(f"@/pitchfix {student_id}", ["genius/ask_comment"]), (w["comment"], ["genius/you_decided"])])
    (template, text_, _), = chat.deliver()
    assert template == "genius/verdict" and w["comment"] in text_ and "Rivera" in text_
    (template, text_, _), = chen.deliver()
    assert template == "genius/decided_by" and "Rivera" in text_
    play(chat, [("@go", ["genius/ask_question"]), (w["revised"], ["genius/ask_why"]),
                (w["why"], ["genius/ask_audience"]), (w["audience"], ["genius/pitch_sent"])])
    assert templates(rivera.deliver()) == templates(chen.deliver()) == ["genius/pitch_for_adviser"]

    # Chen approves first; Rivera's tap a moment later is told who did.
    play(chen, [(f"@/pitchok {student_id}", ["genius/you_decided"])])
    assert templates(rivera.deliver()) == ["genius/decided_by"]
    (template, text_, _), = rivera.say(f"@/pitchok {student_id}")
    assert template == "genius/already_decided" and "Chen" in text_
    assert templates(chat.deliver()) == ["genius/verdict"]

    # The plan: a milestone on the holiday is pointed out, one after the term refused, three to six in all.
    play(chat, [("@go", ["genius/ask_milestone"]),
                (w["m1"], ["genius/ask_due"]),
                (w["holiday"], ["genius/on_holiday"]),
                ("@change", ["genius/ask_due"]),
                (w["late"], ["genius/after_term", "genius/ask_due"]),
                (w["d1"], ["genius/ask_milestone"]),
                (w["m2"], ["genius/ask_due"]), (w["d2"], ["genius/ask_milestone"]),
                (w["m3"], ["genius/ask_due"]), (w["d3"], ["genius/ask_another"]),
                ("@done", ["genius/plan_saved"])])

    # Three weekly check-ins (the genius-hour day is Friday).
    clock.now = now + timedelta(days=4)
    (_, _, buttons), = chat.say("/project")
    assert ("/project checkin" in [payload for _, payload in buttons])
    play(chat, [("@/project checkin", ["genius/ask_progress"]),
                (w["progress"], ["genius/ask_next_step"]),
                (w["next"], ["genius/ask_blocker"]),
                ("@none", ["genius/ask_evidence"]),
                ("https://example.org/sketch.png", ["genius/checkin_saved", "genius/ask_milestone_done"])])
    first = project_row(engine, student_id)
    milestone_ids = [m["id"] for m in stored_milestones(engine, first["id"])]
    play(chat, [(f"@m{milestone_ids[0]}", ["genius/keep_going"])])

    clock.now = now + timedelta(days=11)
    play(chat, [("@/project checkin", ["genius/ask_progress"]), (w["progress"], ["genius/ask_next_step"]),
                (w["next"], ["genius/ask_blocker"]), (w["blocker"], ["genius/ask_help"]),
                ("@yes", ["genius/ask_evidence"]), ("@skip", ["genius/checkin_saved", "genius/ask_milestone_done"]),
                ("@none", ["genius/keep_going"])])

    clock.now = now + timedelta(days=18)
    play(chat, [("@/project checkin", ["genius/ask_progress"]), (w["progress"], ["genius/ask_next_step"]),
                (w["next"], ["genius/ask_blocker"]), (w["blocker2"], ["genius/ask_help"]),
                ("@no", ["genius/ask_evidence"]), ("@skip", ["genius/checkin_saved", "genius/ask_milestone_done"]),
                (f"@m{milestone_ids[1]}", ["genius/keep_going"])])
    with Store(engine).transaction() as tx:
        (blocked,) = genius.blocked(tx, [student_id], clock.now.date())[student_id]
        assert blocked.evidence["count"] == 2 and blocked.level == 1
        assert w["blocker2"] in REGISTRY.catalog.text("genius/concern_blocked", locale, blocked.evidence)
        assert records.milestones_done(tx, [student_id], clock.now.date())[student_id][0]["milestone"] == w["m2"]
        overview = records.overviews(tx, [student_id])[student_id]
    assert overview["stage"] == "project" and overview["blocker"] == w["blocker2"]
    (template, text_, _), = rivera.say("/projects")
    assert template == "genius/projects" and w["blocker2"] in text_

    # The last milestone: on to the product and the presentation.
    play(chat, [("@/project checkin", ["genius/ask_progress"]), (w["progress"], ["genius/ask_next_step"]),
                (w["next"], ["genius/ask_blocker"]), ("@none", ["genius/ask_evidence"]),
                ("@skip", ["genius/checkin_saved", "genius/ask_milestone_done"]),
                (f"@m{milestone_ids[2]}", ["genius/keep_going", "genius/all_done"]),
                ("@go", ["genius/ask_product"]), (w["product"], ["genius/ask_product_evidence"]),
                ("https://example.org/video", ["genius/evidence_kept", "genius/ask_presentation_day"]),
                (w["present"], ["genius/ask_presentation_audience"]),
                (w["present_to"], ["genius/presentation_planned"]),
                ("@/project reflect", ["genius/not_yet_presented"])])

    clock.now = datetime(2026, 12, 17, 21, 0, tzinfo=timezone.utc)
    (_, _, buttons), = chat.say("/project")
    assert [payload for _, payload in buttons] == ["/project reflect"]
    play(chat, [("@/project reflect", ["genius/ask_learned"]), (w["learned"], ["genius/ask_differently"]),
                (w["differently"], ["genius/ask_proud"]), (w["proud"], ["genius/finished"])])

    # What is stored.
    project = project_row(engine, student_id)
    assert (project["status"], project["stage"], project["passion"], project["question"], project["approval"]) == \
        ("finished", "done", "robots", w["revised"], "approved")
    assert (project["learned"], project["differently"], project["proud"], project["product"]) == \
        (w["learned"], w["differently"], w["proud"], w["product"])
    assert project["presentation_on"] == date(2026, 12, 17) and project["presentation_audience"] == w["present_to"]
    assert [(m["text"], m["due_on"]) for m in stored_milestones(engine, project["id"])] == [
        (w["m1"], date(2026, 12, 2)), (w["m2"], date(2026, 12, 9)), (w["m3"], date(2026, 12, 16))]
    with engine.connect() as db:
        checkins = db.execute(text("SELECT blocker, help_request_id FROM geniuscheckin ORDER BY id")).all()
        help_requests = db.execute(text("SELECT person_id, text, status FROM helprequest")).all()
        decisions = db.execute(text("SELECT actor_id, action, note FROM adultaction WHERE subject = 'geniusproject' "
                                    "ORDER BY id")).all()
        evidence = db.execute(text("SELECT a.kind, a.ref, e.stage, e.milestone_id FROM geniusevidence e "
                                   "JOIN artifact a ON a.id = e.artifact_id ORDER BY a.id")).all()
    assert [blocker for blocker, _ in checkins] == [None, w["blocker"], w["blocker2"], None]
    assert [help_id is not None for _, help_id in checkins] == [False, True, False, False]
    assert help_requests == [(student_id, w["blocker"], "open")]
    assert decisions == [(rivera_id, "changes", w["comment"]), (chen_id, "approved", None)]
    assert evidence == [("link", "https://example.org/sketch.png", "project", milestone_ids[0]),
                        ("link", "https://example.org/video", "product", None)]
    with Store(engine).transaction() as tx:
        given = records.presentations_given(tx, [student_id], date(2026, 12, 18))
    assert given[student_id][0]["question"] == w["revised"]


def project_row(engine, student_id: int) -> dict:
    with Store(engine).transaction() as tx:
        return records.latest_project(tx, student_id)


def stored_milestones(engine, project_id: int) -> list[dict]:
    with Store(engine).transaction() as tx:
        return records.milestones(tx, project_id)


def pitch(chat, locale: str = "en") -> None:
    w = WORDS[locale]
    play(chat, [("/project", ["genius/ask_passion"]), ("@p0", ["genius/ask_question"]),
                (w["question"], ["genius/ask_why"]), (w["why"], ["genius/ask_audience"])])


def test_without_required_approval_the_pitch_goes_straight_to_the_plan(conversation, engine, now, school):
    rivera, rivera_id, _, chen_id = school
    set_setting(engine, "pitch_approval_required", "off", now)
    chat, student_id = onboarded(conversation, engine, now, "en", (rivera_id, chen_id))
    pitch(chat)
    play(chat, [(WORDS["en"]["audience"], ["genius/ask_milestone"])])
    assert rivera.deliver() == []  # nothing to decide
    assert project_row(engine, student_id)["approval"] == "not_required"


def test_an_approval_while_the_student_is_in_another_flow_waits_for_a_button(conversation, engine, now, school):
    rivera, rivera_id, _, chen_id = school
    chat, student_id = onboarded(conversation, engine, now, "en", (rivera_id, chen_id))
    pitch(chat)
    play(chat, [(WORDS["en"]["audience"], ["genius/pitch_sent"]), ("/profile", ["profile/show"])])
    rivera.say(f"@/pitchok {student_id}")
    assert chat.deliver() == []  # the open question is not interrupted
    (queued,) = [reply for reply in chat.say("@done") if reply[0] == "commands/queued"]
    assert queued[2] == (("Genius-hour pitch", "/open genius_pitch"),)
    play(chat, [("@/open genius_pitch", ["genius/verdict"]), ("@later", [])])
    (template, _, buttons), = chat.say("/project")
    assert template == "genius/status" and [payload for _, payload in buttons] == ["/project plan", "/project drop"]


def test_an_adviser_sees_only_their_own_advisees_pitches(conversation, engine, now, school):
    rivera, rivera_id, _, chen_id = school
    stranger, _ = adviser(conversation, engine, now, "Okafor")
    chat, student_id = onboarded(conversation, engine, now, "en", (rivera_id, chen_id))
    pitch(chat)
    play(chat, [(WORDS["en"]["audience"], ["genius/pitch_sent"])])
    play(stranger, [(f"/pitchok {student_id}", ["genius/no_such_pitch"]),
                    (f"/pitchfix {student_id}", ["genius/no_such_pitch"])])
    assert project_row(engine, student_id)["approval"] == "pending"
    with Store(engine).transaction() as tx:  # the digest's reason: a pitch waiting, a week and more is level 2
        assert genius.waiting(tx, [student_id], now.date())[student_id][0].level == 1
        assert genius.waiting(tx, [student_id], now.date() + timedelta(days=8))[student_id][0].level == 2
    (template, text_, _), = stranger.say("/projects")
    assert "Ana" not in text_


def test_a_dropped_project_stays_in_the_history_and_a_new_one_can_start(conversation, engine, now, school):
    _, rivera_id, _, chen_id = school
    set_setting(engine, "pitch_approval_required", "off", now)
    chat, student_id = onboarded(conversation, engine, now, "en", (rivera_id, chen_id))
    pitch(chat)
    play(chat, [(WORDS["en"]["audience"], ["genius/ask_milestone"]), ("/cancel", ["commands/left"]),
                ("/project drop", ["genius/ask_drop"]), ("@drop", ["genius/dropped"]),
                ("/project", ["genius/ask_passion"])])
    with engine.connect() as db:
        assert db.execute(text("SELECT status FROM geniusproject")).scalars().all() == ["dropped"]


def test_a_photo_sent_during_a_check_in_is_evidence_of_it_and_of_the_milestone(conversation, engine, now, school):
    _, rivera_id, _, chen_id = school
    set_setting(engine, "pitch_approval_required", "off", now)
    chat, student_id = onboarded(conversation, engine, now, "en", (rivera_id, chen_id))
    w = WORDS["en"]
    pitch(chat)
    play(chat, [(w["audience"], ["genius/ask_milestone"]), (w["m1"], ["genius/ask_due"]),
                (w["d1"], ["genius/ask_milestone"]), (w["m2"], ["genius/ask_due"]), (w["d2"], ["genius/ask_milestone"]),
                (w["m3"], ["genius/ask_due"]), (w["d3"], ["genius/ask_another"]), ("@done", ["genius/plan_saved"]),
                ("/project checkin", ["genius/ask_progress"]), (w["progress"], ["genius/ask_next_step"]),
                (w["next"], ["genius/ask_blocker"]), ("@none", ["genius/ask_evidence"])])
    conversation.handle(Inbound("console", "photo-1", chat.user, chat.user,
                                attachment=Attachment("photo", "telegram-file-id", "my sketch")))
    assert templates(chat.deliver()) == ["artifacts/saved", "genius/ask_evidence"]  # asked again: more, or done
    play(chat, [("@skip", ["genius/checkin_saved", "genius/ask_milestone_done"]),
                (w["m1"], ["genius/keep_going"])])  # a milestone's name typed instead of tapped
    with engine.connect() as db:
        (kind, caption, milestone), = db.execute(text(
            "SELECT a.kind, a.caption, m.text FROM geniusevidence e JOIN artifact a ON a.id = e.artifact_id "
            "JOIN geniusmilestone m ON m.id = e.milestone_id")).all()
    assert (kind, caption, milestone) == ("photo", "my sketch", w["m1"])
