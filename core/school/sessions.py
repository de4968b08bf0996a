"""The school year from the roster: OneRoster's academicSessions.csv (1.1 and 1.2) as terms and grading periods.

Columns read: sourcedId, status, title, type (schoolYear, term, semester, gradingPeriod),
startDate, endDate, parentSourcedId (dateLastModified, schoolYear and 1.2's metadata.*
columns may be there and are not needed). Dates are OneRoster's YYYY-MM-DD; a date-time is read
as its date. A term or semester is a term; a grading period is a grading period, whose end is
the report-card reflection's; a school year is a term only where no term or semester of it says
more. Sessions marked `tobedeleted` (or `inactive`) and types of a profile's own (`ext:…`) are
left out and listed.

OneRoster 1.1's sessions name no school: they are the school year of every school the roster's
orgs.csv lists (or of the one school named). They are stored as the calendar rows of source
"roster": importing again replaces them and reports only what changed, and they win over the
terms and grading periods of any calendar file (`core.schedule.policy.load_calendars`).

The file is read with the standard library's `csv` module, as roster.py reads its files (its
readers are tied to its own four files, so this module has its own small one): a bad file names
its line and column and imports nothing.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import Engine

from core.domain.models import CalendarKind
from core.domain.store import Store
from core.school.calendar import (ROSTER_SOURCE, CalendarError, CalendarReport, SchoolDay, clean, find_school,
                                  replace_source)

SESSIONS_FILE = "academicSessions.csv"
ORGS_FILE = "orgs.csv"
REQUIRED_COLUMNS = ("sourcedId", "title", "type", "startDate", "endDate")
TERMS = {"term", "semester"}
DATE = re.compile(r"(\d{4}-\d{2}-\d{2})(T[\d:.]+(Z|[+-]\d{2}:?\d{2})?)?")


class SessionsError(CalendarError):
    """An academicSessions.csv that cannot be imported; the message names the line and column."""


@dataclass(frozen=True)
class AcademicSession:
    sourced_id: str
    title: str
    type: str  # lower-cased: schoolyear, term, semester, gradingperiod
    starts_on: date
    ends_on: date
    parent: str
    line: int


def read_sessions(path: Path) -> tuple[list[AcademicSession], dict[str, list[str]], list[str]]:
    """The active sessions of academicSessions.csv, the titles left out (by why), and the quirks accepted."""
    sessions: list[AcademicSession] = []
    left_out: dict[str, list[str]] = {}
    notes: list[str] = []
    first_line: dict[str, int] = {}
    times = 0
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise SessionsError(f"{SESSIONS_FILE} line 1: the file is empty; a header row is expected")
            columns = [name.strip() for name in header]
            for column in REQUIRED_COLUMNS:
                if column not in columns:
                    raise SessionsError(f"{SESSIONS_FILE} line 1, column {column}: the column is missing")
            for values in reader:
                if not any(value.strip() for value in values):
                    continue
                line = reader.line_num
                if len(values) != len(columns):
                    raise SessionsError(f"{SESSIONS_FILE} line {line}: {len(values)} values for {len(columns)} columns")
                row = {column: value.strip() for column, value in zip(columns, values)}

                def error(column: str, message: str) -> SessionsError:
                    return SessionsError(f"{SESSIONS_FILE} line {line}, column {column}: {message}")

                for column in REQUIRED_COLUMNS:
                    if not row[column]:
                        raise error(column, "a value is required")
                sourced_id, title = row["sourcedId"], row["title"]
                if sourced_id in first_line:
                    raise error("sourcedId", f'"{clean(sourced_id, 60)}" is also on line {first_line[sourced_id]}')
                first_line[sourced_id] = line
                status = row.get("status", "").lower()
                if status in ("tobedeleted", "inactive"):
                    left_out.setdefault(f"marked {status}", []).append(title)
                    continue
                if status not in ("", "active"):
                    raise error("status", f'"{clean(row["status"], 30)}" is not a OneRoster status (active or '
                                          'tobedeleted)')
                kind = row["type"].lower()
                if kind not in TERMS | {"schoolyear", "gradingperiod"}:
                    if kind.startswith("ext:"):
                        left_out.setdefault("a type of the school's own (ext:)", []).append(title)
                        continue
                    raise error("type", f'"{clean(row["type"], 30)}" is not a OneRoster session type (schoolYear, '
                                        'term, semester, gradingPeriod)')
                days = []
                for column in ("startDate", "endDate"):
                    match = DATE.fullmatch(row[column])
                    if match is None:
                        raise error(column, f'"{clean(row[column], 30)}" is not a date as OneRoster writes it '
                                            "(YYYY-MM-DD; a spreadsheet may have changed it)")
                    try:
                        days.append(date.fromisoformat(match.group(1)))
                    except ValueError:
                        raise error(column, f'"{clean(row[column], 30)}" is not a day of the calendar') from None
                    times += match.group(2) is not None
                if days[1] < days[0]:
                    raise error("endDate", f"{days[1]} is before the startDate {days[0]}")
                sessions.append(AcademicSession(sourced_id, title, kind, days[0], days[1],
                                                row.get("parentSourcedId", ""), line))
    except UnicodeDecodeError:
        raise SessionsError(f"{SESSIONS_FILE}: the file is not UTF-8 text; save or export it as UTF-8") from None
    except csv.Error as error:
        raise SessionsError(f"{SESSIONS_FILE}: {clean(error, 80)}") from None
    if times:
        notes.append(f"{times} date(s) carry a time: read as their date")
    known = {session.sourced_id for session in sessions} | set(first_line)
    missing = [session for session in sessions if session.parent and session.parent not in known]
    if missing:
        notes.append(f"{len(missing)} session(s) name a parentSourcedId that is not in the file (first on line "
                     f"{missing[0].line}): read on their own")
    return sessions, left_out, notes


def session_rows(sessions: list[AcademicSession]) -> tuple[list[SchoolDay], list[str]]:
    """Terms and grading periods as calendar rows; and the school years that gave no term of their own."""
    terms = [session for session in sessions if session.type in TERMS]
    rows, years = [], []
    for session in sessions:
        if session.type == "gradingperiod":
            kind = CalendarKind.grading_period
        elif session.type in TERMS:
            kind = CalendarKind.term
        else:  # a school year: a term where no term or semester of it says more
            inside = [term for term in terms if term.parent == session.sourced_id
                      or (term.starts_on <= session.ends_on and term.ends_on >= session.starts_on)]
            if inside:
                years.append(session.title)
                continue
            kind = CalendarKind.term
        rows.append(SchoolDay(session.sourced_id, kind, session.title, session.starts_on, session.ends_on))
    return rows, years


def _roster_schools(directory: Path) -> list[str] | None:
    """The sourced ids of the schools in the directory's orgs.csv, or None without one."""
    path = directory / ORGS_FILE
    if not path.is_file():
        return None
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return [row["sourcedId"].strip() for row in csv.DictReader(handle)
                if (row.get("type") or "").strip().lower() == "school" and (row.get("sourcedId") or "").strip()]


