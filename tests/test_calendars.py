"""The school year as schools publish it (issue 11): calendars that never silence a school year, grading periods
the reflection can trust.

One small file of each kind a school publishes, written here from RFC 5545, OneRoster 1.1/1.2 and what
export tools write (tests/fixtures/calendars/): for each, the import's report, the rows stored and
`companion schedule show STUDENT --from DATE` for the weeks around it. Then the academic sessions of
the roster, a bad file, the school's own words, a calendar served over HTTP and read again daily,
and the reading that stops at the first error without reading the rest.
"""

from __future__ import annotations

import http.server
import io
import shutil
import threading
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import text

import bot.schedule_cli
from bot.cli import main as companion_main
from bot.schedule_cli import register
from core.domain.store import Store
from core.features import REGISTRY
from core.school.calendar import (CalendarError, calendar_url, classify, is_holiday_feed, parse_calendar,
                                  read_event_words, reimport_calendars, shown_source)
from core.school.demo import write_demo_roster
from tests.helpers import enrol

FIXTURES = Path(__file__).parent / "fixtures" / "calendars"


@pytest.fixture
def companion(engine, now, monkeypatch):
    """`companion` with the calendar and schedule commands on the test database, its clock at `now`."""
    monkeypatch.setattr(bot.schedule_cli, "utc_now", lambda: now)

    @click.group()
    @click.pass_context
    def main(ctx: click.Context) -> None:
        """The test's stand-in for `companion`."""
        ctx.obj = SimpleNamespace(engine=engine, registry=REGISTRY)  # the report card follows each grading period

    register(main, lambda ctx: ctx.obj)

    def run(*args: str, code: int = 0) -> list[str]:
        result = CliRunner().invoke(main, [str(arg) for arg in args])
        assert result.exit_code == code, result.output
        return result.output.splitlines()
    return run


def student(engine, now, zone: str) -> int:
    """Lucia, a student of the one school (in `zone`) who agreed to the bot and chats on the console."""
    person_id, _ = enrol(engine, now, given_name="Lucia", school_timezone=zone)
    with Store(engine).transaction() as tx:
        tx.execute("UPDATE person SET consent_at = ? WHERE id = ?", (tx.ts(now), person_id))
        tx.execute("INSERT INTO chatidentity (platform, external_id, chat_id, person_id, failed_attempts, unreachable, "
                   "created_at) VALUES ('console', 'lucia', 'lucia', ?, 0, ?, ?)", (person_id, False, tx.ts(now)))
    return person_id


def stored(engine) -> list[tuple]:
    """Every calendar row: (kind, first day, last day, title, source), in date order."""
    with engine.connect() as db:
        rows = db.execute(text("SELECT kind, starts_on, ends_on, title, source FROM calendarevent")).all()
    return sorted((kind, str(first), str(last), title, source) for kind, first, last, title, source in rows)


def week(run, start: str, weeks: int = 1) -> list[str]:
    """`companion schedule show lucia --from START`: its nudge lines, spaces squeezed."""
    lines = run("schedule", "show", "lucia", "--from", start, "--weeks", weeks)
    return [" ".join(line.split()) for line in lines[1:] if not line.strip().startswith("—")]


# -- one file of each kind -----------------------------------------------------------------------------


