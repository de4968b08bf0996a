"""Nudges (SPEC §4): time zones, daylight saving, the calendar, quiet hours, pauses, caps, follow-ups,
and exactly-once sweeps through crashes and concurrent workers. Every clock here is injected."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time as wall
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings, strategies as st
from sqlalchemy import text
from sqlmodel import Session, select

from core.features import REGISTRY
from core.schedule import policy as schedule
from core.engine.pipeline import Engine
from core.domain.messages import Inbound
from core.schedule.policy import DayMark, Rules, SchoolCalendar, plan_week
from core.domain.models import DEFAULT_TIMEZONE
from core.domain.settings import Values
from core.domain.store import Store, as_moment
from tests.helpers import Clock

UTC = timezone.utc
MONDAY = date(2026, 11, 23)  # the conftest `now` falls in this week


def school_rules(**settings) -> Rules:
    """The rules of a school with these settings (by key) and the defaults for the rest."""
    return Rules.of(REGISTRY.triggers, Values(REGISTRY.settings.keys, settings), DEFAULT_TIMEZONE)


NO_QUIET = school_rules(**{"quiet_hours.start": time(0), "quiet_hours.end": time(0), "class_time.start": time(0),
                    "class_time.end": time(0)})
ROOT = Path(__file__).resolve().parents[1]


def slots_by_kind(rules: Rules, zone: str, preferred: str = "15:30", week: date = MONDAY,
                  calendar: SchoolCalendar = SchoolCalendar()) -> dict[str, schedule.Slot]:
    """One week's slots for a student in `zone`, keyed by kind."""
    return {slot.kind: slot for slot in schedule.week_slots(rules, calendar, ZoneInfo(zone),
                                                            schedule.parse_clock(preferred), week)}


# -- the policy, without a database ----------------------------------------------------------------


def test_both_sides_of_the_date_line_get_their_own_monday_afternoon():
    auckland = slots_by_kind(school_rules(), "Pacific/Auckland")
    pago_pago = slots_by_kind(school_rules(), "Pacific/Pago_Pago")
    honolulu = slots_by_kind(school_rules(), "Pacific/Honolulu")
    # Monday 15:30 in Auckland (NZDT, UTC+13) is still Sunday night in UTC …
    assert auckland["goals"].due_at == datetime(2026, 11, 23, 2, 30, tzinfo=UTC)
    # … and Monday 15:30 in Pago Pago (UTC−11) is already Tuesday in UTC: a day and a day apart.
    assert pago_pago["goals"].due_at == datetime(2026, 11, 24, 2, 30, tzinfo=UTC)
    assert honolulu["goals"].due_at == datetime(2026, 11, 24, 1, 30, tzinfo=UTC)
    for slots in (auckland, pago_pago, honolulu):
        assert slots["goals"].day == MONDAY and slots["review"].day == MONDAY + timedelta(days=4)
        assert slots["goals"].local_time == time(15, 30) and slots["goals"].reason is None


def test_the_same_local_time_across_the_autumn_dst_change():
    before = slots_by_kind(school_rules(), "America/New_York", week=date(2026, 10, 26))
    after = slots_by_kind(school_rules(), "America/New_York", week=date(2026, 11, 2))  # clocks went back on Nov 1
    assert before["goals"].due_at == datetime(2026, 10, 26, 19, 30, tzinfo=UTC)  # EDT, UTC−4
    assert after["goals"].due_at == datetime(2026, 11, 2, 20, 30, tzinfo=UTC)  # EST, UTC−5
    assert before["review"].due_at.astimezone(ZoneInfo("America/New_York")).time() == time(15, 30)


def test_a_time_the_spring_dst_change_skips_goes_at_the_moment_after():
    sunday_school = school_rules(**{"goals.day": 6, "review.day": None, "quiet_hours.start": time(0),
                             "quiet_hours.end": time(0), "class_time.start": time(0), "class_time.end": time(0)})
    goals = slots_by_kind(sunday_school, "America/New_York", preferred="02:30", week=date(2026, 3, 2))["goals"]
    assert goals.day == date(2026, 3, 8)
    assert goals.due_at == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)  # 03:30 EDT
    assert "daylight saving" in goals.reason


