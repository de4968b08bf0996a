"""The adviser's side (issue 16) as dialog tables, in English and Spanish, on SQLite and PostgreSQL: the triage
digest after a scripted week (the expected order written out here, not computed), the advisees list, a
student's summary with fuzzy names, "Followed up" recorded once and dropping a student down, the digest's
settings, and who may see whom (a role matrix over two schools and two advisory groups)."""

from __future__ import annotations

import itertools
import json
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st
from sqlalchemy import text

from core.domain import access
from core.domain.access import View
from core.domain.store import Store
from core.engine.pipeline import Engine
from core.features import REGISTRY
from tests.helpers import Chat, play

MONDAY = date(2026, 11, 23)  # the week of `now` (conftest: Monday 23 November 2026, 14:00 UTC)
LAST_WEEK, TWO_WEEKS_AGO, THREE_WEEKS_AGO = (MONDAY - timedelta(weeks=n) for n in (1, 2, 3))
_ids = itertools.count(1)


@pytest.fixture
def conversation(engine, clock):
    return Engine(Store(engine), REGISTRY, clock=clock)


def sql(engine, statement: str, **params) -> list:
    with engine.begin() as db:
        result = db.execute(text(statement), params)
        return result.all() if result.returns_rows else []


def at(day: date, hour: int = 15) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=timezone.utc)


def school(engine, school_id: int = 1, locale: str = "en") -> int:
    if not sql(engine, "SELECT id FROM school WHERE id = :s", s=school_id):
        sql(engine, "INSERT INTO school (id, sourced_id, name, timezone, locale) VALUES (:s, :src, :n, "
                    "'America/New_York', :l)", s=school_id, src=f"school-{school_id}", n=f"School {school_id}",
            l=locale)
    return school_id


def person(engine, given: str, family: str, role: str = "student", school_id: int = 1, locale: str | None = None,
           linked: bool = True, consented: bool = True, now: datetime | None = None) -> int:
    """Someone on the roster; linked to a console account named after their id unless told otherwise."""
    school(engine, school_id)
    n = next(_ids)
    now = now or at(MONDAY)
    (person_id,), = sql(engine, "INSERT INTO person (sourced_id, school_id, role, given_name, family_name, locale, "
                                "status, consent_at, created_at) VALUES (:src, :school, :role, :g, :f, :l, 'active', "
                                ":c, :now) RETURNING id", src=f"p-{n}-{given}", school=school_id, role=role, g=given,
                        f=family, l=locale, c=now if consented and role == "student" else None, now=now)
    if linked:
        sql(engine, "INSERT INTO chatidentity (platform, external_id, chat_id, person_id, failed_attempts, "
                    "unreachable, created_at) VALUES ('console', :e, :e, :p, 0, :no, :now)",
            e=f"acct-{person_id}", p=person_id, no=False, now=now)
        sql(engine, "INSERT INTO conversation (person_id, answers, version, updated_at) VALUES (:p, '{}', 0, :now)",
            p=person_id, now=now)
    return person_id


def group(engine, adviser_id: int, *students: int, school_id: int = 1) -> int:
    n = next(_ids)
    (group_id,), = sql(engine, "INSERT INTO advisorygroup (sourced_id, school_id, title) VALUES (:s, :school, "
                               "'Advisory') RETURNING id", s=f"g-{n}", school=school_id)
    for member, role in ((adviser_id, "adviser"), *((student, "student") for student in students)):
        sql(engine, "INSERT INTO advisorymember (group_id, person_id, role) VALUES (:g, :p, :r)",
            g=group_id, p=member, r=role)
    return group_id


def goal(engine, student: int, week: date, words: str, status: str = "open", confidence: int | None = 4,
         category: str = "habits_of_success") -> int:
    (goal_id,), = sql(engine, "INSERT INTO goal (person_id, week_start, text, category, confidence, status, "
                              "created_at, updated_at) VALUES (:p, :w, :t, :c, :conf, :s, :now, :now) RETURNING id",
                      p=student, w=week, t=words, c=category, conf=confidence, s=status, now=at(week))
    return goal_id


def review(engine, student: int, goal_id: int, status: str, when: datetime) -> None:
    sql(engine, "INSERT INTO goalreview (goal_id, person_id, status, created_at) VALUES (:g, :p, :s, :at)",
        g=goal_id, p=student, s=status, at=when)
    sql(engine, "UPDATE goal SET status = :s WHERE id = :g", s=status, g=goal_id)


def help_request(engine, student: int, words: str, when: datetime) -> int:
    (request_id,), = sql(engine, "INSERT INTO helprequest (person_id, text, status, created_at) VALUES "
                                 "(:p, :t, 'open', :at) RETURNING id", p=student, t=words, at=when)
    return request_id