def test_a_district_calendar_with_one_day_semester_events_and_no_school_categories(companion, engine, now):
    """The issue's first failure: one-day "semester" events made terms, and every other day was "outside term"."""
    student(engine, now, "America/New_York")
    report = companion("calendar", "import", FIXTURES / "district.ics")
    assert report == [
        "calendar of Test School from district.ics: 6 added, 0 updated, 0 removed, 0 unchanged "
        "(1 early dismissal, 1 grading period, 4 closures)",
        "  grading period ends 2026-12-18: End of 2nd Quarter (report-card reflection the next school day)",
        "  closure 2026-11-03: Election Day - District Closed",
        "  closure 2026-11-11: Veterans Day Observed",
        "  closure 2026-11-25 – 2026-11-27: Thanksgiving Recess",
        "  closure 2026-12-21 – 2027-01-01: Winter Recess - Schools Closed",
        "  early dismissal 2026-12-04: Early Dismissal LHS Only - Semester Chg",
        "  left out, not a term, grading period, closure, exam week or early dismissal: "
        "'LHS Winter Holiday Concert', 'Board of Education Meeting'",
        "  left out, shorter than 14 days, so not a term (a term is a span: from its start to its end marker, or one "
        "event of two weeks or more): 'Spring Semester Course Requests Due'",
    ]
    assert [row[:4] for row in stored(engine)] == [
        ("early_dismissal", "2026-12-04", "2026-12-04", "Early Dismissal LHS Only - Semester Chg"),
        ("grading_period", "2026-12-18", "2026-12-18", "End of 2nd Quarter"),
        ("holiday", "2026-11-03", "2026-11-03", "Election Day - District Closed"),  # CATEGORIES:no-school
        ("holiday", "2026-11-11", "2026-11-11", "Veterans Day Observed"),
        ("holiday", "2026-11-25", "2026-11-27", "Thanksgiving Recess"),
        ("holiday", "2026-12-21", "2027-01-01", "Winter Recess - Schools Closed"),
    ]
    # No term span: nothing is outside term. From 30 November to 21 December every nudge goes out.
    assert week(companion, "2026-11-30", 3) == [
        "Mon 30 Nov 2026 15:30 EST goals weekly planned",
        "Fri 04 Dec 2026 15:30 EST review weekly planned",
        "Mon 07 Dec 2026 15:30 EST goals weekly planned",
        "Fri 11 Dec 2026 15:30 EST review weekly planned",
        "Mon 14 Dec 2026 15:30 EST goals weekly planned",
        "Fri 18 Dec 2026 15:30 EST review weekly planned",
    ]
    assert week(companion, "2026-12-21")[:2] == [
        "Mon 21 Dec 2026 15:30 EST goals weekly skipped holiday (Winter Recess - Schools Closed)",
        "Fri 25 Dec 2026 15:30 EST review weekly skipped holiday (Winter Recess - Schools Closed)",
    ]
    assert week(companion, "2026-11-23")[1] == ("Tue 24 Nov 2026 15:30 EST review weekly planned moved from Fri to "
                                                "Tue: holiday (Thanksgiving Recess)")
    assert week(companion, "2027-01-04")[:2] == [  # the report-card reflection waits for the first school day
        "Mon 04 Jan 2027 15:30 EST report_card calendar planned after End of 2nd Quarter (ended Fri 18 Dec), on the "
        "first school day after holiday (Winter Recess - Schools Closed)",
        "Mon 04 Jan 2027 15:30 EST goals weekly skipped report_card takes its place",  # issue 14: one nudge that day
    ]


def test_importing_again_reports_real_changes_only_and_a_dry_run_saves_nothing(companion, engine, now, tmp_path):
    student(engine, now, "America/New_York")
    companion("calendar", "import", FIXTURES / "district.ics")
    again = companion("calendar", "import", FIXTURES / "district.ics")
    assert again[0] == ("calendar of Test School from district.ics: 0 added, 0 updated, 0 removed, 6 unchanged "
                        "(1 early dismissal, 1 grading period, 4 closures)")
    before = stored(engine)
    edited = tmp_path / "district.ics"  # the same calendar, published again with one change and one event gone
    data = (FIXTURES / "district.ics").read_bytes().replace(b"SUMMARY:Veterans Day Observed", b"SUMMARY:Veterans Day")
    start = data.index(b"BEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20261103")
    edited.write_bytes(data[:start] + data[data.index(b"END:VEVENT\r\n", start) + 12:])
    dry = companion("calendar", "import", edited, "--dry-run")
    assert dry[:2] == ["calendar of Test School from district.ics: 0 added, 1 updated, 1 removed, 4 unchanged "
                       "(1 early dismissal, 1 grading period, 3 closures)", "  dry run: nothing was saved"]
    assert "  removed, no longer in the calendar: 'Election Day - District Closed'" in dry
    assert stored(engine) == before
    done = companion("calendar", "import", edited)
    assert done[0].startswith("calendar of Test School from district.ics: 0 added, 1 updated, 1 removed, 4 unchanged")
    assert ("holiday", "2026-11-11", "2026-11-11", "Veterans Day", "district.ics") in stored(engine)
    assert len(stored(engine)) == 5


def test_terms_are_spans_from_their_start_and_end_markers(companion, engine, now):
    """A UK primary school's term dates from Google Calendar: "Autumn Term starts" … "Autumn Term ends"."""
    student(engine, now, "Europe/London")
    report = companion("calendar", "import", FIXTURES / "uk_term_dates.ics")
    assert report[0] == ("calendar of Test School from uk_term_dates.ics: 7 added, 0 updated, 0 removed, 0 unchanged "
                         "(5 closures, 2 terms)")
    assert report[1:3] == [
        "  term 2026-09-02 – 2026-12-18: Autumn Term starts … Autumn Term ends - 1.30pm finish",
        "  term 2027-01-05 – 2027-03-26: Spring Term starts … Spring Term ends",
    ]
    assert "  closure 2026-10-26 – 2026-10-30: Half Term" in report
    assert "  closure 2027-01-05: INSET Day - school closed to pupils" in report
    assert report[-1] == ("  left out, not a term, grading period, closure, exam week or early dismissal: "
                          "'Christmas Jumper Day (Save the Children)'")
    assert [row for row in stored(engine) if row[0] == "term"] == [
        ("term", "2026-09-02", "2026-12-18", "Autumn Term starts … Autumn Term ends - 1.30pm finish",
         "uk_term_dates.ics"),
        ("term", "2027-01-05", "2027-03-26", "Spring Term starts … Spring Term ends", "uk_term_dates.ics"),
    ]
    assert week(companion, "2026-12-14", 4) == [
        "Mon 14 Dec 2026 15:30 GMT goals weekly planned",
        "Fri 18 Dec 2026 15:30 GMT review weekly planned",
        "Mon 21 Dec 2026 15:30 GMT goals weekly skipped outside term",
        "Fri 25 Dec 2026 15:30 GMT review weekly skipped holiday (Christmas Day)",
        "Mon 28 Dec 2026 15:30 GMT goals weekly skipped outside term",
        "Fri 01 Jan 2027 15:30 GMT review weekly skipped outside term",
        "Wed 06 Jan 2027 15:30 GMT goals weekly planned moved from Mon to Wed: outside term",  # Tue: INSET day
        "Fri 08 Jan 2027 15:30 GMT review weekly planned",
    ]