def test_quiet_hours_and_class_time_move_the_nudge():
    assert schedule.place(school_rules(), MONDAY, time(22, 15)) == (time(20, 30),
                                                            "moved from 22:15 to 20:30: quiet hours 21:00–07:00")
    assert schedule.place(school_rules(), MONDAY, time(5))[0] == time(7)
    moved, reason = schedule.place(school_rules(), MONDAY, time(10))
    assert moved == time(15) and "class time 08:00–15:00" in reason
    assert schedule.place(school_rules(), date(2026, 11, 28), time(10)) == (time(10), None)  # no class on Saturday
    assert schedule.place(school_rules(), MONDAY, time(15, 30)) == (time(15, 30), None)


def test_holidays_move_the_goal_prompt_later_and_the_review_earlier():
    thanksgiving = SchoolCalendar((DayMark("holiday", "Thanksgiving break", date(2026, 11, 26), date(2026, 11, 27)),
                                   DayMark("holiday", "Staff day", date(2026, 11, 23), date(2026, 11, 23))))
    slots = slots_by_kind(school_rules(), "America/New_York", calendar=thanksgiving)
    assert slots["goals"].day == date(2026, 11, 24) and "holiday (Staff day)" in slots["goals"].reason
    assert slots["review"].day == date(2026, 11, 25) and "Thanksgiving" in slots["review"].reason
    assert slots["goals"].status == slots["review"].status == "planned"


def test_no_nudge_at_all_in_a_week_of_holidays_or_outside_term():
    winter = SchoolCalendar((DayMark("holiday", "Winter break", date(2026, 12, 21), date(2027, 1, 1)),))
    slots = slots_by_kind(school_rules(), "America/New_York", week=date(2026, 12, 21), calendar=winter)
    assert {slot.status for slot in slots.values()} == {"skipped"}
    assert slots["goals"].reason == "holiday (Winter break)"
    summer = SchoolCalendar((DayMark("term", "Fall semester", date(2026, 8, 24), date(2026, 12, 18)),))
    july = slots_by_kind(school_rules(), "America/New_York", week=date(2027, 7, 5), calendar=summer)
    assert july["goals"].reason == "outside term"


def test_the_weekly_cap_drops_the_check_in_first_and_exam_weeks_have_none():
    capped = slots_by_kind(school_rules(**{"checkin.day": 2, "nudges.weekly_cap": 2}), "Europe/Madrid")
    assert capped["checkin"].status == "skipped" and capped["checkin"].reason == "weekly cap of 2 nudges"
    assert capped["goals"].status == capped["review"].status == "planned"
    exams = SchoolCalendar((DayMark("exam_week", "Finals", MONDAY, MONDAY + timedelta(days=4)),))
    exam_week = slots_by_kind(school_rules(**{"checkin.day": 2}), "Europe/Madrid", calendar=exams)
    assert exam_week["checkin"].reason == "exam week (Finals)"


def test_a_pause_lasts_until_the_day_it_names():
    assert schedule.personal_reason("active", date(2026, 11, 25), date(2026, 11, 24)) == "paused until 2026-11-25"
    assert schedule.personal_reason("active", date(2026, 11, 25), date(2026, 11, 25)) is None
    assert schedule.personal_reason("stopped", None, MONDAY) == "stopped"


def test_a_follow_up_waits_for_the_next_school_day_at_the_students_time():
    zone = ZoneInfo("America/New_York")
    friday_review = datetime(2026, 11, 27, 20, 30, tzinfo=UTC)
    due = schedule.followup_due(school_rules(), SchoolCalendar(), zone, time(15, 30), friday_review)
    assert due.astimezone(zone) == datetime(2026, 11, 30, 15, 30, tzinfo=zone)  # Monday, not the weekend


