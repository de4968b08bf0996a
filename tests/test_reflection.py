"""The report-card reflection as dialog tables (English and Spanish, SQLite and PostgreSQL): what the student
says → which templates the bot answers with → what is stored; who may see each answer; the interfaces the
learning plan and the adviser's digest read."""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings, strategies as st
from sqlalchemy import text

from core.domain import access
from core.domain.store import Store
from core.engine.pipeline import Engine
from core.features import REGISTRY, plan, reflection
from tests.helpers import Chat, enrol, play

PERIOD = ("Quarter 1", date(2026, 8, 24), date(2026, 11, 20))  # ended the Friday before `now` (Mon 23 Nov 2026)
NEXT_PERIOD = ("Quarter 2", date(2026, 11, 23), date(2027, 2, 5))
_ids = itertools.count(1)

WORDS = {
    "en": {"grades": ["B+", "3 of 4", "meets", "85", "A-"], "subjects": "Math, English and Biology",
           "actions": "I did my homework most days but skipped the reading logs",
           "change": "start essays earlier", "goal": "get a B in English by doing one draft a week",
           "message": "I worked hard even when it didn't show", "me": "Only me", "adviser": "My adviser",
           "family": "My adviser and family", "higher": "Higher than I expected", "lower": "@lower"},
    "es": {"grades": ["8,5", "3 de 4", "logrado", "notable", "B"], "subjects": "Matemáticas, Lengua y Biología",
           "actions": "hice la tarea casi todos los días pero no leí", "change": "empezar los ensayos antes",
           "goal": "sacar un 8 en Lengua con un borrador por semana", "message": "me esforcé aunque no se note",
           "me": "Solo yo", "adviser": "Mi tutor", "family": "Mi tutor y mi familia",
           "higher": "Más alta de lo que esperaba", "lower": "@lower"},
}
LOCALES = tuple(WORDS)


@pytest.fixture
def conversation(engine, now):
    return Engine(Store(engine), REGISTRY, clock=lambda: now)


def sql(engine, statement: str, **params) -> list:
    """Run one statement in its own transaction; the rows it returns, if any."""
    with engine.begin() as db:
        result = db.execute(text(statement), params)
        return result.all() if result.returns_rows else []


def day(value) -> date:
    """SQLite returns dates as text, PostgreSQL as dates."""
    return value if isinstance(value, date) else date.fromisoformat(value)


def grading_periods(engine, *periods, source: str = "roster") -> None:
    for title, starts_on, ends_on in periods:
        sql(engine, "INSERT INTO calendarevent (school_id, source, uid, kind, title, starts_on, ends_on, updated_at) "
            "VALUES (1, :source, :uid, 'grading_period', :title, :starts, :ends, :now)", source=source,
            uid=f"gp-{next(_ids)}", title=title, starts=starts_on, ends=ends_on, now=datetime.now(timezone.utc))


def subject_classes(engine, person_id: int, titles: list[str]) -> None:
    """The student's classes on the roster (an advisory group among them, which is no subject)."""
    for title, advisory in [*((t, False) for t in titles), ("Homeroom 7B", True)]:
        n = next(_ids)
        class_id = sql(engine, "INSERT INTO rosterclass (sourced_id, school_id, title, class_type, subjects, advisory) "
                       "VALUES (:sid, 1, :title, :kind, :subjects, :advisory) RETURNING id", sid=f"class-{n}",
                       title=title, kind="homeroom" if advisory else "scheduled", subjects=title.split()[0],
                       advisory=advisory)[0][0]
        sql(engine, "INSERT INTO enrollment (sourced_id, class_id, person_id, role) VALUES (:sid, :c, :p, 'student')",
            sid=f"enr-{n}", c=class_id, p=person_id)