def test_a_holiday_list_in_another_language(companion, engine, now):
    """Google's "Feiertage in Deutschland": the words find most; --holidays makes every all-day event a closure."""
    student(engine, now, "Europe/Berlin")
    by_words = companion("calendar", "import", FIXTURES / "feiertage_de.ics")
    assert by_words[0].endswith("10 added, 0 updated, 0 removed, 0 unchanged (10 closures)")
    assert by_words[-2:] == [
        "  left out, not a term, grading period, closure, exam week or early dismissal: "
        "'Buß- und Bettag (Sachsen)', 'Erster Advent', 'Heiligabend'",
        "  note: this calendar is named 'Feiertage in Deutschland': if it is a list of public holidays, import it with "
        "--holidays so that every all-day event is a closure",
    ]
    as_list = companion("calendar", "import", FIXTURES / "feiertage_de.ics", "--holidays")
    assert as_list[0] == ("calendar of Test School from feiertage_de.ics: 1 added, 0 updated, 0 removed, 10 unchanged "
                          "(11 closures)")
    assert "  closure 2026-11-18: Buß- und Bettag (Sachsen)" in as_list
    assert as_list[-2:] == [
        "  left out, an observance in the holiday list, not a day off: 'Erster Advent', 'Heiligabend'",
        "  note: read as a holiday list: every all-day event is a closure"]
    assert {row[0] for row in stored(engine)} == {"holiday"} and len(stored(engine)) == 11
    assert week(companion, "2026-12-21", 2) == [
        "Mon 21 Dec 2026 15:30 CET goals weekly planned",
        "Thu 24 Dec 2026 15:30 CET review weekly planned moved from Fri to Thu: holiday (1. Weihnachtstag)",
        "Mon 28 Dec 2026 15:30 CET goals weekly planned",
        "Thu 31 Dec 2026 15:30 CET review weekly planned moved from Fri to Thu: holiday (Neujahr)",
    ]
    assert week(companion, "2027-03-22", 2)[1:3] == [
        "Thu 25 Mar 2027 15:30 CET review weekly planned moved from Fri to Thu: holiday (Karfreitag)",
        "Tue 30 Mar 2027 15:30 CEST goals weekly planned moved from Mon to Tue: holiday (Ostermontag)",
    ]


def test_times_in_utc_are_days_of_a_school_far_from_utc(companion, engine, now):
    """Outlook writes a Sydney school's Student Free Day (Monday 1 February) as 13:00Z on Sunday 31 January."""
    student(engine, now, "Australia/Sydney")
    report = companion("calendar", "import", FIXTURES / "sydney_outlook.ics")
    assert report == [
        "calendar of Test School from sydney_outlook.ics: 5 added, 0 updated, 0 removed, 0 unchanged "
        "(1 early dismissal, 3 closures, 1 term)",
        "  term 2027-02-02 – 2027-04-09: Term 1 starts - Years 1 to 6 … Term 1 ends - early dismissal 2:30pm",
        "  closure 2027-02-01: Student Free Day",
        "  closure 2027-03-26: Good Friday",
        "  closure 2027-03-29: Easter Monday",
        "  early dismissal 2027-04-09: Term 1 ends - early dismissal 2:30pm",
        "  left out, not a term, grading period, closure, exam week or early dismissal: 'Swimming Carnival'",
        "  accepted: 4 event(s) with times in UTC or another time zone were read in the school's (Australia/Sydney): "
        "3 fall on another day there than as written",
    ]
    assert ("holiday", "2027-02-01", "2027-02-01", "Student Free Day", "sydney_outlook.ics") in stored(engine)
    assert week(companion, "2027-02-01") == [
        "Tue 02 Feb 2027 15:30 AEDT goals weekly planned moved from Mon to Tue: holiday (Student Free Day)",
        "Fri 05 Feb 2027 15:30 AEDT review weekly planned",
    ]
    assert week(companion, "2027-04-05", 2) == [
        "Mon 05 Apr 2027 15:30 AEST goals weekly planned",
        "Fri 09 Apr 2027 15:30 AEST review weekly planned",
        "Mon 12 Apr 2027 15:30 AEST goals weekly skipped outside term",
        "Fri 16 Apr 2027 15:30 AEST review weekly skipped outside term",
    ]