ZONES = ("Pacific/Auckland", "Pacific/Chatham", "Pacific/Kiritimati", "Pacific/Pago_Pago", "Pacific/Honolulu",
         "America/New_York", "America/Santiago", "Europe/London", "Asia/Kathmandu", "Australia/Lord_Howe")


@settings(max_examples=300, deadline=None)
@given(zone=st.sampled_from(ZONES), hour=st.integers(0, 23), minute=st.sampled_from([0, 15, 30, 59]),
       weeks=st.integers(0, 104), checkin_day=st.one_of(st.none(), st.integers(0, 4)))
def test_a_planned_nudge_never_lands_at_night_in_class_or_on_the_wrong_day(zone, hour, minute, weeks, checkin_day):
    rules = school_rules(**{"checkin.day": checkin_day})
    week = date(2026, 1, 5) + timedelta(weeks=weeks)
    for slot in schedule.week_slots(rules, SchoolCalendar(), ZoneInfo(zone), time(hour, minute), week):
        local = slot.due_at.astimezone(ZoneInfo(zone))
        assert local.date() == slot.day == week + timedelta(days=rules.day_of(slot.kind))
        assert schedule.off_hours(rules, local.date(), local.time()) is None, (slot, local)
        if slot.reason is None:
            assert local.time() == time(hour, minute)


# -- the database: students in bulk ----------------------------------------------------------------


def add_students(engine, now: datetime, zones: list[str | None], school_zone: str = "America/New_York",
                 **person) -> list[int]:
    """Linked, consenting students with a conversation row, written with raw SQL for speed."""
    store = Store(engine)
    with store.transaction() as tx:
        if tx.one("SELECT id FROM school WHERE id = 1") is None:
            tx.execute("INSERT INTO school (id, sourced_id, name, timezone, locale) "
                       "VALUES (1, 's1', 'School', ?, 'en')", (school_zone,))
        first = tx.one("SELECT COALESCE(MAX(id), 0) FROM person")[0] + 1
        ids = list(range(first, first + len(zones)))
        tx.cursor.executemany(store.sql(
            "INSERT INTO person (id, sourced_id, school_id, role, given_name, family_name, email, timezone, status, "
            "paused_until, consent_at, created_at) VALUES (?, ?, 1, 'student', ?, 'Test', ?, ?, ?, ?, ?, ?)"),
            [(pid, f"p-{pid}", f"Student{pid}", f"s{pid}@school.test", zone, person.get("status", "active"),
              tx.day(person.get("paused_until")), tx.ts(now), tx.ts(now)) for pid, zone in zip(ids, zones)])
        tx.cursor.executemany(store.sql(
            "INSERT INTO chatidentity (platform, external_id, chat_id, person_id, failed_attempts, unreachable, "
            "created_at) VALUES ('console', ?, ?, ?, 0, ?, ?)"),
            [(f"u{pid}", f"u{pid}", pid, False, tx.ts(now)) for pid in ids])
        tx.cursor.executemany(store.sql(
            "INSERT INTO conversation (person_id, answers, version, updated_at) VALUES (?, '{}', 0, ?)"),
            [(pid, tx.ts(now - timedelta(days=7))) for pid in ids])
    if engine.dialect.name == "postgresql":  # explicit ids leave the sequence behind
        with engine.begin() as db:
            db.execute(text("SELECT setval(pg_get_serial_sequence('person', 'id'), (SELECT MAX(id) FROM person))"))
    return ids


def outbox_per_student(engine) -> dict[int, list[str]]:
    """The templates queued for each student, in order."""
    with engine.connect() as db:
        rows = db.execute(text("SELECT person_id, template FROM outbox ORDER BY id")).all()
    found: dict[int, list[str]] = {}
    for person_id, template in rows:
        found.setdefault(person_id, []).append(template)
    return found