def silent_flag(engine, student: int, when: datetime) -> None:
    sql(engine, "INSERT INTO flag (person_id, kind, detail, created_at) VALUES (:p, 'no_response', :d, :at)",
        p=student, d=json.dumps({"kind": "goals"}), at=when)


def alert(engine, student: int, when: datetime) -> int:
    (alert_id,), = sql(engine, "INSERT INTO safetyalert (person_id, category, text, created_at, escalations) "
                               "VALUES (:p, 'bullying', 'they push me every day', :at, 0) RETURNING id",
                       p=student, at=when)
    return alert_id


def profile(engine, student: int, strengths: str, interests: str, aim: str, needs: str = "fractions") -> None:
    sql(engine, "INSERT INTO learnerprofile (person_id, strengths, needs, interests, aim, updated_at) "
                "VALUES (:p, :s, :n, :i, :a, :now)", p=student, s=strengths, n=needs, i=interests, a=aim,
        now=at(MONDAY))


def chat_of(conversation, person_id: int) -> Chat:
    """The person's console account; each Chat numbers its events afresh, so never twice the same event id."""
    return Chat(conversation, f"acct-{person_id}", events=itertools.count(next(_ids) * 1000))


def scripted_week(engine, locale: str = "en", monday: date = MONDAY) -> dict:
    """The demo advisory after a week: a stuck check-in with a help request, a silent student with flags, stalled
    goals, low confidence, a blocked bot, an open alert, a goal met; and another adviser's student. `monday`: the
    week it is now (a test that runs `serve` lives on the real clock)."""
    last_week, two_weeks_ago, three_weeks_ago = (monday - timedelta(weeks=n) for n in (1, 2, 3))
    adviser = person(engine, "Rosa", "Rivera", role="adviser", locale=locale)
    names = {"ana": ("Ana", "Alvarez"), "bo": ("Bo", "Baker"), "cy": ("Cy", "Chen"), "di": ("Di", "Diaz"),
             "ed": ("Ed", "Evans"), "fay": ("Fay", "Flores"), "hal": ("Hal", "Hughes")}
    s = {key: person(engine, *name) for key, name in names.items()}
    group(engine, adviser, *s.values())
    other_adviser = person(engine, "Omar", "Ortiz", role="adviser")
    s["gus"] = person(engine, "Gus", "Garcia")
    group(engine, other_adviser, s["gus"])
    # Ana: stuck at the mid-week check-in, asked for help 9 days ago; unsure about this week's goal.
    help_request(engine, s["ana"], "I don't get how to start the essay", at(monday - timedelta(days=9)))
    goal(engine, s["ana"], monday, "draft the essay intro by Wednesday", confidence=2)
    profile(engine, s["ana"], "drawing", "comics, music", "illustrator")
    # Bo: no answer to a nudge and its follow-up, three weeks in a row.
    for week in (last_week, two_weeks_ago, three_weeks_ago):
        silent_flag(engine, s["bo"], at(week + timedelta(days=1)))
    # Cy: low confidence only.
    goal(engine, s["cy"], monday, "run 2 km on Thursday", confidence=1)
    # Di: carried over, then "not yet", two weeks running.
    first = goal(engine, s["di"], two_weeks_ago, "finish the lab report")
    review(engine, s["di"], first, "carried", at(two_weeks_ago + timedelta(days=4)))
    second = goal(engine, s["di"], last_week, "finish the lab report")
    review(engine, s["di"], second, "not_yet", at(last_week + timedelta(days=4)))
    # Ed: a goal met last week, nothing to worry about.
    met = goal(engine, s["ed"], last_week, "read 40 pages")
    review(engine, s["ed"], met, "done", at(last_week + timedelta(days=4)))
    # Fay: blocked the bot.
    sql(engine, "UPDATE chatidentity SET unreachable = :yes WHERE person_id = :p", yes=True, p=s["fay"])
    # Hal: an open safety alert; Gus (another adviser's) too.
    alert(engine, s["hal"], at(monday - timedelta(days=2)))
    alert(engine, s["gus"], at(monday - timedelta(days=2)))
    help_request(engine, s["gus"], "gus needs help", at(monday - timedelta(days=3)))
    return {"adviser": adviser, "other_adviser": other_adviser, **s}


def lines_order(text: str, names: list[str]) -> list[str]:
    """The names in the order they first appear in `text`."""
    return sorted((name for name in names if name in text), key=text.index)


TRIAGE_ORDER = ["Hal Hughes", "Bo Baker", "Ana Alvarez", "Di Diaz", "Fay Flores", "Cy Chen"]
ALL_NAMES = [*TRIAGE_ORDER, "Ed Evans", "Gus Garcia"]
WORDS = {
    "en": {"help": "asked for help once, 9 days ago", "silent": "3 weeks in a row", "stalled": "2 weeks running",
           "blocked": "has blocked the bot", "unsure": "feels unsure (1 of 5)", "met": 'met a goal: "read 40 pages"',
           "alert": "nobody is on it yet"},
    "es": {"help": "pidió ayuda una vez, hace 9 días", "silent": "3 semanas seguidas", "stalled": "2 semanas seguidas",
           "blocked": "ha bloqueado el bot", "unsure": "se siente poco seguro (1 de 5)",
           "met": 'cumplió una meta: "read 40 pages"', "alert": "nadie se encarga todavía"},
}