def test_a_hand_made_file_without_uids(companion, engine, now):
    """No UIDs, LF line ends, a blank line, a broken fold, dates without VALUE=DATE, a title in Windows-1252."""
    student(engine, now, "America/Toronto")
    report = companion("calendar", "import", FIXTURES / "no_uid_handmade.ics")
    assert report == [
        "calendar of Test School from no_uid_handmade.ics: 3 added, 0 updated, 0 removed, 0 unchanged "
        "(1 exam week, 2 closures)",
        "  closure 2026-11-30: No School - Teacher Planning Day",
        "  closure 2026-12-04: Journée pédagogique",
        "  exam week 2026-12-14 – 2026-12-18: Mid-term exams",
        "  left out, not a term, grading period, closure, exam week or early dismissal: 'Science fair'",
        "  accepted: the lines end with LF, not CRLF",
        "  accepted: 4 events have no UID (first on line 5): an id was derived from the title and dates, so importing "
        "again updates rather than duplicates",
        "  accepted: 1 line(s) continue the line before without the leading space (first on line 13): read as part "
        "of it",
        "  accepted: 1 line(s) are not UTF-8: read as Windows-1252",
        "  accepted: 1 blank line(s) (first on line 4): skipped",
    ]
    with engine.connect() as db:
        uids = sorted(uid for (uid,) in db.execute(text("SELECT uid FROM calendarevent")))
    assert all(uid.startswith("derived-") for uid in uids) and len(set(uids)) == 3
    again = companion("calendar", "import", FIXTURES / "no_uid_handmade.ics")
    assert again[0].endswith("0 added, 0 updated, 0 removed, 3 unchanged (1 exam week, 2 closures)")
    assert week(companion, "2026-11-30") == [
        "Tue 01 Dec 2026 15:30 EST goals weekly planned moved from Mon to Tue: holiday (No School - Teacher Planning "
        "Day)",
        "Thu 03 Dec 2026 15:30 EST review weekly planned moved from Fri to Thu: holiday (Journée pédagogique)",
    ]


def test_an_all_day_event_whose_dtend_has_a_time(companion, engine, now):
    student(engine, now, "America/New_York")
    report = companion("calendar", "import", FIXTURES / "allday_timed_end.ics")
    assert report == [
        "calendar of Test School from allday_timed_end.ics: 3 added, 0 updated, 0 removed, 0 unchanged (3 closures)",
        "  closure 2026-11-23: Staff Development Day - No Students",
        "  closure 2026-11-27: Day after Thanksgiving - No School",
        "  closure 2026-12-24 – 2027-01-01: Winter Break",
        "  accepted: 2 all-day event(s) have a DTEND with a time: read as its date",
        "  accepted: 1 Outlook all-day event(s) (X-MICROSOFT-CDO-ALLDAYEVENT) written as midnight times: their dates "
        "are read as written",
    ]
    assert week(companion, "2026-11-23") == [
        "Tue 24 Nov 2026 15:30 EST goals weekly planned moved from Mon to Tue: holiday (Staff Development Day - No "
        "Students)",
        "Thu 26 Nov 2026 15:30 EST review weekly planned moved from Fri to Thu: holiday (Day after Thanksgiving - No "
        "School)",
    ]
    assert week(companion, "2026-12-28") == [
        "Mon 28 Dec 2026 15:30 EST goals weekly skipped holiday (Winter Break)",
        "Fri 01 Jan 2027 15:30 EST review weekly skipped holiday (Winter Break)",
    ]


def test_a_weekly_rrule_with_exdate_and_a_moved_day(companion, engine, now):
    student(engine, now, "America/Chicago")
    report = companion("calendar", "import", FIXTURES / "weekly_rrule.ics")
    assert report[0] == ("calendar of Test School from weekly_rrule.ics: 20 added, 0 updated, 0 removed, 0 unchanged "
                         "(14 early dismissals, 6 closures)")
    assert report[-4:] == [
        "  left out, not a term, grading period, closure, exam week or early dismissal: 'Chess Club'",
        "  accepted: 3 repeating events (RRULE/RDATE, less EXDATE) gave 20 days from 2025-11-22 to 2028-11-23",
        "  accepted: 1 changed or cancelled day(s) of repeating events (RECURRENCE-ID) replace the days the repetition "
        "gave",
        "  accepted: 'Christmas Day' repeats past 2028-11-23: its days until then were imported (importing again later "
        "adds more)",
    ]
    early = [row[1] for row in stored(engine) if row[0] == "early_dismissal"]
    assert "2026-11-25" not in early and "2026-10-28" not in early  # EXDATE
    assert "2026-12-09" not in early and "2026-12-10" in early  # RECURRENCE-ID: moved to Thursday
    assert len(early) == 14
    assert [row[1] for row in stored(engine) if row[3].startswith("PD Monday")] == [
        "2026-10-05", "2026-12-07", "2027-01-04"]  # COUNT=4 less the EXDATE of 2 November
    assert [row[1] for row in stored(engine) if row[3] == "Christmas Day"] == ["2025-12-25", "2026-12-25", "2027-12-25"]
    assert week(companion, "2026-12-07") == [
        "Tue 08 Dec 2026 15:30 CST goals weekly planned moved from Mon to Tue: holiday (PD Monday - No School for "
        "Students)",
        "Fri 11 Dec 2026 15:30 CST review weekly planned",
    ]