def nudge_rows(engine, person_id: int) -> dict[str, tuple]:
    """A student's nudges by kind: (status, reason)."""
    with engine.connect() as db:
        rows = db.execute(text("SELECT kind, status, reason FROM nudge WHERE person_id = :p"), {"p": person_id}).all()
    return {kind: (status, reason) for kind, status, reason in rows}


def run_until_idle(engine, conversation, now: datetime, worker: str = "w1", limit: int = 200) -> schedule.SweepReport:
    """Sweep at `now` until nothing is left."""
    return schedule.total(schedule.sweep_until_idle(engine, conversation, now, worker, limit))


def test_a_planned_week_sends_each_nudge_at_the_students_own_time(engine, now):
    auckland, new_york, honolulu = add_students(engine, now, ["Pacific/Auckland", None, "Pacific/Honolulu"])
    clock = Clock(datetime(2026, 11, 23, 3, 0, tzinfo=UTC))
    conversation = Engine(Store(engine), REGISTRY, clock=clock)
    assert plan_week(engine, REGISTRY, MONDAY, clock.now) == 6
    assert plan_week(engine, REGISTRY, MONDAY, clock.now) == 0  # planning again changes nothing that did not change
    with engine.begin() as db:  # the student picks another time: the next planning moves the nudges
        db.execute(text("INSERT INTO learnerprofile (person_id, checkin_time, updated_at) VALUES (:p, '16:00', :n)"),
                   {"p": new_york, "n": clock.now})
    assert plan_week(engine, REGISTRY, MONDAY, clock.now) == 2
    with engine.begin() as db:
        db.execute(text("DELETE FROM learnerprofile"))
    assert plan_week(engine, REGISTRY, MONDAY, clock.now) == 2
    with engine.connect() as db:
        assert db.execute(text("SELECT COUNT(*) FROM nudge")).scalar() == 6
    run_until_idle(engine, conversation, clock.now)
    assert outbox_per_student(engine) == {auckland: ["goals/ask_goal"]}  # only Auckland's Monday afternoon has come
    clock.now = datetime(2026, 11, 23, 20, 30, tzinfo=UTC)
    run_until_idle(engine, conversation, clock.now)
    assert set(outbox_per_student(engine)) == {auckland, new_york}
    clock.now = datetime(2026, 11, 24, 1, 30, tzinfo=UTC)
    run_until_idle(engine, conversation, clock.now)
    assert outbox_per_student(engine)[honolulu] == ["goals/ask_goal"]
    with engine.connect() as db:
        state = db.execute(text("SELECT flow, state FROM conversation WHERE person_id = :p"), {"p": honolulu}).one()
    assert tuple(state) == ("goals", "goal")  # the nudge opened the goals flow through the engine


def test_paused_and_stopped_students_are_skipped_with_the_reason(engine, now):
    (paused,) = add_students(engine, now, [None], paused_until=date(2026, 11, 30))
    (stopped,) = add_students(engine, now, [None], status="stopped")
    (later_paused,) = add_students(engine, now, [None])
    plan_week(engine, REGISTRY, MONDAY, now)
    assert nudge_rows(engine, paused)["goals"] == ("skipped", "paused until 2026-11-30")
    assert nudge_rows(engine, stopped)["review"] == ("skipped", "stopped")
    with engine.begin() as db:  # paused after the week was planned: the sweep looks again
        db.execute(text("UPDATE person SET paused_until = :d WHERE id = :p"),
                   {"d": date(2026, 11, 25), "p": later_paused})
    run_until_idle(engine, Engine(Store(engine), REGISTRY, clock=lambda: now), datetime(2026, 11, 23, 20, 30, tzinfo=UTC))
    assert nudge_rows(engine, later_paused)["goals"] == ("skipped", "paused until 2026-11-25")
    assert outbox_per_student(engine) == {}