@pytest.mark.parametrize("locale", ["en", "es"])
def test_the_digest_ranks_the_scripted_week_in_the_documented_order(conversation, engine, locale):
    s = scripted_week(engine, locale)
    adviser = chat_of(conversation, s["adviser"])
    replies = play(adviser, [("/digest", ["adviser/digest", "adviser/digest_triage", "adviser/digest_triage"])])[0]
    header, triage = replies[0][1], "\n".join(reply[1] for reply in replies[1:])
    assert lines_order(triage, ALL_NAMES) == TRIAGE_ORDER  # Ed has nothing; Gus is another adviser's
    for words in WORDS[locale].values():
        assert words in header + triage, words
    assert "Ed Evans" in header and "Gus" not in header
    buttons = [payload for reply in replies[1:] for _, payload in reply[2]]
    assert buttons == [f"/followedup {s[name.split()[0].lower()]}" for name in TRIAGE_ORDER]
    # every line says why the student is there: each has a reason line and a suggestion
    assert triage.count("→") == len(TRIAGE_ORDER) and triage.count("–") >= len(TRIAGE_ORDER)


def test_the_digest_suggests_from_the_profile_and_the_record(conversation, engine):
    s = scripted_week(engine)
    (_, _, _), (_, triage, _), *_ = chat_of(conversation, s["adviser"]).say("/digest")
    ana = triage[triage.index("Ana Alvarez"):triage.index("Di Diaz")]
    assert "Answer their request for help" in ana and '"draft the essay intro by Wednesday"' in ana
    assert "build on their strength: drawing" in ana and "they care about comics" in ana


def test_followed_up_is_recorded_once_and_drops_the_student_down_until_something_new(conversation, engine, clock):
    s = scripted_week(engine)
    adviser = chat_of(conversation, s["adviser"])
    adviser.say("/digest")
    tap = f"@/followedup {s['hal']}"
    play(adviser, [(tap, ["adviser/followed_up", "adviser/ask_note"])])
    adviser.say(tap)  # a double tap (the engine may drop it as one)
    clock.now += timedelta(minutes=2)
    play(adviser, [(tap, ["adviser/already_followed_up", "adviser/ask_note"]),  # a later tap records nothing either
                   ("called his mother; counselor sees him at 8", ["adviser/note_saved"])])
    actions = sql(engine, "SELECT actor_id, student_id, subject, action, note FROM adultaction")
    assert actions == [(s["adviser"], s["hal"], "person", "followed_up", "called his mother; counselor sees him at 8")]
    replies = adviser.say("/digest")
    triage = "\n".join(reply[1] for reply in replies[1:])
    assert lines_order(triage, ALL_NAMES) == [*TRIAGE_ORDER[1:], "Hal Hughes"]  # dropped to the bottom
    assert "followed up by Rosa Rivera" in triage
    # Something new: Hal asks for help. He is back on top, the follow-up shown with "something new since".
    help_request(engine, s["hal"], "can we talk", at(MONDAY))
    replies = adviser.say("/digest")
    triage = "\n".join(reply[1] for reply in replies[1:])
    assert lines_order(triage, ALL_NAMES) == TRIAGE_ORDER
    assert "something new since" in triage


def test_a_reason_that_got_worse_counts_as_new(conversation, engine, clock):
    s = scripted_week(engine)
    adviser = chat_of(conversation, s["adviser"])
    play(adviser, [(f"@/followedup {s['bo']}", ["adviser/followed_up", "adviser/ask_note"]),
                   ("@none", ["adviser/note_saved"])])
    assert lines_order("\n".join(r[1] for r in adviser.say("/digest")[1:]), ALL_NAMES)[-1] == "Bo Baker"
    silent_flag(engine, s["bo"], at(MONDAY, 16))  # a fourth silent week: worse than at the follow-up
    clock.now = at(MONDAY, 17)
    assert lines_order("\n".join(r[1] for r in adviser.say("/digest")[1:]), ALL_NAMES)[1] == "Bo Baker"
    # tapping again now records a second follow-up (something changed), once
    adviser.say(f"@/followedup {s['bo']}")
    clock.now += timedelta(minutes=2)
    adviser.say(f"@/followedup {s['bo']}")
    assert sql(engine, "SELECT COUNT(*) FROM adultaction WHERE student_id = :p", p=s["bo"]) == [(2,)]