def goal_record(engine, person_id: int, now: datetime) -> None:
    """Goals of the period behind the reflection, each ended its own way, and two weeks of review streak."""
    rows = [(date(2026, 11, 9), "read 20 pages a day", "habits_of_success", "done",
             "If I get distracted, then I will put my phone away"),
            (date(2026, 11, 16), "finish 3 algebra units", "content_knowledge", "partly", None),
            (date(2026, 11, 16), "write my essay draft", "content_knowledge", "not_yet", None),
            (date(2026, 6, 1), "an old goal of last year", "content_knowledge", "done", None)]  # outside the period
    for week, goal, category, status, plan in rows:
        sql(engine, "INSERT INTO goal (person_id, week_start, text, category, plan, status, created_at, updated_at) "
            "VALUES (:p, :w, :t, :c, :plan, :s, :now, :now)", p=person_id, w=week, t=goal, c=category, plan=plan,
            s=status, now=now)
    for week in (date(2026, 11, 9), date(2026, 11, 16)):
        sql(engine, "INSERT INTO reflection (person_id, kind, week_start, text, created_at) "
            "VALUES (:p, 'week', :w, 'ok', :now)", p=person_id, w=week, now=now)


def link(engine, now, person_id: int, user: str, locale: str | None = None) -> None:
    """A chat account linked to the person, past onboarding (agreed, language chosen): what a student or an
    adult is once they have redeemed their code (tests/test_dialogs.py plays that part)."""
    sql(engine, "UPDATE person SET locale = :l, consent_at = :now WHERE id = :p", l=locale, now=now, p=person_id)
    sql(engine, "INSERT INTO chatidentity (platform, external_id, chat_id, person_id, failed_attempts, unreachable, "
        "created_at) VALUES ('console', :u, :u, :p, 0, :f, :now)", u=user, p=person_id, f=False, now=now)
    sql(engine, "INSERT INTO conversation (person_id, answers, version, updated_at) VALUES (:p, '{}', 0, :now)",
        p=person_id, now=now)


def linked_student(conversation, engine, now, locale: str, adviser_id: int | None = None,
                   given_name: str = "Ana") -> tuple[Chat, int]:
    person_id, _code = enrol(engine, now, given_name=given_name, adviser_id=adviser_id)
    link(engine, now, person_id, f"student-{person_id}", locale)
    return Chat(conversation, f"student-{person_id}"), person_id


def linked_adviser(conversation, engine, now, given_name: str = "Rosa") -> tuple[Chat, int]:
    adviser_id, _code = enrol(engine, now, given_name=given_name, role="adviser")
    link(engine, now, adviser_id, f"adviser-{adviser_id}")
    return Chat(conversation, f"adviser-{adviser_id}"), adviser_id


def reflection_table(locale: str, subjects: int, named: bool = False) -> list:
    """The whole reflection: per subject grade and expectation; the record; the closing answers; who sees what."""
    w = WORDS[locale]
    first = ["reflection/intro", "reflection/ask_subjects" if named else "reflection/ask_grade"]
    table = [("/reflect" if locale == "en" else "/reflexion", first)]
    if named:
        table.append((w["subjects"], ["reflection/ask_grade"]))
    for n in range(subjects):
        table.append((w["grades"][n], ["reflection/ask_expected"]))
        last = n == subjects - 1
        table.append(((w["higher"], "@about_right", w["lower"])[n % 3],
                      ["reflection/ask_actions" if last else "reflection/ask_grade"]))
    table += [
        (w["actions"], ["reflection/ask_change"]),
        (w["change"], ["reflection/ask_term_goal"]),
        (w["goal"], ["reflection/ask_message"]),
        (w["message"], ["reflection/ask_share_subject"]),
    ]
    shares = [(w["me"], "me"), ("@adviser", "adviser"), (w["family"], "family")]
    for n in range(subjects):
        table.append((shares[n % 3][0], ["reflection/ask_share_subject" if n < subjects - 1
                                         else "reflection/ask_share_closing"]))
    table.append((w["adviser"], ["reflection/summary"]))  # typed: the label works like the button
    return table