def import_sessions(engine: Engine | Store, directory: Path, now: datetime, school: str | None = None,
                    dry_run: bool = False) -> list[CalendarReport]:
    """Import DIRECTORY/academicSessions.csv as the school year of `school` (else of every school of its orgs.csv,
    else of the only school); one report per school. Raises SessionsError for a bad file, storing nothing."""
    directory = Path(directory)
    path = directory / SESSIONS_FILE
    if not path.is_file():
        raise SessionsError(f"{SESSIONS_FILE}: the file is missing from {directory}")
    sessions, left_out, notes = read_sessions(path)
    rows, years = session_rows(sessions)
    store = engine if isinstance(engine, Store) else Store(engine)
    with store.transaction() as tx:
        if school is not None:
            schools = [find_school(tx, school)]
        else:
            listed = _roster_schools(directory)
            known = {sourced_id for (sourced_id,) in tx.all("SELECT sourced_id FROM school")}
            if listed is not None and any(sourced_id in known for sourced_id in listed):
                schools = [find_school(tx, sourced_id) for sourced_id in listed if sourced_id in known]
            else:
                schools = [find_school(tx, None)]
    reports = []
    for found in schools:
        report = CalendarReport(found.name, SESSIONS_FILE, label="school year", events=len(sessions), dry_run=dry_run)
        report.rows = sorted(rows, key=lambda row: (row.starts_on, row.kind, row.title))
        for row in report.rows:
            report.kinds[row.kind] += 1
            if row.kind == CalendarKind.grading_period:
                report.grading_period_ends.append((row.title, row.ends_on))
        report.left_out = dict(left_out)
        if years:
            report.left_out["a school year whose terms or semesters are listed (they are used)"] = years
        report.notes = list(notes)
        if rows:
            report.notes.append("note: these terms and grading periods are used instead of any calendar's")
        report.count(replace_source(store, found.id, ROSTER_SOURCE, rows, now, dry_run))
        reports.append(report)
    return reports