def test_followed_up_on_someone_elses_student_is_refused(conversation, engine):
    s = scripted_week(engine)
    play(chat_of(conversation, s["adviser"]), [(f"@/followedup {s['gus']}", ["adviser/no_such_student"]),
                                               ("/followedup 99999", ["adviser/no_such_student"])])
    assert sql(engine, "SELECT COUNT(*) FROM adultaction") == [(0,)]


# -- the advisees list ----------------------------------------------------------------------------------


STATUS_WORDS = {
    "en": {"not_linked": "has not joined the chat yet", "declined": "did not give consent",
           "stopped": "asked the bot to stop writing", "paused": "paused until Monday, Dec 7",
           "blocked": "has blocked the bot", "goals": "2 goals set, review done", "none": "no goals set, no review yet",
           "alert": "open safety alert (bullying): nobody is on it yet",
           "help": 'asked for help 9 days ago: "I don\'t get how to start the essay"'},
    "es": {"not_linked": "todavía no se ha unido al chat", "declined": "no dio su consentimiento",
           "stopped": "pidió al bot que dejara de escribirle", "paused": "en pausa hasta el lunes, 7 dic",
           "blocked": "ha bloqueado el bot", "goals": "2 metas, revisión hecha", "none": "sin metas, sin revisión todavía",
           "alert": "alerta de seguridad abierta (acoso escolar): nadie se encarga todavía",
           "help": 'pidió ayuda hace 9 días: "I don\'t get how to start the essay"'},
}


@pytest.mark.parametrize("locale", ["en", "es"])
def test_students_shows_each_status_in_plain_words(conversation, engine, locale):
    s = scripted_week(engine, locale)
    extra = {"ivy": person(engine, "Ivy", "Ito", linked=False), "jo": person(engine, "Jo", "Jones", consented=False),
             "kim": person(engine, "Kim", "Kato"), "lu": person(engine, "Lu", "Lopez"), "max": person(engine, "Max", "Mora")}
    group(engine, s["adviser"], *extra.values())
    sql(engine, "UPDATE person SET status = 'stopped' WHERE id IN (:a, :b)", a=extra["jo"], b=extra["kim"])
    sql(engine, "UPDATE person SET paused_until = :d WHERE id = :p", d=date(2026, 12, 7), p=extra["lu"])
    for n in (1, 2):
        goal_id = goal(engine, extra["max"], MONDAY, f"goal {n}")
    review(engine, extra["max"], goal_id, "done", at(MONDAY))
    (template, listing, buttons), = chat_of(conversation, s["adviser"]).say("/students")
    assert template == "adviser/students"
    words = STATUS_WORDS[locale]
    line = {name: next(l for l in listing.splitlines() if l.startswith(f"• {name}")) for name in
            ("Ivy Ito", "Jo Jones", "Kim Kato", "Lu Lopez", "Fay Flores", "Max Mora", "Ed Evans")}
    assert words["not_linked"] in line["Ivy Ito"] and words["declined"] in line["Jo Jones"]
    assert words["stopped"] in line["Kim Kato"] and words["paused"] in line["Lu Lopez"]
    assert words["blocked"] in line["Fay Flores"] and words["goals"] in line["Max Mora"]
    assert words["none"] in line["Ed Evans"]
    assert words["alert"] in listing and words["help"] in listing
    assert "Gus" not in listing and (locale == "en" or "bullying" not in listing)  # the category said, not coded
    assert "_" not in listing  # no internal code anywhere
    assert [payload.split()[0] for _, payload in buttons] == ["/onit", "/handled"]


def test_alerts_and_help_requests_are_acknowledged_from_the_list(conversation, engine, clock):
    s = scripted_week(engine)
    adviser = chat_of(conversation, s["adviser"])
    (_, _, buttons), = adviser.say("/students")
    assert [label for label, _ in buttons] == ["I'm on it (alert): Hal", "Handled (help): Ana"]
    on_alert, handled = (payload for _, payload in buttons)
    play(adviser, [("@" + on_alert, ["safety/acknowledged"]), ("@" + handled, ["checkin/handled"])])
    (_, listing, buttons), = adviser.say("/students")
    assert "Rosa is on it" in listing and "asked for help" not in listing and buttons == ()
    assert sql(engine, "SELECT subject, action FROM adultaction ORDER BY id") == [
        ("safetyalert", "on_it"), ("helprequest", "handled")]
    triage = "\n".join(reply[1] for reply in adviser.say("/digest")[1:])
    assert "asked for help" not in triage  # handled: no longer a reason
    gus_request, = sql(engine, "SELECT id FROM helprequest WHERE person_id = :p", p=s["gus"])
    play(adviser, [(f"/handled {gus_request[0]}", ["checkin/no_such_request"])])