def stored(engine, person_id: int) -> tuple:
    reflection_row = sql(engine, "SELECT id, period_title, period_start, period_end, next_title, actions, change, "
                         "term_goal, message, audience, finished_at FROM reportreflection WHERE person_id = :p",
                         p=person_id)[0]
    subjects = sql(engine, "SELECT subject, grade, expected, audience FROM subjectreflection WHERE "
                   "reflection_id = :r ORDER BY id", r=reflection_row.id)
    return reflection_row, subjects


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("count", [2, 5])
def test_a_reflection_per_subject_with_the_record_of_the_period(conversation, engine, now, locale, count):
    chat, person_id = linked_student(conversation, engine, now, locale)
    grading_periods(engine, PERIOD, NEXT_PERIOD)
    titles = ["Algebra I - P3", "English 7", "Life Science", "Spanish for Heritage Speakers", "Art & Design"][:count]
    subject_classes(engine, person_id, titles)
    goal_record(engine, person_id, now)
    transcript = play(chat, reflection_table(locale, count))

    intro = transcript[0][0][1]
    assert "Quarter 1" in intro and str(count) in intro
    first_grade = transcript[0][1][1]
    assert titles[0] in first_grade and f"1 {'of' if locale == 'en' else 'de'} {count}" in first_grade
    record = next(reply for replies in transcript for reply in replies if reply[0] == "reflection/ask_actions")[1]
    for shown in ("read 20 pages a day", "finish 3 algebra units", "write my essay draft",
                  "If I get distracted, then I will put my phone away"):
        assert shown in record
    assert "an old goal of last year" not in record  # outside the period
    assert ("1 of 3" if locale == "en" else "1 de 3") in record and "2" in record  # done, and the streak
    summary = transcript[-1][0]
    assert summary[2] and summary[2][0][1] == "/goals"  # it ends by offering the week's goals
    w = WORDS[locale]
    assert w["goal"] in summary[1] and w["grades"][0] in summary[1]

    # Asked again (a calendar nudge after the student reflected by themself): the summary, not the questions.
    assert [t for t, _, _ in chat.say("/reflect")] == ["reflection/already_done", "reflection/summary"]

    row, subjects = stored(engine, person_id)
    assert (row.period_title, day(row.period_start), day(row.period_end), row.next_title) == (
        "Quarter 1", PERIOD[1], PERIOD[2], "Quarter 2")
    assert (row.actions, row.change, row.term_goal, row.message) == (w["actions"], w["change"], w["goal"],
                                                                     w["message"])
    assert row.audience == "adviser" and row.finished_at is not None
    assert [s.subject for s in subjects] == sorted(titles)  # by title; the homeroom is no subject
    assert [s.grade for s in subjects] == w["grades"][:count]
    assert [s.expected for s in subjects] == [("higher", "about_right", "lower")[n % 3] for n in range(count)]
    assert [s.audience for s in subjects] == [("me", "adviser", "family")[n % 3] for n in range(count)]


@pytest.mark.parametrize("locale", LOCALES)
def test_a_student_with_no_subject_on_the_roster_names_them_and_they_are_kept(conversation, engine, now, locale):
    chat, person_id = linked_student(conversation, engine, now, locale)
    play(chat, [("/reflect", ["reflection/intro", "reflection/ask_subjects"]),
                ("   ", ["errors/need_text", "reflection/ask_subjects"]),
                ("...", ["reflection/need_subjects", "reflection/ask_subjects"])])
    play(chat, reflection_table(locale, 3, named=True)[1:])
    _, subjects = stored(engine, person_id)
    expected = {"en": ["Math", "English", "Biology"], "es": ["Matemáticas", "Lengua", "Biología"]}[locale]
    assert [s.subject for s in subjects] == expected
    kept = [row[0] for row in sql(engine, "SELECT name FROM studentsubject WHERE person_id = :p", p=person_id)]
    assert sorted(kept) == sorted(expected)
    # Next period the subjects are known: the first question is the first subject's grade.
    grading_periods(engine, ("Unit 2", date(2026, 11, 1), date(2026, 11, 21)))
    replies = chat.say("/reflect")
    assert [template for template, _, _ in replies] == ["reflection/intro", "reflection/ask_grade"]
    assert expected[0] in replies[1][1]


