"""When the report-card reflection comes: after a grading period (roster or calendar), on the next school
day, at each student's time in their zone, in place of that day's weekly nudge; asked by an adviser in chat
or by `companion reflection start`; the weekly cap's order; a reflection asked for and not done reaches the
adviser's triage (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from bot.reflection_cli import register
from core.domain.store import Store, as_moment
from core.engine.pipeline import Engine
from core.engine.registry import CAP_ORDER
from core.features import REGISTRY, reflection
from core.schedule import policy
from tests.helpers import Chat, cli, enrol
from tests.test_reflection import grading_periods, linked_adviser, linked_student, sql

UTC = timezone.utc
MONDAY = date(2026, 11, 23)
QUARTER = ("Quarter 1", date(2026, 8, 24), date(2026, 11, 20))  # ends Friday 20 Nov


def students_in(engine, now, zones: list[str | None], preferred: str = "15:30",
                adviser_id: int | None = None) -> list[int]:
    """Students of school 1 who agreed to the bot, in these time zones (None: the school's), preferring `preferred`."""
    ids = []
    for zone in zones:
        person_id, _ = enrol(engine, now, adviser_id=adviser_id)
        sql(engine, "UPDATE person SET timezone = :z, consent_at = :now WHERE id = :p", z=zone, now=now, p=person_id)
        sql(engine, "INSERT INTO learnerprofile (person_id, checkin_time, updated_at) VALUES (:p, :t, :now)",
            p=person_id, t=preferred, now=now)
        ids.append(person_id)
    return ids


def nudges(engine, person_id: int) -> dict[str, tuple]:
    return {kind: (as_moment(due_at), status, reason) for kind, due_at, status, reason in sql(
        engine, "SELECT kind, due_at, status, reason FROM nudge WHERE person_id = :p ORDER BY id", p=person_id)}


@pytest.mark.parametrize("source", ["roster", "district.ics"])
def test_a_grading_period_plans_the_reflection_on_the_next_school_day_for_every_student(engine, now, source):
    new_york, madrid, default = students_in(engine, now, ["America/New_York", "Europe/Madrid", None])
    grading_periods(engine, QUARTER, source=source)
    policy.plan_week(engine, REGISTRY, MONDAY - timedelta(weeks=1), now)
    assert all("report_card" not in nudges(engine, s) for s in (new_york, madrid, default))
    policy.plan_week(engine, REGISTRY, MONDAY, now)
    assert nudges(engine, new_york)["report_card"][:2] == (datetime(2026, 11, 23, 20, 30, tzinfo=UTC), "planned")
    assert nudges(engine, madrid)["report_card"][:2] == (datetime(2026, 11, 23, 14, 30, tzinfo=UTC), "planned")
    assert nudges(engine, default)["report_card"][0] == datetime(2026, 11, 23, 20, 30, tzinfo=UTC)  # the school's zone
    # It takes the place of that day's weekly nudge (goals, Monday): the reflection offers the goals itself.
    due, status, reason = nudges(engine, new_york)["goals"]
    assert (status, reason) == ("skipped", "report_card takes its place")
    assert nudges(engine, new_york)["review"][1] == "planned"  # Friday's review is another day


def test_a_holiday_after_the_period_moves_it_to_the_next_school_day(engine, now):
    (student,) = students_in(engine, now, ["America/Chicago"])
    grading_periods(engine, QUARTER)
    sql(engine, "INSERT INTO calendarevent (school_id, source, uid, kind, title, starts_on, ends_on, updated_at) "
        "VALUES (1, 'district.ics', 'h1', 'holiday', 'Teacher workday', :d, :d, :now)", d=MONDAY, now=now)
    policy.plan_week(engine, REGISTRY, MONDAY, now)
    found = nudges(engine, student)
    assert found["report_card"][:2] == (datetime(2026, 11, 24, 21, 30, tzinfo=UTC), "planned")  # Tue 15:30 Chicago
    assert "holiday (Teacher workday)" in found["report_card"][2]
    # The goals nudge moved off the holiday to Tuesday too: the reflection takes that day's place.
    assert found["goals"][0].date() == date(2026, 11, 24) and found["goals"][1:] == ("skipped",
                                                                                    "report_card takes its place")


def test_the_weekly_cap_keeps_the_reflection_first_in_one_written_order(engine, now):
    assert CAP_ORDER[:4] == ("report_card", "goals", "review", "checkin")
    assert [t.kind for t in REGISTRY.triggers][:4] == ["report_card", "goals", "review", "checkin"]
    (student,) = students_in(engine, now, ["America/New_York"])
    grading_periods(engine, ("Quarter 1", date(2026, 8, 24), date(2026, 11, 24)))  # ends Tuesday: reflection Wed
    with Store(engine).transaction() as tx:
        REGISTRY.settings.set(tx, 1, "checkin.day", "wednesday", now)
        REGISTRY.settings.set(tx, 1, "nudges.weekly_cap", "3", now)
    policy.plan_week(engine, REGISTRY, MONDAY, now)
    found = nudges(engine, student)
    assert found["report_card"][1] == "planned"
    assert found["checkin"][1:] == ("skipped", "report_card takes its place")  # Wednesday's check-in
    assert found["goals"][1] == found["review"][1] == "planned"


def test_the_nudge_opens_the_reflection_and_the_flow_ends_offering_goals(engine, now):
    conversation = Engine(Store(engine), REGISTRY, clock=lambda: now)
    chat, student = linked_student(conversation, engine, now, "en")
    grading_periods(engine, QUARTER)
    policy.plan_week(engine, REGISTRY, MONDAY, now)
    at = nudges(engine, student)["report_card"][0]
    swept = policy.total(policy.sweep_until_idle(engine, Engine(Store(engine), REGISTRY, clock=lambda: at), at,
                                                 "w1", 100))
    assert swept.sent == 1
    assert [template for template, _, _ in chat.deliver()] == ["reflection/intro", "reflection/ask_subjects"]


def test_an_adviser_asks_their_advisees_in_chat_and_only_theirs(engine, now):
    conversation = Engine(Store(engine), REGISTRY, clock=lambda: now)
    adviser, adviser_id = linked_adviser(conversation, engine, now)
    mine = students_in(engine, now, ["America/New_York", "Europe/Madrid"], adviser_id=adviser_id)
    (other,) = students_in(engine, now, ["America/New_York"])
    replies = adviser.say("/askreflect")
    assert [t for t, _, _ in replies] == ["reflection/asked"] and "2 advisees" in replies[0][1]
    for student in mine:  # 09:00 in New York is class time: at the student's 15:30, through the policy
        assert nudges(engine, student)["report_card_asked"][1] == "planned"
    assert nudges(engine, mine[0])["report_card_asked"][0] == datetime(2026, 11, 23, 20, 30, tzinfo=UTC)
    assert "report_card_asked" not in nudges(engine, other)
    assert "0 newly asked" in adviser.say("/askreflect")[0][1]  # once a day
    student_chat = Chat(conversation, "student")
    assert [t for t, _, _ in student_chat.say("/askreflect")] != ["reflection/asked"]  # not a student's command


@pytest.fixture
def companion(engine):
    """`companion` with these commands on the test database."""
    return cli(engine, register)


def test_companion_reflection_start_for_a_school_or_a_group(companion, engine, now):
    adviser_id, _ = enrol(engine, now, given_name="Rosa", role="adviser")
    grouped = students_in(engine, now, ["America/New_York"], adviser_id=adviser_id)
    others = students_in(engine, now, ["America/New_York", "Europe/Madrid"])
    sql(engine, "UPDATE person SET left_on = :d WHERE id = :p", d=MONDAY, p=others[1])  # left the roster
    group = sql(engine, "SELECT g.sourced_id FROM advisorygroup g JOIN advisorymember m ON m.group_id = g.id "
                "WHERE m.person_id = :p", p=grouped[0])[0][0]
    result = companion("reflection", "start", "--group", group)
    assert result.exit_code == 0, result.output
    assert "1 student, 1 asked to reflect" in result.output
    result = companion("reflection", "start", "--school", "school-1")
    assert result.exit_code == 0 and "2 students" in result.output  # who left is not asked
    assert {kind for kind in nudges(engine, others[0])} == {"report_card_asked"}
    assert nudges(engine, others[1]) == {}
    for bad in (("--school", "nowhere"), ("--group", "nothing")):
        result = companion("reflection", "start", *bad)
        assert result.exit_code != 0 and "no " in result.output
    assert companion("reflection", "start").exit_code != 0  # one of --school and --group
    assert companion("reflection", "start", "--school", "school-1", "--group", group).exit_code != 0


def test_a_reflection_asked_for_and_not_done_within_a_week_reaches_the_advisers_triage(engine, now):
    conversation = Engine(Store(engine), REGISTRY, clock=lambda: now)
    chat, student = linked_student(conversation, engine, now, "en")
    subject_free, done_student = students_in(engine, now, ["America/New_York", "America/New_York"])
    for person_id in (student, done_student):
        sql(engine, "INSERT INTO nudge (person_id, kind, occasion, due_at, expires_at, status, sent_at, created_at) "
            "VALUES (:p, 'report_card', :o, :t, :t, 'sent', :t, :t)", p=person_id, o=date(2026, 11, 6),
            t=datetime(2026, 11, 9, 20, 30, tzinfo=UTC))
    sql(engine, "INSERT INTO reportreflection (person_id, period_title, period_start, period_end, audience, "
        "started_at, finished_at) VALUES (:p, 'Q1', :s, :e, 'me', :t, :t)", p=done_student, s=date(2026, 9, 1),
        e=date(2026, 11, 6), t=datetime(2026, 11, 10, 20, 0, tzinfo=UTC))
    concern = next(c for c in REGISTRY.concerns() if c.kind == "reflection_missed")
    with Store(engine).transaction() as tx:
        found = concern.collect(tx, [student, subject_free, done_student], MONDAY)
        assert set(found) == {student}
        (reason,) = found[student]
        assert reason.since == date(2026, 11, 9) and reason.level == 2  # two weeks
        assert reflection.missed_reflections(tx, [student], date(2026, 11, 12)) == {}  # not yet a week
    line = conversation.catalog.text(concern.template, "es", {"student": "Ana", "reason": {}, **reason.evidence})
    assert "9 nov" in line and "boleta" in line
    finished = next(h for h in REGISTRY.highlights() if h.kind == "reflection_finished")
    with Store(engine).transaction() as tx:
        assert finished.collect(tx, [student, done_student], date(2026, 11, 16)) == {done_student: [{"period": "Q1"}]}
        assert finished.collect(tx, [done_student], MONDAY) == {}  # more than a week ago
    assert conversation.catalog.text(finished.template, "en", {"student": "Ana", "period": "Q1"}) == (
        "finished their report-card reflection on Q1")