def test_nudges_missed_beyond_the_grace_window_are_skipped_not_sent_in_a_burst(engine, now):
    (late, ) = add_students(engine, now, [None])
    (on_time,) = add_students(engine, now, ["America/Los_Angeles"])
    plan_week(engine, REGISTRY, MONDAY, now)
    back_up = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)  # New York's 15:30 was 6.5 h ago, Los Angeles' 3.5 h
    report = run_until_idle(engine, Engine(Store(engine), REGISTRY, clock=lambda: back_up), back_up)
    assert (report.stale, report.sent) == (1, 1)
    assert nudge_rows(engine, late)["goals"] == ("skipped", "stale: missed its grace window")
    assert outbox_per_student(engine) == {on_time: ["goals/ask_goal"]}


def test_a_late_nudge_that_would_arrive_at_night_is_skipped(engine, now):
    (student,) = add_students(engine, now, [None])
    plan_week(engine, REGISTRY, MONDAY, now)
    night = datetime(2026, 11, 24, 2, 5, tzinfo=UTC)  # 21:05 in New York, still inside the 6 h grace window
    report = run_until_idle(engine, Engine(Store(engine), REGISTRY, clock=lambda: night), night)
    assert (report.claimed, report.sent, report.skipped) == (1, 0, 1)
    assert nudge_rows(engine, student)["goals"] == ("skipped",
                                                    "late: it would arrive at 21:05, in quiet hours 21:00–07:00")
    assert outbox_per_student(engine) == {}


def test_a_follow_up_due_while_the_server_was_down_waits_for_the_students_next_afternoon(engine, now):
    (student,) = add_students(engine, now, [None])
    clock = Clock(datetime(2026, 11, 23, 20, 30, tzinfo=UTC))
    conversation = Engine(Store(engine), REGISTRY, clock=clock)
    plan_week(engine, REGISTRY, MONDAY, clock.now)
    run_until_idle(engine, conversation, clock.now)
    clock.now = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)  # Tuesday 22:00 in New York: too late to write
    assert run_until_idle(engine, conversation, clock.now).followed_up == 0
    with engine.connect() as db:
        waiting = db.execute(text("SELECT followup_due_at FROM nudge WHERE kind = 'goals'")).scalar()
    assert as_moment(waiting) == datetime(2026, 11, 25, 20, 30, tzinfo=UTC)  # Wednesday 15:30
    clock.now = datetime(2026, 11, 25, 20, 30, tzinfo=UTC)
    assert run_until_idle(engine, conversation, clock.now).followed_up == 1
    assert outbox_per_student(engine)[student] == ["goals/ask_goal", "nudges/followup"]


def test_a_claim_whose_worker_died_past_the_grace_window_is_skipped_as_stale(engine, now):
    (student,) = add_students(engine, now, [None])
    plan_week(engine, REGISTRY, MONDAY, now)
    due = datetime(2026, 11, 23, 20, 30, tzinfo=UTC)
    assert len(schedule.claim(Store(engine), due, "doomed", 10)) == 1  # then the worker dies
    back_up = due + timedelta(hours=7)  # its claim lapsed, and the 6 h grace window with it
    report = run_until_idle(engine, Engine(Store(engine), REGISTRY, clock=lambda: back_up), back_up, worker="fresh")
    assert (report.stale, report.sent) == (1, 0)
    assert nudge_rows(engine, student)["goals"] == ("skipped", "stale: missed its grace window")
    assert outbox_per_student(engine) == {}


def test_planning_a_chunk_of_people_at_a_time_misses_and_doubles_nobody(engine, now, monkeypatch):
    students = add_students(engine, now, [None, "Pacific/Auckland", None, "Asia/Kolkata", None])
    monkeypatch.setattr(schedule, "PLAN_CHUNK", 2)  # three statements: two, two and one student
    assert plan_week(engine, REGISTRY, MONDAY, now) == 10
    assert plan_week(engine, REGISTRY, MONDAY, now) == 0
    with engine.connect() as db:
        per_student = dict(db.execute(text("SELECT person_id, COUNT(*) FROM nudge GROUP BY person_id")).all())
    assert per_student == {student: 2 for student in students}