def test_without_a_grading_period_the_reflection_covers_the_last_nine_weeks(conversation, engine, now):
    chat, person_id = linked_student(conversation, engine, now, "en")
    subject_classes(engine, person_id, ["Math"])
    play(chat, reflection_table("en", 1))
    row, _ = stored(engine, person_id)
    assert day(row.period_end) == date(2026, 11, 22) and day(row.period_start) == date(2026, 11, 23) - timedelta(
        weeks=9)
    assert row.period_title == "" and row.next_title is None


def test_leaving_and_resuming_keeps_every_answer(conversation, engine, now):
    chat, person_id = linked_student(conversation, engine, now, "en")
    grading_periods(engine, PERIOD)
    subject_classes(engine, person_id, ["Math", "History"])
    play(chat, [("/reflect", ["reflection/intro", "reflection/ask_grade"]),
                ("C", ["reflection/ask_expected"]),
                ("@lower", ["reflection/ask_grade"]),
                ("/cancel", ["commands/left"]),
                ("/goals", ["goals/ask_goal"]),
                ("/cancel", ["commands/left"])])
    assert sql(engine, "SELECT grade FROM subjectreflection WHERE person_id = :p", p=person_id) == [("C",)]
    replies = chat.say("/resume")
    assert [t for t, _, _ in replies] == ["commands/resume_pick"]
    reflection_button = next(payload for label, payload in replies[0][2] if label == "Report-card reflection")
    replies = chat.say(reflection_button)
    assert replies[-1][0] == "reflection/ask_grade" and "Math (2 of 2)" in replies[-1][1]  # History was answered


@pytest.mark.parametrize("locale", LOCALES)
def test_what_the_plan_reads_term_goal_and_self_assessments(conversation, engine, now, locale):
    chat, person_id = linked_student(conversation, engine, now, locale)
    grading_periods(engine, PERIOD, NEXT_PERIOD)
    subject_classes(engine, person_id, ["Algebra I", "English 7"])
    store = Store(engine)
    with store.transaction() as tx:
        assert reflection.term_goal(tx, person_id) is None and reflection.self_assessments(tx, person_id) == []
    play(chat, reflection_table(locale, 2))
    w = WORDS[locale]
    with store.transaction() as tx:
        assert reflection.term_goal(tx, person_id) == w["goal"]
        assessed = reflection.self_assessments(tx, person_id)
        assert [(a["subject"], a["grade"], a["expected"]) for a in assessed] == [
            ("Algebra I", w["grades"][0], "higher"), ("English 7", w["grades"][1], "about_right")]
        assert all(a["on"] == date(2026, 11, 23) for a in assessed)
        # Through the access rules: the family sees neither the "only me" subject nor the adviser-only goal.
        assert [a["subject"] for a in reflection.self_assessments(tx, person_id, access.Viewer.family)] == []
        assert [a["subject"] for a in reflection.self_assessments(tx, person_id, access.Viewer.adviser)] == [
            "English 7"]
        assert reflection.term_goal(tx, person_id, access.Viewer.adviser) == w["goal"]
        assert reflection.term_goal(tx, person_id, access.Viewer.family) is None


# -- who may see what ----------------------------------------------------------------------------


SECRET = "my parents are divorcing and I could not focus"  # kept for the student alone
FOR_ADVISER = "I copied one lab report"  # the adviser may see it, the family may not
FOR_FAMILY = "proud of my science project"


def adult_views(adviser_chat, student_name: str) -> str:
    """Everything an adult can look at, rendered: every adult command that answers at once, bare and naming the
    student (the students list, the digest, a student's summary, the dashboard). A view added later joins this
    list by being registered."""
    seen = []
    for command in REGISTRY.commands_for("adviser"):
        if command.run is not None:
            for said in (f"/{command.name}", f"/{command.name} {student_name}"):
                seen += [reply for _, reply, _ in adviser_chat.say(said)]
    return "\n".join(seen)