def test_a_second_calendar_cut_short_at_the_end(companion, engine, now):
    student(engine, now, "America/New_York")
    report = companion("calendar", "import", FIXTURES / "truncated_tail.ics")
    assert report == [
        "calendar of Test School from truncated_tail.ics: 3 added, 0 updated, 0 removed, 0 unchanged (3 closures)",
        "  closure 2026-11-26 – 2026-11-27: Thanksgiving Break",
        "  closure 2027-01-18: Martin Luther King Jr. Day",
        "  closure 2027-03-22 – 2027-03-26: Spring Break",
        "  accepted: the file ends inside the event that begins on line 25 ('Memorial Day - No Sch'): it was left out "
        "(the file looks cut short)",
        "  accepted: a second calendar begins on line 16: its events were read too",
    ]
    assert week(companion, "2027-03-22") == [
        "Mon 22 Mar 2027 15:30 EDT goals weekly skipped holiday (Spring Break)",
        "Fri 26 Mar 2027 15:30 EDT review weekly skipped holiday (Spring Break)",
    ]


# -- the school year from the roster --------------------------------------------------------------------


def test_academic_sessions_give_terms_and_grading_periods_that_win_over_a_calendars(companion, engine, now):
    student(engine, now, "America/New_York")
    report = companion("calendar", "sessions", FIXTURES / "roster_1_1")
    assert report == [
        "school year of Test School from academicSessions.csv: 6 added, 0 updated, 0 removed, 0 unchanged "
        "(4 grading periods, 2 terms)",
        "  term 2026-08-24 – 2027-01-15: Fall Semester 2026",
        "  term 2027-01-19 – 2027-06-11: Spring Semester 2027",
        "  grading period ends 2026-10-23: Quarter 1 (report-card reflection the next school day)",
        "  grading period ends 2027-01-15: Quarter 2 (report-card reflection the next school day)",
        "  grading period ends 2027-03-26: Quarter 3 (report-card reflection the next school day)",
        "  grading period ends 2027-06-11: Quarter 4 (report-card reflection the next school day)",
        "  left out, marked tobedeleted: '2025-2026'",
        "  left out, a school year whose terms or semesters are listed (they are used): '2026-2027'",
        "  note: these terms and grading periods are used instead of any calendar's",
    ]
    calendar = companion("calendar", "import", Path(__file__).parent / "fixtures" / "school_calendar.ics")
    assert calendar[-1] == ("  note: the roster's academic sessions give this school's terms and grading periods: this "
                            "calendar's are stored but not used")
    assert [row for row in stored(engine) if row[4] == "roster"] == [
        ("grading_period", "2026-08-24", "2026-10-23", "Quarter 1", "roster"),
        ("grading_period", "2026-10-26", "2027-01-15", "Quarter 2", "roster"),
        ("grading_period", "2027-01-19", "2027-03-26", "Quarter 3", "roster"),
        ("grading_period", "2027-03-29", "2027-06-11", "Quarter 4", "roster"),
        ("term", "2026-08-24", "2027-01-15", "Fall Semester 2026", "roster"),
        ("term", "2027-01-19", "2027-06-11", "Spring Semester 2027", "roster"),
    ]
    # The calendar's "Fall Semester" ends 18 December; the roster's on 15 January: the roster's is used.
    assert week(companion, "2026-12-21")[0] == "Mon 21 Dec 2026 15:30 EST goals weekly planned"
    assert week(companion, "2027-01-11", 2) == [
        "Mon 11 Jan 2027 15:30 EST goals weekly planned",
        "Fri 15 Jan 2027 15:30 EST review weekly planned",
        "Tue 19 Jan 2027 15:30 EST report_card calendar planned after Quarter 2 (ended Fri 15 Jan), on the first "
        "school day after outside term",
        "Tue 19 Jan 2027 15:30 EST goals weekly skipped report_card takes its place",  # issue 14: one nudge that day
        "Fri 22 Jan 2027 15:30 EST review weekly planned",
    ]
    shown = companion("calendar", "show", "--from", "2027-01-01")
    assert shown[0] == "calendar of Test School (America/New_York), from 2027-01-01: 5 events"
    assert any("Fall Semester 2026" in line and "[roster]" in line for line in shown)
    again = companion("calendar", "sessions", FIXTURES / "roster_1_1")
    assert again[0].endswith("0 added, 0 updated, 0 removed, 6 unchanged (4 grading periods, 2 terms)")