def test_the_sweep_reads_only_the_nudges_in_flight_not_the_sent_history(engine, now):
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL chooses its plans from statistics a test database does not have")
    add_students(engine, now, [None])
    plan_week(engine, REGISTRY, MONDAY, now)
    stamp = now.isoformat(" ")
    with engine.connect() as db:
        def plan(statement: str, params: tuple) -> str:
            """SQLite's query plan for `statement`, as one line."""
            return " ".join(row[-1] for row in db.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params))

        for waiting, order, index in ((schedule.PLANNED_DUE, "due_at", "ix_nudge_planned_due_at"),
                                      (schedule.CLAIM_LAPSED, "claimed_at", "ix_nudge_claimed_at")):
            claim = schedule.CLAIM.format(waiting=waiting, order=order, limit=10, lock="")
            assert f"USING INDEX {index}" in plan(claim, ("w1", stamp, stamp, stamp))
        followups = plan(schedule.FOLLOWUP_QUERY.format(limit=10), (False, stamp))
        assert "SEARCH n USING INDEX ix_nudge_followup_due_at" in followups


def test_apscheduler_only_wakes_the_sweeps(engine, now):
    from apscheduler.schedulers.background import BackgroundScheduler

    (student,) = add_students(engine, now, [None])
    clock = Clock(datetime(2026, 11, 23, 20, 30, tzinfo=UTC))
    scheduler = BackgroundScheduler(timezone=UTC)
    schedule.wake_sweeps(scheduler, engine, Engine(Store(engine), REGISTRY, clock=clock), "w1")
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"nudges.sweep", "nudges.plan"}
    assert jobs["nudges.plan"].func() == 4  # this week and next
    assert jobs["nudges.sweep"].func().sent == 1
    assert outbox_per_student(engine) == {student: ["goals/ask_goal"]}


def test_holidays_in_the_calendar_move_planned_nudges(engine, now):
    (student,) = add_students(engine, now, [None])
    with engine.begin() as db:
        db.execute(text("INSERT INTO calendarevent (school_id, uid, kind, title, starts_on, ends_on, updated_at) "
                        "VALUES (1, 'tg', 'holiday', 'Thanksgiving', :s, :e, :n)"),
                   {"s": date(2026, 11, 26), "e": date(2026, 11, 27), "n": now})
    plan_week(engine, REGISTRY, MONDAY, now)
    with engine.connect() as db:
        due_at = db.execute(text("SELECT due_at FROM nudge WHERE person_id = :p AND kind = 'review'"),
                            {"p": student}).scalar()
    assert as_moment(due_at) == datetime(2026, 11, 25, 20, 30, tzinfo=UTC)
    assert "Thanksgiving" in nudge_rows(engine, student)["review"][1]


def test_follow_up_once_then_flag_and_never_follow_up_someone_who_answered(engine, now):
    silent, answers = add_students(engine, now, [None, None])
    clock = Clock(datetime(2026, 11, 23, 20, 30, tzinfo=UTC))
    conversation = Engine(Store(engine), REGISTRY, clock=clock)
    plan_week(engine, REGISTRY, MONDAY, clock.now)
    assert run_until_idle(engine, conversation, clock.now).sent == 2
    clock.now += timedelta(hours=2)
    conversation.handle(Inbound("console", "answer-1", f"u{answers}", f"u{answers}", text="Read two chapters"))
    clock.now = datetime(2026, 11, 24, 20, 30, tzinfo=UTC)  # Tuesday, the student's 15:30
    report = run_until_idle(engine, conversation, clock.now)
    assert (report.followed_up, report.answered, report.flagged) == (1, 1, 0)
    clock.now += timedelta(hours=24)
    assert run_until_idle(engine, conversation, clock.now).flagged == 1
    clock.now += timedelta(days=1)  # Thursday: before Friday's review
    assert not run_until_idle(engine, conversation, clock.now)  # never nagging: nothing more after the flag
    templates = outbox_per_student(engine)
    assert templates[silent] == ["goals/ask_goal", "nudges/followup"]
    assert "nudges/followup" not in templates[answers]
    with Session(engine) as session:
        flags = session.exec(select(schedule.Flag)).all()
    assert [(flag.person_id, flag.kind) for flag in flags] == [(silent, "no_response")]
    assert "follow-up" in flags[0].detail