def test_an_only_me_answer_never_reaches_an_adult_and_an_adviser_answer_never_the_family(conversation, engine, now):
    adviser_chat, adviser_id = linked_adviser(conversation, engine, now)
    chat, person_id = linked_student(conversation, engine, now, "en", adviser_id=adviser_id)
    grading_periods(engine, PERIOD)
    subject_classes(engine, person_id, ["Math", "Science", "History"])
    play(chat, [("/reflect", ["reflection/intro", "reflection/ask_grade"]),
                (f"D {SECRET}", ["reflection/ask_expected"]), ("@lower", ["reflection/ask_grade"]),
                (f"B {FOR_ADVISER}", ["reflection/ask_expected"]), ("@lower", ["reflection/ask_grade"]),
                (f"A {FOR_FAMILY}", ["reflection/ask_expected"]), ("@higher", ["reflection/ask_actions"]),
                (f"actions {SECRET}", ["reflection/ask_change"]), (f"change {SECRET}", ["reflection/ask_term_goal"]),
                (f"goal {SECRET}", ["reflection/ask_message"]), (f"message {SECRET}", ["reflection/ask_share_subject"]),
                ("@me", ["reflection/ask_share_subject"]), ("@adviser", ["reflection/ask_share_subject"]),
                ("@family", ["reflection/ask_share_closing"]), ("@me", ["reflection/summary"])])
    store = Store(engine)
    with store.transaction() as tx:
        sections = {section.name: section.collect(tx, [person_id], date(2026, 11, 23))
                    for section in REGISTRY.digest_sections()}
        concerns = {concern.kind: concern.collect(tx, [person_id], date(2026, 11, 23))
                    for concern in REGISTRY.concerns()}
        adviser_data = repr((sections, concerns))
        family = repr((reflection.reflections_for(tx, [person_id], access.Viewer.family),
                       reflection.self_assessments(tx, person_id, access.Viewer.family),
                       reflection.term_goal(tx, person_id, access.Viewer.family)))
        own = repr(reflection.reflections_for(tx, [person_id], access.Viewer.student))
        adviser_sees = repr(reflection.reflections_for(tx, [person_id], access.Viewer.adviser))
        highlights = repr([h.collect(tx, [person_id], date(2026, 11, 23)) for h in REGISTRY.highlights()])
        conference = plan.build_portfolio(tx, REGISTRY, person_id, now, "conference", "").html
    views = adult_views(adviser_chat, "Ana") + adviser_data + highlights
    assert SECRET not in conference and FOR_ADVISER not in conference
    assert SECRET not in views and SECRET not in family
    assert SECRET not in adviser_sees and FOR_ADVISER in adviser_sees and FOR_FAMILY in adviser_sees
    assert FOR_ADVISER not in family and FOR_FAMILY in family
    assert SECRET in own and FOR_ADVISER in own  # the student sees all of their own


@given(st.sampled_from(list(access.Audience)), st.sampled_from(list(access.Viewer)))
def test_the_audience_rule_is_a_ladder(audience, viewer):
    """Only me ⊂ my adviser ⊂ my adviser and family: whoever may see a wider audience's answer is in it."""
    ladder = [access.Audience.me, access.Audience.adviser, access.Audience.family]
    reach = {access.Viewer.student: 0, access.Viewer.adviser: 1, access.Viewer.family: 2}[viewer]
    assert access.audience_allows(audience, viewer) == (ladder.index(audience) >= reach)
    assert not access.audience_allows(None, access.Viewer.adviser)  # nothing stored: only the student


# -- how students write their subjects ---------------------------------------------------------------


@pytest.mark.parametrize("typed, expected", [
    ("Math, English and Biology", ["Math", "English", "Biology"]),
    ("math\nscience\nPE", ["math", "science", "PE"]),
    ("1. Art 2. Music 3. Drama", ["Art", "Music", "Drama"]),
    ("Matemáticas, Lengua y Biología", ["Matemáticas", "Lengua", "Biología"]),
    ("English; english; ENGLISH", ["English"]),
    ("Algebra I / Geometry & Physics", ["Algebra I", "Geometry", "Physics"]),
    ("AP Lang - AP Calc - Chem", ["AP Lang", "AP Calc", "Chem"]),
    ("• History\n• Band", ["History", "Band"]),
    ("...", []),
    ("My subjects are: math, art and PE", ["math", "art", "PE"]),
    ("Mis materias son: Historia y Química", ["Historia", "Química"]),
])
def test_subjects_as_students_list_them(typed, expected):
    assert reflection.split_subjects(typed) == expected


