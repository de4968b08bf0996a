"""The weekly project check-in is a nudge like the others: off until a school names its genius-hour
day, then planned by the same policy (a holiday, a pause and the weekly cap skip it, last in the cap's
order), shown by `companion schedule show` with its reason, and opened once even when two workers
sweep at the same moment (PostgreSQL).
"""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from bot.schedule_cli import register
from core.domain.store import Store
from core.engine.pipeline import Engine
from core.features import REGISTRY, genius
from core.schedule import policy as schedule
from tests.helpers import cli
from tests.test_triggers import MONDAY, add_event, add_people, kinds_shown, outbox, rows



@pytest.fixture
def companion(engine):
    """`companion` with these commands on the test database."""
    return cli(engine, register)


def set_school(engine, now, **settings: str) -> None:
    with Store(engine).transaction() as tx:
        for name, value in settings.items():
            REGISTRY.settings.set(tx, 1, name, value, now)


def with_project(engine, now, student_ids: list[int]) -> None:
    """Each student has an approved project with three milestones, in its weekly check-ins."""
    with Store(engine).transaction() as tx:
        for student in student_ids:
            project = tx.insert("INSERT INTO geniusproject (person_id, status, stage, passion, question, approval, "
                                "created_at, updated_at) VALUES (?, 'active', 'project', 'robots', ?, 'approved', ?, ?)",
                                (student, "How can I build a robot?", tx.ts(now), tx.ts(now)))
            for position in (1, 2, 3):
                tx.execute("INSERT INTO geniusmilestone (project_id, person_id, position, text, due_on) "
                           "VALUES (?, ?, ?, ?, ?)", (project, student, position, f"step {position}",
                                                      tx.day(MONDAY + timedelta(days=7 * position))))


def project_lines(companion, student: int, start: date, weeks: int = 1) -> list[str]:
    shown = companion("schedule", "show", f"p{student}@school.test", "--from", start.isoformat(), "--weeks", str(weeks))
    assert shown.exit_code == 0, shown.output
    return kinds_shown(shown.output).get("project_checkin", [])


def test_the_check_in_is_off_until_the_school_names_its_day(companion, engine, now):
    (student,) = add_people(engine, now, [None])
    (line,) = project_lines(companion, student, MONDAY)
    assert "off (genius_hour_day is off)" in line


def test_schedule_show_lists_the_check_in_and_a_holiday_a_pause_and_the_cap_skip_it(companion, engine, now):
    start = date.today() - timedelta(days=date.today().weekday()) + timedelta(days=7)  # next week: not past yet
    friday = start + timedelta(days=4)
    student, paused = add_people(engine, now, [None, None])
    with Store(engine).transaction() as tx:
        tx.execute("UPDATE person SET paused_until = ? WHERE id = ?", (tx.day(start + timedelta(days=14)), paused))
    set_school(engine, now, genius_hour_day="friday")
    add_event(engine, "holiday", "Teacher Work Day", friday + timedelta(days=7), friday + timedelta(days=7), now)

    planned, on_holiday = project_lines(companion, student, start, weeks=2)
    assert f"{friday:%a %d %b %Y} 15:30" in planned and "weekly" in planned and "planned" in planned
    assert "holiday (Teacher Work Day)" in on_holiday
    (paused_line,) = project_lines(companion, paused, start)
    assert f"paused until {start + timedelta(days=14)}" in paused_line

    # Goals (Monday), the mid-week check-in (Wednesday) and the review (Friday) fill a cap of three:
    # the project check-in comes last in the cap's order.
    set_school(engine, now, **{"checkin.day": "wednesday"})
    (capped,) = project_lines(companion, student, start)
    assert "weekly cap of 3 nudges" in capped
    set_school(engine, now, **{"nudges.weekly_cap": "4"})
    (kept,) = project_lines(companion, student, start)
    assert "weekly cap" not in kept and "planned" in kept


def test_the_nudge_opens_the_check_in_through_the_engine(engine, now):
    student, no_project = add_people(engine, now, [None, None])
    with_project(engine, now, [student])
    set_school(engine, now, genius_hour_day="friday")
    schedule.plan_week(engine, REGISTRY, MONDAY, now)
    due = schedule_due(engine, student)
    conversation = Engine(Store(engine), REGISTRY, clock=lambda: due)
    list(schedule.sweep_until_idle(engine, conversation, due, "w1", 100))
    assert outbox(engine)[student][-1] == "genius/ask_progress"
    assert outbox(engine)[no_project][-1] == "genius/no_project"  # invited to start one
    assert rows(engine, student)["project_checkin"]["status"] == "sent"
    # Unanswered by the next day: the adviser's digest counts a missed check-in (not for the student without a project).
    with Store(engine).transaction() as tx:
        missed = genius.missed(tx, [student, no_project], (due + timedelta(days=2)).date())
    assert set(missed) == {student} and missed[student][0].level == 1


def schedule_due(engine, student: int) -> datetime:
    due_at = rows(engine, student)["project_checkin"]["due_at"]
    return (due_at if isinstance(due_at, datetime) else
            datetime.fromisoformat(due_at).replace(tzinfo=timezone.utc)) + timedelta(minutes=1)


def test_two_workers_on_postgresql_open_each_check_in_once(engine, now):
    if engine.dialect.name != "postgresql":
        pytest.skip("several workers share one database only on PostgreSQL")
    students = add_people(engine, now, [None] * 40)
    with_project(engine, now, students)
    set_school(engine, now, genius_hour_day="friday", **{"review.day": "off"})  # alone at its moment
    schedule.plan_week(engine, REGISTRY, MONDAY, now)
    due = schedule_due(engine, students[0])
    start = threading.Barrier(2)
    reports: dict[str, schedule.SweepReport] = {}

    def work(name: str) -> None:
        conversation = Engine(Store(engine), REGISTRY, clock=lambda: due)
        start.wait()
        reports[name] = schedule.total(schedule.sweep_until_idle(engine, conversation, due, name, 5))

    workers = [threading.Thread(target=work, args=(name,)) for name in ("w1", "w2")]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    opened = outbox(engine)
    assert all(opened[student].count("genius/ask_progress") == 1 for student in students)
    assert reports["w1"].sent + reports["w2"].sent == len(students)
    with engine.connect() as db:
        statuses = db.execute(text("SELECT status, COUNT(*) FROM nudge WHERE kind = 'project_checkin' "
                                   "GROUP BY status")).all()
    assert dict(statuses) == {"sent": len(students)}