def test_the_schedule_explains_itself(engine, now):
    (student,) = add_students(engine, now, ["Pacific/Auckland"], paused_until=date(2026, 11, 30))
    with Store(engine).transaction() as tx:
        REGISTRY.settings.set(tx, 1, "checkin.day", "wednesday", now)
        REGISTRY.settings.set(tx, 1, "nudges.weekly_cap", "2", now)
    seen = schedule.outlook(engine, REGISTRY, student, now)
    assert seen.zone == "Pacific/Auckland"
    this_week = [(n.kind, n.status, n.reason) for n in seen.nudges[:3]]
    assert this_week == [("goals", "skipped", "paused until 2026-11-30"),
                         ("checkin", "skipped", "weekly cap of 2 nudges"),
                         ("review", "skipped", "paused until 2026-11-30")]
    assert [n.status for n in seen.nudges[3:6]] == ["planned", "skipped", "planned"]
    # then every trigger not due in these weeks, with why (the report card, genius hour's check-in: issues 14, 17)
    assert {n.kind: n.status for n in seen.nudges[6:]} == {"report_card": "none", "project_checkin": "none",
                                                          "report_card_asked": "none"}
    assert schedule.find_students(engine, f"s{student}@school.test") == [(student, f"Student{student} Test")]
    assert schedule.find_students(engine, f"student{student}")[0][0] == student


# -- exactly once: crashes and concurrent workers --------------------------------------------------


class CrashingEngine(Engine):
    """A conversation engine whose worker dies right after the batch that opened the n-th flow was committed."""

    def __init__(self, *args, crash_after: int, **kwargs):
        """`crash_after`: how many flows open before the worker dies."""
        super().__init__(*args, **kwargs)
        self.left = crash_after

    def handle_many(self, events, bots=(), priority=0):
        """Handle the batch (committed), then die once the n-th flow is among those opened."""
        queued = super().handle_many(events, bots, priority)
        self.left -= len(events)
        if self.left <= 0:
            raise KeyboardInterrupt("worker killed")  # after the commit, before the nudges are marked sent
        return queued


def due_week(engine, now: datetime, students: int) -> datetime:
    """Students in New York with this week planned; returns the moment all Monday nudges are due."""
    add_students(engine, now, [None] * students)
    plan_week(engine, REGISTRY, MONDAY, now)
    return datetime(2026, 11, 23, 20, 30, tzinfo=UTC)


def assert_exactly_one_nudge_each(engine, students: int) -> None:
    """Every student has exactly one goal prompt in the outbox, and every goals nudge is marked sent."""
    per_student = outbox_per_student(engine)
    assert len(per_student) == students
    assert {tuple(templates) for templates in per_student.values()} == {("goals/ask_goal",)}
    with engine.connect() as db:
        statuses = db.execute(text("SELECT status, COUNT(*) FROM nudge WHERE kind = 'goals' GROUP BY status")).all()
    assert dict(statuses) == {"sent": students}
    with engine.connect() as db:  # nudges queue behind replies to students
        assert db.execute(text("SELECT DISTINCT priority FROM outbox")).scalars().all() == [1]


def test_a_worker_that_dies_mid_sweep_is_taken_over_and_nobody_gets_two(engine, now):
    students = 1200
    due = due_week(engine, now, students)
    crashing = CrashingEngine(Store(engine), REGISTRY, clock=lambda: due, crash_after=700)
    with pytest.raises(KeyboardInterrupt):
        run_until_idle(engine, crashing, due, worker="doomed")
    restarted = due + schedule.CLAIM_LEASE  # the dead worker's claims have expired
    run_until_idle(engine, Engine(Store(engine), REGISTRY, clock=lambda: restarted), restarted, worker="fresh")
    assert_exactly_one_nudge_each(engine, students)