@settings(max_examples=200)
@given(st.text(max_size=300))
def test_any_text_gives_a_short_clean_list_of_subjects(typed):
    names = reflection.split_subjects(typed)
    assert len(names) <= reflection.MAX_SUBJECTS
    assert all(0 < len(name) <= 60 and name == name.strip() for name in names)
    assert len({" ".join(name.casefold().split()) for name in names}) == len(names)


@pytest.mark.parametrize("locale", LOCALES)
def test_the_help_lists_the_new_commands(conversation, engine, now, locale):
    chat, _ = linked_student(conversation, engine, now, locale)
    (_, help_text, _), = chat.say("/help")
    assert ("/reflexion" if locale == "es" else "/reflect") in help_text
    assert ("/revision" if locale == "es" else "/checkin") in help_text
    adviser, _ = linked_adviser(conversation, engine, now)
    (_, adult_help, _), = adviser.say("/help")
    assert "/askreflect" in adult_help and "/reflect " not in adult_help


def test_a_students_reflection_and_check_ins_are_exported_and_forgotten(conversation, engine, now):
    from core.school import privacy

    chat, person_id = linked_student(conversation, engine, now, "en")
    grading_periods(engine, PERIOD)
    subject_classes(engine, person_id, ["Math", "Art"])
    play(chat, reflection_table("en", 2))
    sql(engine, "INSERT INTO goal (person_id, week_start, text, category, status, created_at, updated_at) "
        "VALUES (:p, :w, 'read 20 pages', 'content_knowledge', 'open', :now, :now)", p=person_id, w=date(2026, 11, 23),
        now=now)
    play(chat, [("/checkin", ["checkin/ask_status"]), ("@stuck", ["checkin/ask_obstacle"]),
                ("too long", ["checkin/ask_help"]), ("@yes", ["checkin/help_sent", "checkin/done"])])
    tables = ("reportreflection", "subjectreflection", "goalcheckin", "helprequest")
    with Store(engine).transaction() as tx:
        exported = privacy.export(tx, REGISTRY, person_id, now)["tables"]
    assert [len(exported[table]) for table in tables] == [1, 2, 1, 1]
    privacy.forget(engine, REGISTRY, person_id, now)
    assert [sql(engine, f"SELECT COUNT(*) FROM {table}")[0][0] for table in (*tables, "studentsubject")] == [0] * 5


TYPED = {  # what students type instead of tapping: expected, then who may see each subject and the closing answers
    "en": (["worse", "better than I expected", "the same"], "nope", ["just me", "my parents", "advisor"], "only me"),
    "es": (["peor", "más alta", "más o menos"], "nada", ["solo yo", "mis papás", "mi tutora"], "solo yo"),
}


@pytest.mark.parametrize("locale", LOCALES)
def test_typed_answers_work_like_the_buttons(conversation, engine, now, locale):
    chat, person_id = linked_student(conversation, engine, now, locale)
    subject_classes(engine, person_id, ["Art", "Band", "Math"])
    expected, nothing, shares, closing = TYPED[locale]
    table = [("/reflect", ["reflection/intro", "reflection/ask_grade"])]
    for n, said in enumerate(expected):
        table += [("B", ["reflection/ask_expected"]), (said, ["reflection/ask_grade" if n < 2 else
                                                             "reflection/ask_actions"])]
    table += [("x", ["reflection/ask_change"]), ("y", ["reflection/ask_term_goal"]), ("z", ["reflection/ask_message"]),
              (nothing, ["reflection/ask_share_subject"]), (shares[0], ["reflection/ask_share_subject"]),
              (shares[1], ["reflection/ask_share_subject"]), (shares[2], ["reflection/ask_share_closing"]),
              (closing, ["reflection/summary"])]
    play(chat, table)
    row, subjects = stored(engine, person_id)
    assert [(s.expected, s.audience) for s in subjects] == [("lower", "me"), ("higher", "family"),
                                                            ("about_right", "adviser")]
    assert row.message is None and row.audience == "me"