# -- one student's summary -----------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["Ana Alvarez", "ana", "alvares", "Anna Alvarez", "ALVAREZ ana"])
def test_student_summary_finds_a_misspelled_or_partial_name(conversation, engine, typed):
    s = scripted_week(engine)
    (template, summary, buttons), = chat_of(conversation, s["adviser"]).say(f"/student {typed}")
    assert template == "adviser/summary"
    assert summary.startswith("Ana Alvarez")
    for words in ("fractions", "comics, music", "illustrator", "drawing", '"draft the essay intro by Wednesday"',
                  "asked for help once", "Suggestion: Answer their request for help"):
        assert words in summary, words
    assert buttons == (("✓ Followed up: Ana", f"/followedup {s['ana']}"),)


def test_student_summary_of_someone_elses_advisee_shows_nothing(conversation, engine):
    s = scripted_week(engine)
    for typed in ("Gus Garcia", "gus", "Garcia"):
        (template, text_, _), = chat_of(conversation, s["adviser"]).say(f"/student {typed}")
        assert template == "adviser/no_such_student" and "needs help" not in text_
    play(chat_of(conversation, s["adviser"]), [(f"/student #{s['gus']}", ["adviser/no_such_student"]),
                                              ("/student", ["adviser/ask_student_name"])])


def test_student_with_two_close_names_asks_which(conversation, engine):
    s = scripted_week(engine)
    group(engine, s["adviser"], person(engine, "Ana", "Alvarado"))
    (template, _, buttons), = chat_of(conversation, s["adviser"]).say("/student ana alva")
    assert template == "adviser/pick_student" and {label for label, _ in buttons} == {"Ana Alvarez", "Ana Alvarado"}
    (template, summary, _), = chat_of(conversation, s["adviser"]).say("@" + buttons[0][1])
    assert template == "adviser/summary" and summary.startswith(buttons[0][0])


def test_spanish_adviser_uses_spanish_words(conversation, engine):
    s = scripted_week(engine, "es")
    adviser = chat_of(conversation, s["adviser"])
    (template, summary, _), = adviser.say("/estudiante alvares")
    assert template == "adviser/summary" and "Sugerencia: Responde a su petición de ayuda" in summary
    assert adviser.say("/estudiantes")[0][0] == "adviser/students"


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(typed=st.text(min_size=1, max_size=40))
def test_whatever_an_adult_types_after_student_they_get_an_answer_and_never_another_advisers_student(
        conversation, engine, typed):
    if not sql(engine, "SELECT 1 FROM person WHERE given_name = 'Rosa'"):
        scripted_week(engine)
    adviser_id, = sql(engine, "SELECT id FROM person WHERE given_name = 'Rosa'")[0]
    replies = chat_of(conversation, adviser_id).say(f"/student {typed}")
    assert replies and replies[0][0].startswith(("adviser/", "commands/", "safety/"))
    assert all("Gus" not in reply[1] for reply in replies)


# -- the digest's settings -------------------------------------------------------------------------------


def test_settings_move_the_digest_to_the_new_day_and_time(conversation, engine, now):
    from core.schedule.policy import plan_week

    s = scripted_week(engine)
    plan_week(engine, REGISTRY, MONDAY, now)
    due, = sql(engine, "SELECT due_at FROM nudge WHERE person_id = :p AND kind = 'adviser_digest'", p=s["adviser"])
    assert str(due[0]).startswith("2026-11-23 12:30")  # the school's default: Monday 07:30 in New York
    play(chat_of(conversation, s["adviser"]), [
        ("/settings", ["adviser/ask_digest_day"]), ("@wed", ["adviser/ask_digest_time"]),
        ("4:15pm", ["adviser/ask_language"]), ("Español", ["adviser/settings_saved"])])
    plan_week(engine, REGISTRY, MONDAY, now)
    due, = sql(engine, "SELECT due_at FROM nudge WHERE person_id = :p AND kind = 'adviser_digest'", p=s["adviser"])
    assert str(due[0]).startswith("2026-11-25 21:15")  # Wednesday 16:15 in New York
    assert sql(engine, "SELECT locale FROM person WHERE id = :p", p=s["adviser"]) == [("es",)]
    (template, text_, _), = chat_of(conversation, s["adviser"]).say("/ajustes")
    assert template == "adviser/ask_digest_day" and "miércoles a las 16:15" in text_


def test_settings_off_plans_no_digest(conversation, engine, now):
    from core.schedule.policy import plan_week

    s = scripted_week(engine)
    play(chat_of(conversation, s["adviser"]), [("/settings", ["adviser/ask_digest_day"]),
                                              ("@off", ["adviser/ask_language"]),
                                              ("@en", ["adviser/settings_saved"])])
    plan_week(engine, REGISTRY, MONDAY, now)
    assert sql(engine, "SELECT COUNT(*) FROM nudge WHERE person_id = :p", p=s["adviser"]) == [(0,)]


# -- the class figures, group by group (an administrator's view of their school) ---------------------------------


