"""The school calendar from an iCalendar (.ics) file: terms, grading periods, holidays, exam weeks.

Each VEVENT is classified by its CATEGORIES, or else by keywords in its SUMMARY; events that
are none of the four are listed in the report and left out. All-day events end the day before
DTEND (DTEND is exclusive in iCalendar). A file with any broken event imports nothing: the error
names the event (UID and SUMMARY), what is wrong, and the line it starts on. Importing again
updates events by UID.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

import icalendar
from sqlalchemy import Engine

from core.domain.models import CalendarKind
from core.domain.store import Store, Tx

# Checked in this order: "Semester exams" is an exam week, "Quarter break" a holiday.
KEYWORDS = (
    (CalendarKind.holiday, ("holiday", "holidays", "vacation", "break", "no school", "recess", "day off",
                            "vacaciones", "feriado", "festivo", "receso", "sin clases")),
    (CalendarKind.exam_week, ("exam", "exams", "finals", "final exams", "examen", "exámenes")),
    (CalendarKind.grading_period, ("grading period", "grading_period", "quarter", "marking period", "report card",
                                   "report cards", "evaluación", "boletín")),
    (CalendarKind.term, ("term", "semester", "school year", "semestre", "curso escolar")),
)
PATTERNS = tuple((kind, re.compile(r"\b(?:" + "|".join(map(re.escape, words)) + r")\b", re.IGNORECASE))
                 for kind, words in KEYWORDS)


class CalendarError(Exception):
    """A .ics file that cannot be imported: nothing from it was stored."""


@dataclass(frozen=True)
class SchoolDay:
    """One classified event, as the `calendarevent` table stores it."""

    uid: str
    kind: str
    title: str
    starts_on: date
    ends_on: date  # inclusive
    repeats: bool = False


@dataclass
class CalendarReport:
    """What an import did, for the admin."""

    school: str
    added: int = 0
    updated: int = 0
    kinds: Counter = field(default_factory=Counter)
    ignored: list[str] = field(default_factory=list)
    repeating: list[str] = field(default_factory=list)
    grading_period_ends: list[tuple[str, date]] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The report as plain lines for the command line."""
        kinds = ", ".join(f"{count} {kind.replace('_', ' ')}" for kind, count in sorted(self.kinds.items())) or "none"
        found = [f"calendar of {self.school}: {self.added} added, {self.updated} updated ({kinds})"]
        found += [f"  grading period {title!r} ends {ends_on} (report-card reflection)"
                  for title, ends_on in self.grading_period_ends]
        found += [f"  left out, not a term, grading period, holiday or exam week: {title!r}" for title in self.ignored]
        found += [f"  repeats (RRULE), only its first occurrence was imported: {title!r}" for title in self.repeating]
        return found


def _event_lines(text: str) -> list[int]:
    """The line number of every BEGIN:VEVENT, in order: errors point at the event's first line."""
    return [number for number, line in enumerate(text.splitlines(), start=1)
            if line.strip().upper() == "BEGIN:VEVENT"]


def classify(categories: list[str], summary: str) -> str | None:
    """The event's kind from its categories, or else from its title; None when it is neither of the four."""
    for words in (" / ".join(categories), summary):
        for kind, pattern in PATTERNS:
            if pattern.search(words):
                return kind
    return None


def _categories(event: icalendar.Component) -> list[str]:
    """The event's CATEGORIES values, however many CATEGORIES lines it has."""
    found = event.get("CATEGORIES")
    lists = found if isinstance(found, list) else [found] if found is not None else []
    return [str(category) for item in lists for category in getattr(item, "cats", [item])]


def _day(value: date | datetime) -> date:
    """The calendar day of a DATE or DATE-TIME value (as written: the school's own day)."""
    return value.date() if isinstance(value, datetime) else value