class FlakyEngine(Engine):
    """A conversation engine that fails for one chat account."""

    def __init__(self, *args, broken: str, **kwargs):
        """`broken`: the chat account whose events fail."""
        super().__init__(*args, **kwargs)
        self.broken = broken

    def handle(self, inbound, priority=0, bot=""):
        """Fail for the broken account, as a bug or a lost connection would."""
        if inbound.sender == self.broken:
            raise RuntimeError("database went away")
        return super().handle(inbound, priority, bot)

    def handle_many(self, events, bots=(), priority=0):
        """A batch with the broken account in it fails as a whole."""
        if any(inbound.sender == self.broken for inbound in events):
            raise RuntimeError("database went away")
        return super().handle_many(events, bots, priority)


def test_one_failing_nudge_holds_up_nobody_and_is_tried_again(engine, now):
    due = due_week(engine, now, 5)
    with engine.connect() as db:
        unlucky = db.execute(text("SELECT MIN(id) FROM person")).scalar()
    flaky = FlakyEngine(Store(engine), REGISTRY, clock=lambda: due, broken=f"u{unlucky}")
    report = run_until_idle(engine, flaky, due)
    assert (report.sent, report.failed) == (4, 1)
    later = due + schedule.CLAIM_LEASE
    assert run_until_idle(engine, Engine(Store(engine), REGISTRY, clock=lambda: later), later).sent == 1
    assert_exactly_one_nudge_each(engine, 5)


SWEEPER = """
import sys
from datetime import datetime
from core.domain.db import make_engine
from core.engine.pipeline import Engine
from core.features import REGISTRY
from core.schedule.policy import sweep
from core.domain.store import Store
engine = make_engine(sys.argv[1])
due = datetime.fromisoformat(sys.argv[2])
conversation = Engine(Store(engine), REGISTRY, clock=lambda: due)
while sweep(engine, conversation, due, "doomed", limit=50):
    pass
"""


def test_a_killed_sweeper_process_then_a_restart_sends_every_nudge_exactly_once(engine, now):
    students = 3000
    due = due_week(engine, now, students)
    url = engine.url.render_as_string(hide_password=False)
    worker = subprocess.Popen([sys.executable, "-c", SWEEPER, url, due.isoformat()], cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = wall.monotonic() + 60
    while wall.monotonic() < deadline and len(outbox_per_student(engine)) < 300:
        wall.sleep(0.02)  # waiting on a real process, not on the schedule's clock
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    sent_before_kill = len(outbox_per_student(engine))
    assert 0 < sent_before_kill < students, "the worker should die in the middle of its sweep"
    restarted = due + schedule.CLAIM_LEASE
    run_until_idle(engine, Engine(Store(engine), REGISTRY, clock=lambda: restarted), restarted, worker="fresh")
    assert_exactly_one_nudge_each(engine, students)


def test_two_workers_on_postgresql_send_every_nudge_once(engine, now):
    if engine.dialect.name != "postgresql":
        pytest.skip("several workers share one database only on PostgreSQL")
    students = 1500
    due = due_week(engine, now, students)
    reports: dict[str, schedule.SweepReport] = {}

    def work(name: str) -> None:
        """One worker sweeping until there is nothing left."""
        reports[name] = run_until_idle(engine, Engine(Store(engine), REGISTRY, clock=lambda: due), due, worker=name, limit=25)

    workers = [threading.Thread(target=work, args=(name,)) for name in ("w1", "w2")]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    assert_exactly_one_nudge_each(engine, students)
    assert reports["w1"].sent + reports["w2"].sent == students
    assert reports["w1"].sent > 0 and reports["w2"].sent > 0