# The scripted week seen on its Monday reports the week before (LAST_WEEK): Di "not yet" and Ed done, against the
# week before that (Di carried); Gus's group set nothing. Every goal is a habit of success.
FIGURES = {
    "en": ("Class figures, week of Monday, Nov 16: 8 students in 2 advisory groups, this week against last:\n"
           "• set goals: 2 (last week 1)\n• reviewed their week: 2 (last week 1)\n"
           "• goals done: 1 of 2 (last week 0 of 1)\n• Habits of success: 1 of 2 done (last week 0 of 1)",
           "Advisory (Rosa Rivera), 7 students:\n• set goals: 2 (last week 1)\n• reviewed their week: 2 (last week 1)\n"
           "• goals done: 1 of 2 (last week 0 of 1)\n• Habits of success: 1 of 2 done (last week 0 of 1)\n\n"
           "Advisory (Omar Ortiz), 1 student:\n• set goals: 0 (last week 0)\n• reviewed their week: 0 (last week 0)\n"
           "• goals done: 0 of 0 (last week 0 of 0)"),
    "es": ("Datos de los grupos, semana del lunes, 16 nov: 8 estudiantes en 2 grupos de tutoría, esta semana frente a "
           "la anterior:\n• se pusieron metas: 2 (la semana pasada 1)\n• revisaron su semana: 2 (la semana pasada 1)\n"
           "• metas cumplidas: 1 de 2 (la semana pasada 0 de 1)\n"
           "• Hábitos de éxito: 1 de 2 cumplidas (la semana pasada 0 de 1)",
           "Advisory (Rosa Rivera), 7 estudiantes:\n• se pusieron metas: 2 (la semana pasada 1)\n"
           "• revisaron su semana: 2 (la semana pasada 1)\n• metas cumplidas: 1 de 2 (la semana pasada 0 de 1)\n"
           "• Hábitos de éxito: 1 de 2 cumplidas (la semana pasada 0 de 1)\n\n"
           "Advisory (Omar Ortiz), 1 estudiante:\n• se pusieron metas: 0 (la semana pasada 0)\n"
           "• revisaron su semana: 0 (la semana pasada 0)\n• metas cumplidas: 0 de 0 (la semana pasada 0 de 0)"),
}


@pytest.mark.parametrize("locale", ["en", "es"])
def test_an_administrator_sees_their_schools_figures_group_by_group(conversation, engine, locale):
    scripted_week(engine, locale)
    admin = chat_of(conversation, person(engine, "Ari", "Admin", role="admin", locale=locale))
    command = {"en": "/figures", "es": "/cifras"}[locale]
    (_, school, _), (_, groups, _) = play(admin, [(command, ["adviser/figures", "adviser/group_figures"])])[0]
    assert (school, groups) == FIGURES[locale]
    alerts, *home = conversation.overview("console", admin.user)  # Slack's App Home: the school's open alerts first
    assert [page.text for page in home] == list(FIGURES[locale])
    assert alerts.text.startswith(ALERTS[locale].split("\n")[0])


def test_an_administrator_of_another_school_and_a_counselor_see_no_figures(conversation, engine):
    s = scripted_week(engine)
    other_admin = chat_of(conversation, person(engine, "Zoe", "Admin", role="admin", school_id=school(engine, 2)))
    (_, said, _), = play(other_admin, [("/figures", ["adviser/figures"])])[0]
    assert said == "There are no class figures for you to see."
    counselor = chat_of(conversation, person(engine, "Cora", "Counselor", role="counselor"))
    for viewer in (counselor, chat_of(conversation, s["ana"])):  # figures are not theirs to see: not a command
        assert viewer.say("/figures")[0][:2] == ("commands/unknown", "I don't know /figures.")


def test_an_adviser_sees_only_their_own_groups_figures(conversation, engine):
    s = scripted_week(engine)
    group(engine, s["adviser"], person(engine, "Ivy", "Ito"))  # a second group of Rosa's
    (_, school, _), (_, groups, _) = play(chat_of(conversation, s["adviser"]), [
        ("/figures", ["adviser/figures", "adviser/group_figures"])])[0]
    assert school.startswith("Class figures, week of Monday, Nov 16: 8 students in 2 advisory groups")
    assert groups.count("Advisory (Rosa Rivera)") == 2 and "Omar" not in groups
    assert "Advisory (Rosa Rivera), 1 student:\n• set goals: 0 (last week 0)" in groups


ALERTS = {
    "en": 'Open safety alerts and help requests (3):\n• Ana Alvarez\n'
          '   ✋ asked for help 9 days ago: "I don\'t get how to start the essay"\n\n'
          '• Gus Garcia\n   ⚠ open safety alert (bullying): nobody is on it yet\n'
          '   ✋ asked for help 3 days ago: "gus needs help"\n\n'
          '• Hal Hughes\n   ⚠ open safety alert (bullying): nobody is on it yet',
    "es": 'Alertas de seguridad y peticiones de ayuda abiertas (3):\n• Ana Alvarez\n'
          '   ✋ pidió ayuda hace 9 días: "I don\'t get how to start the essay"\n\n'
          '• Gus Garcia\n   ⚠ alerta de seguridad abierta (acoso escolar): nadie se encarga todavía\n'
          '   ✋ pidió ayuda hace 3 días: "gus needs help"\n\n'
          '• Hal Hughes\n   ⚠ alerta de seguridad abierta (acoso escolar): nadie se encarga todavía',
}