def _span(event: icalendar.Component) -> tuple[date, date]:
    """First and last day of an event; raises ValueError saying what is wrong with its dates."""
    if "DTSTART" not in event:
        raise ValueError("it has no DTSTART")
    start = event.decoded("DTSTART")
    if not isinstance(start, date):
        raise ValueError(f"DTSTART {start!r} is not a date")
    if "DTEND" in event:
        end = event.decoded("DTEND")
        if not isinstance(end, date):
            raise ValueError(f"DTEND {end!r} is not a date")
    elif "DURATION" in event:
        end = start + event.decoded("DURATION")
    else:
        return _day(start), _day(start)  # RFC 5545: a date without an end is that one day
    if type(end) is not type(start):
        raise ValueError("DTSTART and DTEND must both be dates or both be date-times")
    if end < start:
        raise ValueError(f"DTEND {_day(end)} is before DTSTART {_day(start)}")
    # DTEND is exclusive: an all-day event (or one ending at midnight) ends the day before.
    exclusive = not isinstance(end, datetime) or end.time() == time(0)
    last = _day(end) - timedelta(days=1) if exclusive and end > start else _day(end)
    return _day(start), last


def parse_calendar(data: bytes) -> tuple[list[SchoolDay], list[str]]:
    """Every classified event in `data`, and the titles of the events left out; raises CalendarError."""
    try:
        calendar = icalendar.Calendar.from_ical(data)
    except ValueError as error:
        raise CalendarError(f"not a readable iCalendar file: {error}") from error
    lines = _event_lines(data.decode("utf-8", errors="replace"))
    days, ignored, seen = [], [], set()
    for number, event in enumerate(calendar.walk("VEVENT")):
        uid, summary = str(event.get("UID", "")).strip(), str(event.get("SUMMARY", "")).strip()
        where = f"line {lines[number]}: " if number < len(lines) else ""
        name = f"event {uid or '(no UID)'} {summary!r}"
        problems = [f"{prop} is malformed ({message})" for prop, message in getattr(event, "errors", [])]
        if not uid:
            problems.append("it has no UID (needed to update it on the next import)")
        elif uid in seen:
            problems.append("its UID appears twice in the file")
        try:
            starts_on, ends_on = _span(event)
        except (ValueError, TypeError) as error:
            problems.append(str(error))
        if problems:
            raise CalendarError(f"{where}{name}: " + "; ".join(dict.fromkeys(problems)))
        seen.add(uid)
        kind = classify(_categories(event), summary)
        if kind is None:
            ignored.append(summary or uid)
            continue
        days.append(SchoolDay(uid, kind, summary or kind, starts_on, ends_on, "RRULE" in event))
    return days, ignored


def _school(tx: Tx, school: str | None) -> tuple[int, str]:
    """The school to import into: the one named by sourced id, or the only one there is."""
    if school is not None:
        row = tx.one("SELECT id, name FROM school WHERE sourced_id = ?", (school,))
        if row is None:
            raise CalendarError(f"no school with sourced id {school!r}")
        return row
    schools = tx.all("SELECT id, name FROM school ORDER BY id")
    if len(schools) != 1:
        raise CalendarError(f"{len(schools)} schools on the roster: say which one with --school SOURCED_ID")
    return schools[0]


def import_calendar(engine: Engine, data: bytes, now: datetime, school: str | None = None) -> CalendarReport:
    """Store the calendar in `data` for a school, all or nothing; events already known are updated by UID."""
    days, ignored = parse_calendar(data)
    store = Store(engine)
    with store.transaction() as tx:
        school_id, school_name = _school(tx, school)
        report = CalendarReport(school_name, ignored=ignored)
        known = {row[0] for row in tx.all("SELECT uid FROM calendarevent WHERE school_id = ?", (school_id,))}
        tx.cursor.executemany(store.sql(
            "INSERT INTO calendarevent (school_id, uid, kind, title, starts_on, ends_on, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (school_id, uid) DO UPDATE SET kind = excluded.kind, "
            "title = excluded.title, starts_on = excluded.starts_on, ends_on = excluded.ends_on, "
            "updated_at = excluded.updated_at"),
            [(school_id, day.uid, day.kind, day.title, tx.day(day.starts_on), tx.day(day.ends_on), tx.ts(now))
             for day in days])
    for day in days:
        report.updated += day.uid in known
        report.added += day.uid not in known
        report.kinds[day.kind] += 1
        if day.repeats:
            report.repeating.append(day.title)
        if day.kind == CalendarKind.grading_period:
            report.grading_period_ends.append((day.title, day.ends_on))
    return report
