"""The school calendar from .ics: classification, exclusive DTEND, re-import by UID, and all-or-nothing errors."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.schedule_cli import register

from core.features import REGISTRY
from core.schedule import policy as schedule
from core.school.calendar import CalendarError, classify, import_calendar, parse_calendar
from tests.helpers import cli, enrol

FIXTURE = Path(__file__).parent / "fixtures" / "school_calendar.ics"


def ics(*events: str) -> bytes:
    """A calendar holding `events` (each the lines between BEGIN:VEVENT and END:VEVENT)."""
    body = "".join(f"BEGIN:VEVENT\r\n{event.strip()}\r\nEND:VEVENT\r\n" for event in events)
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{body}END:VCALENDAR\r\n".encode()


def stored(engine) -> dict[str, tuple]:
    """The school's calendar events by UID: (kind, title, first day, last day)."""
    with engine.connect() as db:
        rows = db.execute(text("SELECT uid, kind, title, starts_on, ends_on FROM calendarevent")).all()
    return {uid: (kind, title, str(starts_on), str(ends_on)) for uid, kind, title, starts_on, ends_on in rows}


@pytest.mark.parametrize("categories, summary, kind", [
    ([], "Thanksgiving Break", "holiday"),
    ([], "Spring vacation", "holiday"),
    ([], "No School - Teacher Workday", "holiday"),
    ([], "Semester Finals", "exam_week"),
    ([], "Exams week", "exam_week"),
    ([], "End of Marking Period 2", "grading_period"),
    ([], "Report cards go home", "grading_period"),
    ([], "Spring Semester", "term"),
    (["Holiday"], "Professional development", "holiday"),
    (["Grading Period"], "Q1", "grading_period"),
    ([], "Winter concert", None),
    ([], "Breakfast with parents", None),
])
def test_events_are_classified_by_category_or_title(categories, summary, kind):
    assert classify(categories, summary) == kind


def test_import_stores_last_days_inclusive_and_reimport_updates_by_uid(engine, now):
    enrol(engine, now)
    report = import_calendar(engine, FIXTURE.read_bytes(), now)
    assert (report.added, report.updated) == (5, 0)
    assert report.ignored == ["Winter concert"]
    assert report.grading_period_ends == [("End of Quarter 1", date(2026, 10, 23))]
    events = stored(engine)
    assert events["thanksgiving-2026@school.test"] == ("holiday", "Thanksgiving Break - No School",
                                                       "2026-11-26", "2026-11-27")  # DTEND is exclusive
    assert events["teacher-day@school.test"][1:] == ("Professional development", "2026-11-23", "2026-11-23")
    assert events["q1-2026@school.test"][0] == "grading_period"
    changed = FIXTURE.read_bytes().replace(b"DTEND;VALUE=DATE:20261128", b"DTEND;VALUE=DATE:20261130")
    again = import_calendar(engine, changed, now)
    assert (again.added, again.updated, again.unchanged) == (0, 1, 4)  # issue 11: real changes only
    assert stored(engine)["thanksgiving-2026@school.test"][3] == "2026-11-29"
    assert len(stored(engine)) == 5
    # issue 11: the report lists what it understood, closures included
    assert "  closure 2026-11-26 – 2026-11-29: Thanksgiving Break - No School" in again.lines()
    assert again.lines()[0].startswith("calendar of Test School: 0 added, 1 updated, 0 removed, 4 unchanged")


def test_an_imported_holiday_moves_the_planned_nudge(engine, now):
    enrol(engine, now)
    import_calendar(engine, FIXTURE.read_bytes(), now)
    with engine.connect() as db:
        person_id = db.execute(text("SELECT id FROM person")).scalar()
    coming = schedule.outlook(engine, REGISTRY, person_id, now).nudges
    goals, review = coming[0], coming[1]
    assert goals.local.date() == date(2026, 11, 24) and "Professional development" in goals.reason
    assert review.local.date() == date(2026, 11, 25) and "Thanksgiving" in review.reason


@pytest.mark.parametrize("event, complaint", [
    ("UID:x1\r\nSUMMARY:Winter break", "x1 'Winter break': it has no DTSTART"),
    ("UID:x2\r\nSUMMARY:Spring break\r\nDTSTART;VALUE=DATE:20270315\r\nDTEND;VALUE=DATE:20270310",
     "x2 'Spring break': DTEND 2027-03-10 is before DTSTART 2027-03-15"),
    ("UID:x3\r\nSUMMARY:Finals\r\nDTSTART;VALUE=DATE:2027X601", "x3 'Finals': DTSTART is malformed"),
    # issue 11: an event without a UID is no longer refused (its id is derived; tests/test_calendars.py)
    ("UID:x4\r\nSUMMARY:Quarter 3\r\nDTSTART;VALUE=DATE:20270101\r\nRRULE:FREQ=SOMETIMES",
     "x4 'Quarter 3': RRULE is malformed"),
])
def test_a_bad_event_names_itself_and_imports_nothing(engine, now, event, complaint):
    enrol(engine, now)
    good = "UID:ok\r\nSUMMARY:Holiday\r\nDTSTART;VALUE=DATE:20261225"
    with pytest.raises(CalendarError) as raised:
        import_calendar(engine, ics(good, event), now)
    assert complaint in str(raised.value)
    assert str(raised.value).startswith("line 9: event ")  # where the broken VEVENT begins
    assert stored(engine) == {}


def test_a_file_that_is_not_icalendar_is_refused():
    with pytest.raises(CalendarError, match="not a readable iCalendar file"):
        parse_calendar(b"this is not a calendar\r\n")


@pytest.fixture
def companion(engine):
    """`companion` with these commands on the test database."""
    return cli(engine, register)


def test_the_commands_import_a_calendar_and_show_a_students_schedule(companion, engine, now, tmp_path):
    enrol(engine, now, given_name="Lucia")
    imported = companion("calendar", "import", str(FIXTURE))
    assert imported.exit_code == 0, imported.output
    assert "5 added" in imported.output and "End of Quarter 1" in imported.output
    bad = tmp_path / "bad.ics"
    bad.write_bytes(ics("UID:b1\r\nSUMMARY:Spring break"))
    refused = companion("calendar", "import", str(bad))
    assert refused.exit_code == 1 and "b1 'Spring break': it has no DTSTART — nothing was imported" in refused.output
    shown = companion("schedule", "show", "lucia")
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0].startswith("Lucia Test") and "America/New_York, prefers 15:30" in lines[0]
    assert len(lines) == 9 and all("goals" in line or "review" in line for line in lines[1:5])
    # every trigger, those not due these weeks too (the report card, genius hour's check-in: issues 14 and 17)
    assert "report_card " in lines[5] and "none ends in time for these weeks" in lines[5]
    assert "checkin" in lines[6] and "none" in lines[6] and "off (checkin.day is off)" in lines[6]
    assert "project_checkin" in lines[7] and "off (genius_hour_day is off)" in lines[7]
    assert "report_card_asked" in lines[8] and "on demand" in lines[8]
    assert "no reachable chat account" in shown.output  # enrolled, not linked yet
    assert companion("schedule", "show", "nobody").exit_code == 1
    planned = companion("schedule", "plan")
    assert planned.exit_code == 0 and "nudges planned or updated for this week and next" in planned.output