@pytest.mark.parametrize("locale", ["en", "es"])
def test_an_administrator_lists_and_acts_on_their_schools_open_alerts(conversation, engine, locale):
    s = scripted_week(engine, locale)
    admin = chat_of(conversation, person(engine, "Ari", "Admin", role="admin", locale=locale))
    (_, listing, buttons), = play(admin, [({"en": "/alerts", "es": "/alertas"}[locale], ["adviser/alerts"])])[0]
    assert listing == ALERTS[locale]  # both advisory groups of the school, every open item in plain words
    alert_of = dict(sql(engine, "SELECT person_id, id FROM safetyalert"))
    help_of = dict(sql(engine, "SELECT person_id, id FROM helprequest"))
    assert [payload for _, payload in buttons] == [f"/onit {alert_of[s['gus']]}", f"/onit {alert_of[s['hal']]}",
                                                   f"/handled {help_of[s['ana']]}", f"/handled {help_of[s['gus']]}"]
    play(admin, [("@" + buttons[0][1], ["safety/acknowledged"])])
    (_, listing, buttons), = admin.say("/alerts")
    assert ("Ari is on it" if locale == "en" else "Ari se encarga") in listing and len(buttons) == 3


def test_the_open_alerts_of_another_school_or_anothers_advisees_are_not_listed(conversation, engine):
    s = scripted_week(engine)
    other_admin = chat_of(conversation, person(engine, "Zoe", "Admin", role="admin", school_id=school(engine, 2)))
    play(other_admin, [("/alerts", ["adviser/alerts"])])
    assert other_admin.say("/alerts")[0][1:] == ("No open safety alerts or help requests: nothing waits for you.", ())
    (_, listing, _), = chat_of(conversation, s["adviser"]).say("/alerts")
    assert lines_order(listing, ALL_NAMES) == ["Ana Alvarez", "Hal Hughes"] and "Gus" not in listing


# -- who may see what --------------------------------------------------------------------------------------


def role_world(engine) -> dict:
    """Two schools; school 1 has two advisory groups, school 2 one. One person of every role in school 1, and an
    administrator of school 2."""
    w = {}
    w["s1a"], w["s1b"], w["s1c"] = (person(engine, n, "One") for n in ("Amy", "Ben", "Cat"))
    w["s2a"] = person(engine, "Dan", "Two", school_id=school(engine, 2))
    w["adviser1"] = person(engine, "Ada", "Adviser", role="adviser")
    w["adviser2"] = person(engine, "Abe", "Adviser", role="adviser")
    w["adviser3"] = person(engine, "Al", "Adviser", role="adviser", school_id=2)
    group(engine, w["adviser1"], w["s1a"], w["s1b"])
    group(engine, w["adviser2"], w["s1c"])
    group(engine, w["adviser3"], w["s2a"], school_id=2)
    w["counselor"] = person(engine, "Cora", "Counselor", role="counselor")
    w["admin"] = person(engine, "Ari", "Admin", role="admin")
    w["admin2"] = person(engine, "Zed", "Admin", role="admin", school_id=2)
    return w


STUDENTS_OF = ("s1a", "s1b", "s1c", "s2a")
# Who may see which student in which view: the expected table, written out.
SCHOOL_1 = {"s1a", "s1b", "s1c"}
EXPECTED = {
    "s1a": {view: {"s1a"} for view in View},
    "adviser1": {view: {"s1a", "s1b"} for view in View},
    "adviser2": {view: {"s1c"} for view in View},
    "counselor": {view: (SCHOOL_1 if view in (View.alerts, View.summary) else set()) for view in View},
    "admin": {view: (SCHOOL_1 if view in (View.alerts, View.figures, View.summary) else set()) for view in View},
    "admin2": {view: ({"s2a"} if view in (View.alerts, View.figures, View.summary) else set()) for view in View},
    None: {view: set(STUDENTS_OF) for view in View},  # the operator at the command line
}


def test_role_matrix_every_view_every_role_every_student(engine):
    w = role_world(engine)
    store = Store(engine)
    with store.transaction() as tx:
        for viewer, allowed in EXPECTED.items():
            viewer_id = w[viewer] if viewer else None
            for view in View:
                seen = {key for key in STUDENTS_OF if access.may_see(tx, viewer_id, w[key], view)}
                assert seen == allowed[view], (viewer, view)
                listed = {key for key in STUDENTS_OF if w[key] in access.visible_ids(tx, viewer_id, view)}
                assert listed == allowed[view], (viewer, view)