def test_academic_sessions_of_oneroster_1_2_read_at_roster_import(database_url, engine, tmp_path):
    """`companion roster import` reads academicSessions.csv too: 1.2's metadata columns, quotes and BOM, trimesters."""
    roster = tmp_path / "roster"
    write_demo_roster(roster)
    shutil.copy(FIXTURES / "roster_1_2" / "academicSessions.csv", roster)
    result = CliRunner().invoke(companion_main, ["--database-url", database_url, "roster", "import", str(roster)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    start = lines.index("school year of Maple Grove Middle School from academicSessions.csv: 6 added, 0 updated, "
                        "0 removed, 0 unchanged (3 grading periods, 3 terms)")
    assert lines[start + 1:] == [
        "  term 2026-09-08 – 2026-11-24: Trimester 1",
        "  term 2026-11-30 – 2027-03-05: Trimester 2",
        "  term 2027-03-08 – 2027-06-24: Trimester 3",
        "  grading period ends 2026-11-24: T1 Report Card (report-card reflection the next school day)",
        "  grading period ends 2027-03-05: T2 Report Card (report-card reflection the next school day)",
        "  grading period ends 2027-06-24: T3 Report Card (report-card reflection the next school day)",
        "  left out, a type of the school's own (ext:): 'Summer Academy'",
        "  left out, a school year whose terms or semesters are listed (they are used): 'School Year 2026-27'",
        "  note: these terms and grading periods are used instead of any calendar's",
    ]
    assert len([row for row in stored(engine) if row[4] == "roster"]) == 6


@pytest.mark.parametrize("line, complaint", [
    ("bad-1,active,,Fall,semester,8/24/2026,2027-01-15,,2027",
     'academicSessions.csv line 3, column startDate: "8/24/2026" is not a date as OneRoster writes it (YYYY-MM-DD; a '
     "spreadsheet may have changed it)"),
    ("bad-1,active,,Fall,semester,2027-01-15,2026-08-24,,2027",
     "academicSessions.csv line 3, column endDate: 2026-08-24 is before the startDate 2027-01-15"),
    ("bad-1,active,,Fall,quarter,2026-08-24,2027-01-15,,2027",
     'academicSessions.csv line 3, column type: "quarter" is not a OneRoster session type'),
    ("as-2027,active,,Again,term,2026-08-24,2027-01-15,,2027",
     'academicSessions.csv line 3, column sourcedId: "as-2027" is also on line 2'),
])
def test_a_bad_academic_sessions_file_names_line_and_column_and_imports_nothing(companion, engine, now, tmp_path,
                                                                               line, complaint):
    student(engine, now, "America/New_York")
    lines = (FIXTURES / "roster_1_1" / "academicSessions.csv").read_text().splitlines()
    (tmp_path / "academicSessions.csv").write_text("\n".join([lines[0], lines[1], line, *lines[2:]]) + "\n")
    refused = companion("calendar", "sessions", tmp_path, code=1)
    assert complaint in refused[0] and "the school year was not imported" in refused[0]
    assert stored(engine) == []


# -- what is refused, and how -------------------------------------------------------------------------


@pytest.mark.parametrize("data, complaint", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00", "not a readable iCalendar file: it is not text"),
    (b"<!DOCTYPE html>\n<html><head><title>Calendar</title></head><body>\x1b[31mhi</body></html>\n",
     "not a readable iCalendar file: it looks like a web page (HTML) or XML; for a published calendar use its iCal "
     "(.ics) address"),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "not a readable iCalendar file: it is a PDF document"),
    (b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a1\r\nSUMMARY:Winter Break\x1b]0;pwned\x07\r\nDTSTART;VALUE=DATE:"
     b"20261221\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
     "line 4 (in the event a1 '' that begins on line 2): not text (control characters): is this a binary file?"),
    (b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a1\r\nSUMMARY:Spring Break\r\nDTSTART;VALUE=DATE:20270322\r\n"
     b"BEGIN:VEVENT\r\nUID:a2\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
     "line 2: event a1 'Spring Break': it has no END:VEVENT before the next event begins on line 6"),
    (b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a1\r\nSUMMARY:Spring Break \xe2\x80\xae\xe2\x80\x8bgnp.exe\r\n"
     b"DTSTART;VALUE=DATE:2027-03-22\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
     "line 2: event a1 'Spring Break gnp.exe': DTSTART is malformed"),
])
def test_a_bad_file_names_line_and_event_and_never_echoes_garbage(companion, engine, now, tmp_path, data, complaint):
    student(engine, now, "America/New_York")
    bad = tmp_path / "bad.ics"
    bad.write_bytes(data)
    refused = companion("calendar", "import", bad, code=1)
    assert refused[0].startswith(f"Error: bad.ics: {complaint}")
    assert refused[0].endswith("— nothing was imported")
    assert not any(char in "\n".join(refused) for char in "\x00\x1b\x07\x1a\u202e\u200b")
    assert stored(engine) == []