def test_role_matrix_through_the_commands(conversation, engine):
    w = role_world(engine)
    names = {"s1a": "Amy One", "s1b": "Ben One", "s1c": "Cat One", "s2a": "Dan Two"}
    group_of = {"s1a": "(Ada Adviser)", "s1b": "(Ada Adviser)", "s1c": "(Abe Adviser)", "s2a": "(Al Adviser)"}
    for key in STUDENTS_OF:
        help_request(engine, w[key], f"help for {names[key]}", at(MONDAY))
        alert(engine, w[key], at(MONDAY))  # stays open: "I'm on it" is not tapped here
    for viewer in ("s1a", "adviser1", "adviser2", "counselor", "admin", "admin2"):
        chat = chat_of(conversation, w[viewer])
        listing = " ".join(reply[1] for reply in chat.say("/students"))
        digest = " ".join(reply[1] for reply in chat.say("/digest"))
        class_figures = " ".join(reply[1] for reply in chat.say("/figures"))
        open_alerts = " ".join(reply[1] for reply in chat.say("/alerts"))
        for key in STUDENTS_OF:
            student = names[key]
            (template, summary, _), *_ = chat.say(f"/student {student}")
            followed = chat.say(f"/followedup {w[key]}")[0][0]
            request, = sql(engine, "SELECT id, status FROM helprequest WHERE person_id = :p", p=w[key])
            may_list = key in EXPECTED[viewer][View.students] and viewer != "s1a"
            assert (student in listing) == may_list, (viewer, key, "students")
            assert (student in digest) == (key in EXPECTED[viewer][View.digest] and viewer != "s1a"), (viewer, key)
            may_count = key in EXPECTED[viewer][View.figures] and viewer != "s1a"
            assert (group_of[key] in class_figures) == may_count, (viewer, key, "figures")
            may_act = key in EXPECTED[viewer][View.alerts] and viewer != "s1a"
            assert (student in open_alerts) == may_act, (viewer, key, "alerts")
            may_summary = key in EXPECTED[viewer][View.summary] and viewer != "s1a"
            assert (template == "adviser/summary") == may_summary, (viewer, key, "summary")
            assert (followed == "adviser/followed_up") == may_summary, (viewer, key, "followed up")
            if request[1] == "open":  # not handled by someone before: handling it is allowed or refused
                handled = chat.say(f"/handled {request[0]}")[0][0]
                assert (handled == "checkin/handled") == may_act, (viewer, key, "help request")
            chat.say("/cancel")
            chat.deliver()


@pytest.mark.parametrize("audience, shown", [("me", False), ("adviser", True), ("family", True)])
def test_the_summary_shows_what_the_student_shared_and_never_what_they_kept_to_themself(conversation, engine,
                                                                                        audience, shown):
    s = scripted_week(engine)
    sql(engine, "INSERT INTO reportreflection (person_id, period_title, period_start, period_end, message, audience, "
                "started_at, finished_at) VALUES (:p, 'Quarter 1', :start, :end, :m, :a, :at, :at)",
        p=s["ana"], start=date(2026, 8, 24), end=date(2026, 11, 20), m="my grandmother is ill, I miss classes",
        a=audience, at=at(MONDAY))
    (template, summary, _), = chat_of(conversation, s["adviser"]).say("/student Ana")
    assert template == "adviser/summary"
    assert ("my grandmother is ill" in summary) == shown
    assert ("What they want you to know (Quarter 1)" in summary) == shown


def test_an_adviser_of_116_students_gets_every_message_within_the_chat_limits(conversation, engine):
    adviser = person(engine, "Tara", "Teacher", role="adviser")
    students = [person(engine, f"Student{n}", f"Family{n:03d}") for n in range(116)]
    for first in range(0, 116, 29):  # four classes of 29
        group(engine, adviser, *students[first:first + 29])
    for n, student in enumerate(students):
        help_request(engine, student, "I need help with the lab report, " * 20, at(MONDAY - timedelta(days=n % 20)))
        done = goal(engine, student, LAST_WEEK, f"finish chapter {n}", confidence=1 + n % 5)
        review(engine, student, done, "done", at(LAST_WEEK + timedelta(days=4)))
    chat = chat_of(conversation, adviser)
    listing = chat.say("/students")
    digest = chat.say("/digest")
    assert [template for template, _, _ in listing] == ["adviser/students"] * 10  # 12 to a message
    assert sum(text_.count("• ") for _, text_, _ in listing) == 116
    assert digest[0][0] == "adviser/digest" and len(digest) == 1 + 116 // 5 + 1
    for _, said, buttons in listing + digest:
        assert len(said) < 3000 and len(buttons) <= 25  # Slack's section and actions limits; Telegram's 4,096