def test_reading_stops_at_the_first_error_without_reading_the_rest():
    """Event by event: a file whose line 222 is broken is refused having read little more than 222 lines."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN"]
    for n in range(100_000):
        lines += ["BEGIN:VEVENT", f"UID:e{n}", f"SUMMARY:Club {n}", "DTSTART;VALUE=DATE:20261201", "END:VEVENT"]
    lines[221] = "DTSTART;VALUE=DATE:2026-12-01"  # line 222, in the event that begins on line 219
    read = 0

    def stream():
        nonlocal read
        for line in lines:
            read += 1
            yield (line + "\r\n").encode()

    with pytest.raises(CalendarError, match=r"^line 219: event e43 'Club 43': DTSTART is malformed on line 222 "):
        parse_calendar(stream(), "America/New_York", date(2026, 11, 23))
    assert read < 230


def test_the_schools_own_words(companion, engine, now, tmp_path):
    student(engine, now, "America/New_York")
    with Store(engine).transaction() as tx:
        REGISTRY.settings.set(tx, 1, "closure_words", "Wellness Day, Snow Day", now)
        REGISTRY.settings.set(tx, 1, "term_markers", "Opening Day=start, Closing Ceremony=end, Notas=grading", now)
    own = tmp_path / "own.ics"
    own.write_bytes(b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n" + b"".join(
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nSUMMARY:{summary}\r\nDTSTART;VALUE=DATE:{day}\r\nEND:VEVENT\r\n".encode()
        for uid, summary, day in (("o1", "Opening Day", "20260901"), ("o2", "Wellness Day", "20261130"),
                                  ("o3", "Notas del primer periodo", "20261120"),
                                  ("o4", "Closing Ceremony", "20270610")))
        + b"END:VCALENDAR\r\n")
    report = companion("calendar", "import", own)
    assert report[1:4] == ["  term 2026-09-01 – 2027-06-10: Opening Day … Closing Ceremony",
                           "  grading period ends 2026-11-20: Notas del primer periodo (report-card reflection the "
                           "next school day)",
                           "  closure 2026-11-30: Wellness Day"]


def test_the_words_of_closures_markers_and_kinds():
    assert classify([], "Christmas Day") == classify([], "Boxing Day") == classify([], "Good Friday") == "holiday"
    assert classify(["no-school"], "Parent Conferences") == "holiday"
    assert classify([], "Holiday Concert") is None and classify([], "Christmas Jumper Day") is None
    assert classify([], "Vacaciones de invierno") == classify([], "Día festivo") == classify([], "Herbstferien") \
        == classify([], "冬休み") == classify([], "Student Free Day") == classify([], "Half Term") == "holiday"
    assert classify([], "Students return from Winter Break") is None
    assert classify([], "Last Day Before Winter Break") is None
    assert read_event_words([], "First Day for Students").term == "start"
    assert read_event_words([], "Inicio de curso").term == "start"
    assert read_event_words([], "Fin de curso").term == "end"
    assert read_event_words([], "Fin del trimestre") == read_event_words([], "Fin del trimestre")
    assert read_event_words([], "Fin del trimestre").kind == "grading_period"
    assert read_event_words([], "School starts at 10:00 (late start)").term is None
    assert read_event_words([], "Last Day for Seniors").term is None
    assert classify([], "Early Dismissal LHS Only - Semester Chg") == "early_dismissal"
    assert classify([], "End of Quarter 1") == classify([], "Report cards go home") == "grading_period"
    assert classify([], "Q2 Progress Reports") is None and classify([], "Basketball Finals") is None


# -- a calendar by URL --------------------------------------------------------------------------------


class Feed(http.server.BaseHTTPRequestHandler):
    """A published calendar: the test says what it answers."""

    body = b""
    status = 200
    etag = '"v1"'
    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        Feed.requests.append(self.headers.get("If-None-Match") or "")
        if Feed.status == 200 and self.headers.get("If-None-Match") == Feed.etag:
            self.send_response(304)
            self.end_headers()
            return
        self.send_response(Feed.status)
        self.send_header("Content-Type", "text/calendar; charset=utf-8")
        self.send_header("ETag", Feed.etag)
        self.end_headers()
        self.wfile.write(Feed.body if Feed.status == 200 else b"<html>Internal error</html>")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def feed():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Feed)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Feed.body, Feed.status, Feed.etag, Feed.requests = (FIXTURES / "truncated_tail.ics").read_bytes(), 200, '"v1"', []
    yield SimpleNamespace(url=f"http://127.0.0.1:{server.server_address[1]}/calendar/ical/private-s3cret/basic.ics",
                          server=server)
    server.shutdown()
    server.server_close()


def test_a_calendar_by_url_is_read_again_daily_and_kept_when_the_server_fails(companion, engine, now, feed, caplog):
    student(engine, now, "America/New_York")
    first = companion("calendar", "import", feed.url)
    host = feed.url.split("/")[2]
    assert first[0] == (f"calendar of Test School from http://{host}/…/basic.ics: 3 added, 0 updated, "
                        "0 removed, 0 unchanged (3 closures)")
    assert first[-1] == "  note: remembered: `companion serve` reads this calendar again every day"
    assert "s3cret" not in "\n".join(first)  # a private feed's key is never shown
    shown = companion("calendar", "show", "--from", "2026-11-01")
    assert shown[-2:] == ["calendars by URL, read again daily by `companion serve`:",
                          f"  feed 1: http://{host}/…/basic.ics; last good read 2026-11-23 14:00 UTC"]

    assert reimport_calendars(engine, now + timedelta(hours=23)) == []  # not due yet: not fetched
    assert len(Feed.requests) == 1

    same = reimport_calendars(engine, now + timedelta(days=1))  # unchanged: the server says so (ETag)
    assert [result.not_modified for result in same] == [True] and Feed.requests[-1] == '"v1"'

    Feed.etag = '"v2"'  # the school adds Memorial Day and fixes the cut
    Feed.body = (FIXTURES / "truncated_tail.ics").read_bytes() + (
        b"ool\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    with caplog.at_level("INFO", logger="core.school.calendar"):
        [changed] = reimport_calendars(engine, now + timedelta(days=2))
    assert changed.report.lines()[0].endswith("1 added, 0 updated, 0 removed, 3 unchanged (4 closures)")
    assert ("holiday", "2027-05-31", "2027-05-31", "Memorial Day - No School", feed.url) in stored(engine)
    assert any("calendar feed 1" in record.message and "1 added" in record.message for record in caplog.records)
    assert not any("s3cret" in record.message for record in caplog.records)

    good = stored(engine)
    Feed.status = 500  # the server fails: the last good calendar is kept
    with caplog.at_level("WARNING", logger="core.school.calendar"):
        [failed] = reimport_calendars(engine, now + timedelta(days=3))
    assert failed.error == "the server answered 500 Internal Server Error"
    assert stored(engine) == good
    assert "the last good calendar is kept" in caplog.text
    shown = companion("calendar", "show")
    assert shown[-1].endswith("last good read 2026-11-25 14:00 UTC; last attempt failed: the server answered 500 "
                              "Internal Server Error (the last good calendar is kept)")

    Feed.status, Feed.body = 200, b"<!DOCTYPE html><html>Sign in to view this calendar</html>"  # a login page
    Feed.etag = '"v3"'
    [login] = reimport_calendars(engine, now + timedelta(days=3, hours=1))  # a failure is tried again in an hour
    assert login.error.startswith("not a readable iCalendar file: it looks like a web page")
    assert stored(engine) == good

    feed.server.shutdown()
    feed.server.server_close()  # the server is gone
    [gone] = reimport_calendars(engine, now + timedelta(days=3, hours=2))
    assert gone.error.startswith("the calendar could not be reached")
    assert stored(engine) == good

    removed = companion("calendar", "remove", "feed 1")
    assert removed == [f"removed 4 calendar events from http://{host}/…/basic.ics"]
    assert stored(engine) == [] and reimport_calendars(engine, now + timedelta(days=9)) == []


def test_a_published_address_webcal_and_its_secret():
    assert calendar_url("webcal://calendar.example.org/feed.ics") == "https://calendar.example.org/feed.ics"
    assert calendar_url("file:///etc/passwd") is None and calendar_url("district.ics") is None
    assert is_holiday_feed("https://calendar.google.com/calendar/ical/en.usa%23holiday%40group.v.calendar.google.com/"
                           "public/basic.ics")
    assert shown_source("https://calendar.google.com/calendar/ical/abc%40group/private-9f8e/basic.ics?x=1") == \
        "https://calendar.google.com/…/basic.ics"
    assert shown_source("https://user:pa55@feeds.example.org:8443/school/cal.ics") == \
        "https://feeds.example.org:8443/…/cal.ics"
    assert shown_source("district.ics") == "district.ics"


def test_a_calendar_is_read_from_bytes_a_path_or_a_stream_alike():
    data = (FIXTURES / "district.ics").read_bytes()
    readings = [parse_calendar(source, "America/New_York", date(2026, 11, 23))
                for source in (data, FIXTURES / "district.ics", io.BytesIO(data))]
    assert all(parsed.rows == readings[0].rows for parsed in readings)
    assert readings[0].events == 9 and len(readings[0].rows) == 6
