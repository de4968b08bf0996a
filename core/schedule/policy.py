"""Nudges at the right moment (SPEC §4): what is due comes from the database, never from memory.

A nudge is (person, trigger, due time). A trigger (`core.engine.registry.Trigger`) falls due
weekly (the school's weekday for it), after a calendar event (the first school day after a
grading period ends), at each person's chosen weekday and time (an adviser's digest), or on
demand; and it declares which parts of the policy bind it (time zone, quiet hours, holidays,
pauses, the weekly cap, grace, the follow-up): every check below asks the trigger, never its name.

    plan_week ─► nudge rows (planned, or skipped with the reason) for every person, set-based
    on_demand ─► nudge rows due now for the people asked for
    sweep     ─► stale past the grace window? skipped · claim due rows · open the flow through
                 the conversation engine (or queue a plain nudge) · mark sent
              ─► follow-ups: answered since? done · else one follow-up · still silent? a flag

The policy is pure functions of a school's rules, its calendar, the person's time zone and
preferred (or chosen) time (`week_slots`, `place`, `followup_due`), so it can be tested with any
clock; `plan_week` (`companion schedule plan`) and `outlook` (`companion schedule show`) both plan
with `week_slots`.
Exactly once: a claimed nudge opens its flow with the event id `nudge:<id>`, which the engine
handles once; a worker that dies after claiming leaves rows that another worker takes over when
the claim lease runs out, and the event id makes that retry change nothing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from enum import StrEnum
from functools import cache
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Engine as SQLEngine, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from core.domain import dates
from core.domain.messages import Button, Inbound, Outbound
from core.domain.models import DEFAULT_LOCALE, DEFAULT_TIMEZONE, CalendarKind, PersonStatus, Role, utcnow
from core.domain.settings import Clock, Duration, Key, Number
from core.domain.store import Store, Tx, as_moment
from core.engine.registry import ALL_PARTS, Part, Registry, Trigger, When

if TYPE_CHECKING:
    from apscheduler.schedulers.base import BaseScheduler

    from core.engine.pipeline import Engine as ConversationEngine

LOG = logging.getLogger(__name__)
DEFAULT_CHECKIN_TIME = "15:30"
CLAIM_LEASE = timedelta(minutes=5)  # a claim older than this belongs to a worker that died
EVENING_MARGIN = timedelta(minutes=30)  # a nudge moved out of the night still leaves time to answer
WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
FOREVER = datetime(9999, 12, 31, tzinfo=timezone.utc)  # the expiry of a nudge no grace window binds
SCHOOL_DAY_SEARCH = 60  # how far past a calendar event's end to look for a school day
ROSTER_SOURCE = "roster"  # calendar rows from the roster's academic sessions (core.school.sessions)


class NudgeStatus(StrEnum):
    planned = "planned"
    claimed = "claimed"
    sent = "sent"
    skipped = "skipped"



NUDGE_PRIORITY = 1  # outbox order: replies to students (0) go out before nudges
# The nudges in flight, each status written out so a statement that names it walks its partial index.
PLANNED = "status = 'planned'"
CLAIMED = "status = 'claimed'"

# The policy's own school settings (features add the day of each of their triggers).
SETTINGS = (
    Key("quiet_hours.start", Clock(), time(21), "no nudges from this time of the evening…"),
    Key("quiet_hours.end", Clock(), time(7), "…until this time of the morning"),
    Key("class_time.start", Clock(), time(8), "no nudges in class time on weekdays, from…"),
    Key("class_time.end", Clock(), time(15), "…until"),
    Key("nudges.weekly_cap", Number(0, 21), 3, "at most this many nudges per student a week (follow-ups count)"),
    Key("nudges.followup_after", Duration(), timedelta(hours=24), "one follow-up this long after a nudge"),
    Key("nudges.grace", Duration(), timedelta(hours=6), "a nudge missed by longer than this is skipped, not sent late"),
)


class Nudge(SQLModel, table=True):
    """One message the bot starts with one person; its status is the source of truth."""

    __table_args__ = (
        UniqueConstraint("person_id", "kind", "occasion"),
        # Only the nudges in flight: a claim walks the planned ones by due time, a lapsed claim is found by its time.
        Index("ix_nudge_planned_due_at", "due_at", sqlite_where=text(PLANNED), postgresql_where=text(PLANNED)),
        Index("ix_nudge_claimed_at", "claimed_at", sqlite_where=text(CLAIMED), postgresql_where=text(CLAIMED)),
        # Only sent nudges still waiting for an answer have one: a partial index stays small.
        Index("ix_nudge_followup_due_at", "followup_due_at", sqlite_where=text("followup_due_at IS NOT NULL"),
              postgresql_where=text("followup_due_at IS NOT NULL")),
    )
    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id")
    kind: str
    # Which time of its trigger this is: the Monday of its week (weekly, chosen), the last day of the
    # calendar event it follows, the day it was asked for (on demand). Planning again updates the row.
    occasion: date
    due_at: datetime
    expires_at: datetime  # due_at + the school's grace window: later than this it is skipped
    status: str = NudgeStatus.planned
    reason: str | None = None  # why it was moved or skipped, for `companion schedule show`
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    sent_at: datetime | None = None
    followup_due_at: datetime | None = None  # when to look whether the student answered
    followed_up_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class ChosenTime(SQLModel, table=True):
    """A person's own weekday and time for a `chosen` trigger (an adviser's digest); without a row, the school's."""

    person_id: int = Field(foreign_key="person.id", primary_key=True)
    kind: str = Field(primary_key=True)
    weekday: int | None = None  # 0 = Monday … 6 = Sunday; None: the person turned this nudge off
    at: str | None = None  # "HH:MM"; None: the school's default time
    updated_at: datetime = Field(default_factory=utcnow)


class Flag(SQLModel, table=True):
    """Something for the adviser's digest, such as a student silent after a nudge and its follow-up."""

    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    kind: str
    nudge_id: int | None = Field(default=None, foreign_key="nudge.id", unique=True)
    detail: str = "{}"
    created_at: datetime = Field(default_factory=utcnow)
    seen_at: datetime | None = None


# -- the policy, as pure functions -----------------------------------------------------------------


@dataclass(frozen=True)
class Rules:
    """A school's schedule: its triggers in priority order, the weekday (and default time) of each, the settings."""

    triggers: tuple[Trigger, ...] = ()
    days: Mapping[str, int | None] = field(default_factory=dict)
    timezone: str = DEFAULT_TIMEZONE
    quiet_start: time = time(21)
    quiet_end: time = time(7)
    class_start: time = time(8)
    class_end: time = time(15)
    weekly_cap: int = 3
    followup: timedelta = timedelta(hours=24)
    grace: timedelta = timedelta(hours=6)
    times: Mapping[str, time] = field(default_factory=dict)  # a chosen trigger's default time of day

    @classmethod
    def of(cls, triggers: Iterable[Trigger], values: Mapping[str, Any], timezone: str) -> "Rules":
        """A school's rules from its settings (`values`: every key, defaults included)."""
        triggers = tuple(triggers)
        return cls(triggers, {t.kind: values[t.day] for t in triggers if t.day}, timezone, values["quiet_hours.start"],
                   values["quiet_hours.end"], values["class_time.start"], values["class_time.end"],
                   values["nudges.weekly_cap"], values["nudges.followup_after"], values["nudges.grace"],
                   {t.kind: values[t.at] for t in triggers if t.at})

    def day_of(self, kind: str) -> int | None:
        """The weekday (0 = Monday) the school sends `kind` on (a chosen trigger: by default), or None: off."""
        return self.days.get(kind)

    def trigger(self, kind: str) -> Trigger | None:
        """The trigger of `kind`; None for a kind no installed feature declares (any more)."""
        return next((trigger for trigger in self.triggers if trigger.kind == kind), None)

    def parts_of(self, kind: str) -> frozenset[str]:
        """The policy parts that bind `kind` (all of them for a kind no feature declares)."""
        trigger = self.trigger(kind)
        return trigger.parts if trigger else ALL_PARTS

    def capped_kinds(self) -> list[str]:
        """The kinds that count against the weekly cap."""
        return [trigger.kind for trigger in self.triggers if trigger.takes(Part.cap)]

    def school_zone(self) -> ZoneInfo:
        """The school's time zone: a trigger that leaves out the person's goes by it."""
        return zone_of(None, self.timezone)


@dataclass(frozen=True)
class DayMark:
    """A calendar event as the policy sees it: a kind, a title and a span of local days."""

    kind: str
    title: str
    starts_on: date
    ends_on: date

    def covers(self, day: date) -> bool:
        """Does the event span `day` (first and last day included)?"""
        return self.starts_on <= day <= self.ends_on


@dataclass(frozen=True)
class SchoolCalendar:
    """A school's terms, grading periods, holidays and exam weeks."""

    marks: tuple[DayMark, ...] = ()

    def first(self, kind: str, day: date) -> DayMark | None:
        """The first event of `kind` that covers `day`."""
        return next((mark for mark in self.marks if mark.kind == kind and mark.covers(day)), None)

    def day_off(self, day: date) -> str | None:
        """Why no nudge goes on `day` (a holiday, or outside every known term), or None."""
        holiday = self.first(CalendarKind.holiday, day)
        if holiday:
            return f"holiday ({holiday.title})"
        terms_known = any(mark.kind == CalendarKind.term for mark in self.marks)
        if terms_known and self.first(CalendarKind.term, day) is None:
            return "outside term"
        return None

    def of_kind(self, kind: str) -> list[DayMark]:
        """Every event of `kind`, in the order they start."""
        return [mark for mark in self.marks if mark.kind == kind]


NO_DAYS_OFF = SchoolCalendar()  # what a trigger that leaves out holidays sees of the calendar


@dataclass(frozen=True)
class Slot:
    """When one nudge goes, or why it does not."""

    kind: str
    day: date  # the person's local day
    local_time: time
    due_at: datetime  # UTC
    status: str
    reason: str | None = None
    occasion: date | None = None  # which time of its trigger this is (see Nudge.occasion)


@dataclass(frozen=True)
class Choice:
    """A person's own weekday and time for a `chosen` trigger (a ChosenTime row)."""

    weekday: int | None  # None: the person turned it off
    at: time | None = None  # None: the school's default time


@cache  # a sweep reads the same few values thousands of times
def parse_clock(value: str | time | None, default: str = DEFAULT_CHECKIN_TIME) -> time:
    """A "HH:MM" column as a time; an empty or malformed value falls back to `default`."""
    if isinstance(value, time):
        return value
    try:
        return time.fromisoformat(value or default)
    except ValueError:
        return time.fromisoformat(default)


def _clock_or_none(value: str | None) -> time | None:
    """A "HH:MM" column as a time, or None when it is empty or malformed."""
    try:
        return time.fromisoformat(value) if value else None
    except ValueError:
        return None


@cache
def zone_of(name: str | None, fallback: str) -> ZoneInfo:
    """The time zone `name`, or the school's when the student has none (or a misspelt one)."""
    try:
        return ZoneInfo(name or fallback)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(fallback)


def _within(moment: time, start: time, end: time) -> bool:
    """Is `moment` in [start, end)? A span whose end comes before its start runs past midnight."""
    if start <= end:
        return start <= moment < end
    return moment >= start or moment < end


def _span(start: time, end: time) -> str:
    """"21:00–07:00"."""
    return f"{start:%H:%M}–{end:%H:%M}"


def _in_class(rules: Rules, day: date, moment: time) -> bool:
    """Class time is on weekdays only."""
    return day.weekday() < 5 and _within(moment, rules.class_start, rules.class_end)


def off_hours(rules: Rules, day: date, moment: time) -> str | None:
    """Why `moment` on local `day` is no time for a message (class time, quiet hours), or None when it is fine."""
    if _in_class(rules, day, moment):
        return f"class time {_span(rules.class_start, rules.class_end)}"
    if _within(moment, rules.quiet_start, rules.quiet_end):
        return f"quiet hours {_span(rules.quiet_start, rules.quiet_end)}"
    return None


def _way_out(rules: Rules, day: date, moment: time) -> time:
    """Where a nudge goes instead: when class ends; before quiet hours start at night, after they end in the morning."""
    if _in_class(rules, day, moment):
        return rules.class_end
    if rules.quiet_start > rules.quiet_end and moment >= rules.quiet_start:
        return (datetime.combine(day, rules.quiet_start) - EVENING_MARGIN).time()
    return rules.quiet_end


def place(rules: Rules, day: date, preferred: time) -> tuple[time, str | None]:
    """The local time a nudge goes on `day`: the preferred time, moved out of class and quiet hours."""
    moment, reasons = preferred, []
    for _ in range(3):  # moving out of the night can land in class time
        off = off_hours(rules, day, moment)
        if off is None:
            break
        reasons.append(off)
        moment = _way_out(rules, day, moment)
    if not reasons:
        return moment, None
    return moment, f"moved from {preferred:%H:%M} to {moment:%H:%M}: " + ", ".join(dict.fromkeys(reasons))


def to_utc(zone: ZoneInfo, day: date, moment: time) -> tuple[datetime, str | None]:
    """The UTC instant of a local day and time; a time the clocks skip (DST) goes at the moment after."""
    local = datetime.combine(day, moment, tzinfo=zone)
    instant = local.astimezone(timezone.utc)
    back = instant.astimezone(zone)
    if (back.date(), back.time()) != (day, moment):
        return instant, f"{moment:%H:%M} does not exist on {day} (daylight saving): sent at {back:%H:%M}"
    return instant, None


def _school_day(calendar: SchoolCalendar, week_start: date, offset: int, shift: int) -> tuple[date | None, str | None]:
    """The day for a nudge planned `offset` days into the week, moved by `shift` days off a holiday."""
    planned = week_start + timedelta(days=offset)
    off = calendar.day_off(planned)
    if off is None:
        return planned, None
    step = offset + shift
    while shift and 0 <= step <= 4:  # stay on this week's weekdays
        candidate = week_start + timedelta(days=step)
        if calendar.day_off(candidate) is None:
            return candidate, f"moved from {WEEKDAY_NAMES[offset]} to {WEEKDAY_NAMES[step]}: {off}"
        step += shift
    return None, off


def _school_day_after(days_off: SchoolCalendar, end: date) -> tuple[date | None, str | None]:
    """The first school day (a weekday, not a day off) after `end`, and the day off passed over on the way, if any."""
    day, passed = end + timedelta(days=1), None
    for _ in range(SCHOOL_DAY_SEARCH):
        if day.weekday() < 5:
            off = days_off.day_off(day)
            if off is None:
                return day, passed
            passed = passed or off
        day += timedelta(days=1)
    return None, passed


def _weekday_and_time(rules: Rules, trigger: Trigger, preferred: time,
                      chosen: Mapping[str, Choice]) -> tuple[int | None, time]:
    """The weekday (None: off) and local time of a weekly or chosen trigger for one person."""
    if trigger.when != When.chosen:
        return rules.day_of(trigger.kind), preferred
    default_time = rules.times.get(trigger.kind, preferred)
    choice = chosen.get(trigger.kind)
    if choice is None:
        return rules.day_of(trigger.kind), default_time
    return choice.weekday, choice.at or default_time


def _timed(rules: Rules, calendar: SchoolCalendar, trigger: Trigger, zone: ZoneInfo, day: date, moment: time,
           occasion: date, day_reason: str | None) -> Slot:
    """A nudge on a school day: out of quiet hours (if they bind it), in UTC, skipped in an exam week if asked."""
    exam = calendar.first(CalendarKind.exam_week, day) if trigger.quiet_in_exams else None
    placed, time_reason = place(rules, day, moment) if trigger.takes(Part.quiet_hours) else (moment, None)
    due_at, dst_reason = to_utc(zone, day, placed)
    if exam:
        return Slot(trigger.kind, day, placed, due_at, NudgeStatus.skipped, f"exam week ({exam.title})", occasion)
    reason = "; ".join(part for part in (day_reason, time_reason, dst_reason) if part) or None
    return Slot(trigger.kind, day, placed, due_at, NudgeStatus.planned, reason, occasion)


def week_slots(rules: Rules, calendar: SchoolCalendar, zone: ZoneInfo, preferred: time, week_start: date,
               role: str = Role.student, chosen: Mapping[str, Choice] | None = None) -> list[Slot]:
    """Every nudge of one week for a person of `role` in `zone` who prefers `preferred`, with its reasons.

    The one planner: `plan_week` calls it once for each group of people who share a school, a
    zone, a preferred time and their chosen times; `outlook` once for each week it shows. Weekly
    triggers go on the school's day, chosen ones on the person's (`chosen`: their ChosenTime
    rows by kind), calendar ones on the first school day after their event ends; on-demand
    triggers are never planned. Each trigger takes only the policy parts it declares.
    """
    chosen = chosen or {}
    slots = []
    for trigger in rules.triggers:
        if role not in trigger.roles or trigger.when == When.on_demand:
            continue
        here = zone if trigger.takes(Part.timezone) else rules.school_zone()
        days_off = calendar if trigger.takes(Part.holidays) else NO_DAYS_OFF
        if trigger.when == When.calendar:
            for mark in calendar.of_kind(trigger.after):
                day, passed = _school_day_after(days_off, mark.ends_on)
                if day is None or not week_start <= day < week_start + timedelta(weeks=1):
                    continue
                why = f"after {mark.title} (ended {mark.ends_on:%a %d %b})"
                if passed:
                    why += f", on the first school day after {passed}"
                slots.append(_timed(rules, calendar, trigger, here, day, preferred, mark.ends_on, why))
            continue
        offset, moment = _weekday_and_time(rules, trigger, preferred, chosen)
        if offset is None:
            continue
        day, day_reason = _school_day(days_off, week_start, offset, trigger.holiday_shift)
        if day is None:
            fallback = week_start + timedelta(days=offset)
            slots.append(Slot(trigger.kind, fallback, moment, to_utc(here, fallback, moment)[0], NudgeStatus.skipped,
                              day_reason, week_start))
            continue
        slots.append(_timed(rules, calendar, trigger, here, day, moment, week_start, day_reason))
    return _apply_cap(rules, slots)


def _apply_cap(rules: Rules, slots: list[Slot]) -> list[Slot]:
    """Skip the planned nudges beyond the weekly cap, lowest priority first (slots come in priority order).

    Only triggers bound by the cap count against it and are dropped by it. A trigger that takes its
    day (`takes_day`: a report-card reflection) first replaces the weekly capped nudges of that day.
    """
    taken = {slot.day: slot.kind for slot in slots if slot.status == NudgeStatus.planned
             and (trigger := rules.trigger(slot.kind)) is not None and trigger.takes_day}
    kept, capped = 0, []
    for slot in slots:
        trigger = rules.trigger(slot.kind)
        if (slot.status == NudgeStatus.planned and slot.day in taken and trigger is not None
                and trigger.when == When.weekly and trigger.takes(Part.cap)):
            slot = replace(slot, status=NudgeStatus.skipped, reason=f"{taken[slot.day]} takes its place")
        if slot.status == NudgeStatus.planned and Part.cap in rules.parts_of(slot.kind):
            kept += 1
            if kept > rules.weekly_cap:
                slot = replace(slot, status=NudgeStatus.skipped, reason=f"weekly cap of {rules.weekly_cap} nudges")
        capped.append(slot)
    return sorted(capped, key=lambda slot: slot.due_at)


def absent_reason(trigger: Trigger, chosen: Mapping[str, Choice] | None = None) -> str:
    """Why a trigger has no nudge at all in the weeks looked at (for `companion schedule show`)."""
    if trigger.when == When.on_demand:
        return "on demand: only when asked for"
    if trigger.when == When.calendar:
        return f"after each {trigger.after.replace('_', ' ')}: none ends in time for these weeks"
    choice = (chosen or {}).get(trigger.kind)
    if choice is not None and choice.weekday is None:
        return "turned off by the person"
    return f"off ({trigger.day} is off)"


def personal_reason(status: str | None, paused_until: date | None, day: date,
                    linked: bool = True, consented: bool = True) -> str | None:
    """Why this person gets no nudge on their local `day`, or None.

    `plan_week` applies the first two conditions in SQL (PLAN_PERSONAL_*): keep the two in step.
    Pass no `paused_until` for a trigger that pauses do not bind.
    """
    if status and status != PersonStatus.active:
        return status
    if paused_until is not None and day < paused_until:
        return f"paused until {paused_until}"
    if not linked:
        return "no reachable chat account"
    if not consented:
        return "has not agreed to the bot yet"
    return None


def next_school_moment(rules: Rules, calendar: SchoolCalendar, zone: ZoneInfo, preferred: time,
                       earliest: datetime, parts: frozenset[str] = ALL_PARTS) -> datetime:
    """The first school day's nudge time for this person at or after `earliest`.

    A school day is a weekday, and not a day off when holidays bind (`parts`); the time is moved
    out of class and quiet hours when they bind.
    """
    day = earliest.astimezone(zone).date()
    for _ in range(21):  # three weeks covers any school break short of summer
        if day.weekday() < 5 and (Part.holidays not in parts or calendar.day_off(day) is None):
            moment = place(rules, day, preferred)[0] if Part.quiet_hours in parts else preferred
            due_at = to_utc(zone, day, moment)[0]
            if due_at >= earliest:
                return due_at
        day += timedelta(days=1)
    return earliest


def followup_due(rules: Rules, calendar: SchoolCalendar, zone: ZoneInfo, preferred: time,
                 sent_at: datetime, parts: frozenset[str] = ALL_PARTS) -> datetime:
    """When to follow up: the first school day at the person's time, `followup` after the nudge."""
    return next_school_moment(rules, calendar, zone, preferred, sent_at + rules.followup, parts)


def demand_slot(rules: Rules, calendar: SchoolCalendar, trigger: Trigger, zone: ZoneInfo, preferred: time,
                now: datetime, used: Mapping[date, int] | None = None) -> Slot:
    """An on-demand nudge asked for at `now`: due now, or at the person's next school moment when now is a
    day off or off hours (if those parts bind it); skipped when the cap binds it and its week is full
    (`used`: nudges counted against the cap, by week start). Its occasion is the day it was asked for."""
    here = zone if trigger.takes(Part.timezone) else rules.school_zone()
    asked = now.astimezone(here)
    blocked = calendar.day_off(asked.date()) if trigger.takes(Part.holidays) else None
    if blocked is None and trigger.takes(Part.quiet_hours):
        blocked = off_hours(rules, asked.date(), asked.time())
    due_at, reason = now, None
    if blocked:
        due_at = next_school_moment(rules, calendar, here, preferred, now, trigger.parts)
        reason = f"asked for {asked:%a %H:%M}, in {blocked}: moved to {due_at.astimezone(here):%a %d %b %H:%M}"
    local = due_at.astimezone(here)
    slot = Slot(trigger.kind, local.date(), local.time(), due_at, NudgeStatus.planned, reason, asked.date())
    if trigger.takes(Part.cap) and (used or {}).get(dates.week_start(local.date()), 0) >= rules.weekly_cap:
        slot = replace(slot, status=NudgeStatus.skipped, reason=f"weekly cap of {rules.weekly_cap} nudges")
    return slot


def expiry(rules: Rules, trigger: Trigger | None, due_at: datetime) -> datetime:
    """When a nudge missed since `due_at` is skipped as stale: after the grace window; never if grace does not bind."""
    if trigger is not None and not trigger.takes(Part.grace):
        return FOREVER
    return due_at + rules.grace


# -- reading rules and calendars -------------------------------------------------------------------

def load_rules(tx: Tx, registry: Registry) -> dict[int, Rules]:
    """Every school's schedule rules, from its settings, by school id."""
    values = registry.settings.load(tx)
    return {school_id: Rules.of(registry.triggers, values[school_id], zone)
            for school_id, zone in tx.all("SELECT id, timezone FROM school")}


def load_calendars(tx: Tx, only_school: int | None = None) -> dict[int, SchoolCalendar]:
    """Every school's calendar (or only `only_school`'s), by school id; a school without events is left out.

    The roster's academic sessions say a school's terms and grading periods exactly: where they
    give a kind, the calendars' rows of that kind are left out (their closures and the rest stay).
    """
    marks: dict[int, list[tuple[str, DayMark]]] = {}
    where, params = ("WHERE school_id = ? ", (only_school,)) if only_school is not None else ("", ())
    for school_id, kind, title, starts_on, ends_on, source in tx.all(
            f"SELECT school_id, kind, title, starts_on, ends_on, source FROM calendarevent {where}"
            "ORDER BY starts_on, id", params):
        marks.setdefault(school_id, []).append(
            (source, DayMark(kind, title, tx.as_date(starts_on), tx.as_date(ends_on))))
    calendars = {}
    for school_id, found in marks.items():
        from_roster = {mark.kind for source, mark in found if source == ROSTER_SOURCE}
        calendars[school_id] = SchoolCalendar(tuple(
            mark for source, mark in found if source == ROSTER_SOURCE or mark.kind not in from_roster))
    return calendars


def _store(database: SQLEngine | Store) -> Store:
    """Functions here take an SQLAlchemy engine or an existing Store."""
    return database if isinstance(database, Store) else Store(database)



# -- planning a week -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Audience:
    """People planned together: roles that take the same planned triggers, and the chosen triggers among them."""

    roles: tuple[str, ...]
    chosen: tuple[str, ...] = ()  # the kinds of their chosen-time triggers: each person's times join their group key


def audiences(triggers: Iterable[Trigger]) -> list[Audience]:
    """The roles `plan_week` plans together (students; the adults, when a trigger is for them)."""
    planned = [trigger for trigger in triggers if trigger.when != When.on_demand]
    grouped: dict[tuple[str, ...], list[str]] = {}
    for role in Role:
        kinds = tuple(trigger.kind for trigger in planned if role in trigger.roles)
        if kinds:
            grouped.setdefault(kinds, []).append(role.value)
    return [Audience(tuple(roles), tuple(t.kind for t in planned if t.kind in kinds and t.when == When.chosen))
            for kinds, roles in grouped.items()]


# Every person with the keys plan_week groups them by: school, time zone, preferred time and chosen times.
PEOPLE = ("SELECT p.id, p.school_id, p.status, p.paused_until, COALESCE(p.timezone, s.timezone) AS zone, "
          "COALESCE(lp.checkin_time, ?) AS preferred{chosen} FROM person p JOIN school s ON s.id = p.school_id "
          "LEFT JOIN learnerprofile lp ON lp.person_id = p.id{joins} WHERE {roles}")
# One person's choice for one chosen trigger as text: '' (none: the school's default), 'off@', or '2@16:00'.
CHOICE = ("CASE WHEN c{n}.person_id IS NULL THEN '' ELSE COALESCE(CAST(c{n}.weekday AS TEXT), 'off') || '@' || "
          "COALESCE(c{n}.at, '') END")
PLAN_PERSONAL_STATUS = ("CASE WHEN st.status <> 'active' THEN 'skipped' "
                        "WHEN t.pausable AND st.paused_until > t.local_day THEN 'skipped' ELSE t.status END")
PLAN_PERSONAL_REASON = ("CASE WHEN st.status <> 'active' THEN st.status "
                        "WHEN t.pausable AND st.paused_until > t.local_day THEN 'paused until ' || st.paused_until "
                        "ELSE t.reason END")
# People per INSERT: each statement's unique-index and person pages stay in the database's cache, while
# its rows, in due order, still land in runs a claim reads together.
PLAN_CHUNK = 10_000
PLAN_INSERT = f"""
INSERT INTO nudge (person_id, kind, occasion, due_at, expires_at, status, reason, created_at)
SELECT st.id, t.kind, t.occasion, t.due_at, t.expires_at, {PLAN_PERSONAL_STATUS}, {PLAN_PERSONAL_REASON}, ?
FROM ({{people}} AND p.id >= ? AND p.id < ?) st
JOIN plan_slot t ON t.school_id = st.school_id AND t.zone = st.zone AND t.preferred = st.preferred{{chosen}}
WHERE TRUE -- without a WHERE, SQLite would read ON CONFLICT as part of the join
ORDER BY t.due_at
ON CONFLICT (person_id, kind, occasion) DO UPDATE
SET due_at = excluded.due_at, expires_at = excluded.expires_at, status = excluded.status, reason = excluded.reason
WHERE nudge.status IN ('planned', 'skipped') AND nudge.claimed_at IS NULL
  AND (nudge.due_at <> excluded.due_at OR nudge.status <> excluded.status)"""


def people_query(audience: Audience) -> tuple[str, list]:
    """The audience's people with their group keys (`chosen` when they have chosen triggers), and the parameters."""
    roles = ", ".join(f"'{Role(role).value}'" for role in audience.roles)  # roles are the Role enum's, never input
    where = f"p.role = {roles}" if len(audience.roles) == 1 else f"p.role IN ({roles})"
    where += " AND p.left_on IS NULL"  # who left the school (the roster says so) is nudged no more
    joins = "".join(f" LEFT JOIN chosentime c{n} ON c{n}.person_id = p.id AND c{n}.kind = ?"
                    for n in range(len(audience.chosen)))
    chosen = " || '|' || ".join(CHOICE.format(n=n) for n in range(len(audience.chosen)))
    return (PEOPLE.format(chosen=f", {chosen} AS chosen" if chosen else "", joins=joins, roles=where),
            [DEFAULT_CHECKIN_TIME, *audience.chosen])


def _choices(kinds: tuple[str, ...], key: str) -> dict[str, Choice]:
    """A group's chosen times, from the text `people_query` gives them (see CHOICE)."""
    found = {}
    for kind, text in zip(kinds, key.split("|")):
        if text:
            day, _, at = text.partition("@")
            found[kind] = Choice(None if day == "off" else int(day) % 7, _clock_or_none(at))
    return found


def plan_week(database: SQLEngine | Store, registry: Registry, week_start: date, now: datetime) -> int:
    """Plan (or re-plan) everyone's nudges for the week starting on Monday `week_start`.

    People who share a school, time zone, preferred time and chosen times share a schedule: it
    is computed once per group in Python (`week_slots`), and an INSERT … SELECT per audience
    (students; adults when a trigger is for them) and chunk of `PLAN_CHUNK` people writes their
    rows in the order they fall due, so each sweep's claims touch neighbouring pages. Rows already claimed or sent,
    and rows whose time and status did not change, are left alone. Returns the number of rows
    written.
    """
    store = _store(database)
    with store.transaction() as tx:
        tx.begin()
        rules, calendars = load_rules(tx, registry), load_calendars(tx)
        moment, dropped = ("TIMESTAMPTZ", " ON COMMIT DROP") if tx.postgres else ("TEXT", "")
        tx.execute(f"CREATE TEMPORARY TABLE plan_slot (school_id INTEGER, zone TEXT, preferred TEXT, chosen TEXT, "
                   f"kind TEXT, occasion DATE, local_day DATE, due_at {moment}, expires_at {moment}, status TEXT, "
                   f"reason TEXT, pausable BOOLEAN){dropped}")
        tx.execute("CREATE INDEX plan_slot_key ON plan_slot (school_id, zone, preferred)")
        written = 0
        for audience in audiences(registry.triggers):
            people, params = people_query(audience)
            chosen_key = ", chosen" if audience.chosen else ""
            keys = f"SELECT DISTINCT school_id, zone, preferred{chosen_key} FROM ({people}) k"
            rows = []
            for school_id, zone_name, preferred, *chosen in tx.all(keys, params):
                school, key = rules[school_id], chosen[0] if chosen else ""
                for slot in week_slots(school, calendars.get(school_id, SchoolCalendar()),
                                       zone_of(zone_name, school.timezone), parse_clock(preferred), week_start,
                                       audience.roles[0], _choices(audience.chosen, key)):
                    trigger = school.trigger(slot.kind)
                    rows.append((school_id, zone_name, preferred, key, slot.kind, tx.day(slot.occasion),
                                 tx.day(slot.day), tx.ts(slot.due_at), tx.ts(expiry(school, trigger, slot.due_at)),
                                 slot.status, slot.reason, trigger.takes(Part.pauses)))
            if not rows:
                continue
            tx.cursor.executemany(store.sql("INSERT INTO plan_slot VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"), rows)
            if tx.postgres:
                tx.execute("ANALYZE plan_slot")  # a temporary table has no statistics: the join would be a guess
            insert = PLAN_INSERT.format(people=people, chosen=" AND t.chosen = st.chosen" if audience.chosen else "")
            first, last = tx.one(f"SELECT MIN(id), MAX(id) FROM ({people}) k", params)
            for low in range(first, last + 1, PLAN_CHUNK):
                written += tx.execute(insert, (tx.ts(now), *params, low, low + PLAN_CHUNK)).rowcount
            tx.execute("DELETE FROM plan_slot")
        if tx.postgres and written:
            # A week's rows at once: until autovacuum's next pass the claims would be planned on old statistics.
            tx.execute("ANALYZE nudge")
        else:
            tx.execute("DROP TABLE plan_slot")
    return written


def on_demand(database: SQLEngine | Store, registry: Registry, kind: str, person_ids: Iterable[int],
              now: datetime) -> int:
    """Queue the on-demand trigger `kind` for these people at `now`; the sweep sends it like any nudge.

    Each row is due now, or at the person's next school moment when the trigger takes quiet hours
    or holidays and now is off hours or a day off (`demand_slot`); it is skipped with the reason
    when the person has stopped, has paused (if pauses bind it) or their week's cap is used up (if
    the cap binds it). People the trigger is not for are left out; asking again on the same local
    day queues nothing more. Returns the number of rows queued.
    """
    with _store(database).transaction() as tx:
        tx.begin()
        return on_demand_in(tx, registry, kind, person_ids, now)


def on_demand_in(tx: Tx, registry: Registry, kind: str, person_ids: Iterable[int], now: datetime) -> int:
    """`on_demand` inside a transaction already open (an adviser's command, in the engine's event)."""
    trigger = next((t for t in registry.triggers if t.kind == kind), None)
    if trigger is None or trigger.when != When.on_demand:
        raise ValueError(f"no on-demand trigger {kind!r}")
    ids = list(dict.fromkeys(person_ids))
    capped = [t.kind for t in registry.triggers if t.takes(Part.cap)]
    written = 0
    rules, calendars = load_rules(tx, registry), load_calendars(tx)
    for first in range(0, len(ids), 500):
        chunk = ids[first:first + 500]
        marks = ", ".join("?" * len(chunk))
        people = tx.all(f"SELECT p.id, p.school_id, p.role, {PERSON_STATUS}, p.paused_until, "
                        "COALESCE(p.timezone, s.timezone), lp.checkin_time FROM person p JOIN school s "
                        "ON s.id = p.school_id LEFT JOIN learnerprofile lp ON lp.person_id = p.id "
                        f"WHERE p.id IN ({marks}) ORDER BY p.id", chunk)
        zones = {row[0]: zone_of(row[5], rules[row[1]].timezone) for row in people}
        used: dict[int, dict[date, int]] = {}
        if trigger.takes(Part.cap) and capped:
            for person_id, due_at, followed_up_at in tx.all(
                    f"SELECT person_id, due_at, followed_up_at FROM nudge WHERE person_id IN ({marks}) "
                    f"AND kind IN ({', '.join('?' * len(capped))}) AND status <> 'skipped' AND due_at >= ?",
                    (*chunk, *capped, tx.ts(now - timedelta(weeks=1)))):
                week = dates.week_start(as_moment(due_at).astimezone(zones[person_id]).date())
                counts = used.setdefault(person_id, {})
                counts[week] = counts.get(week, 0) + 1 + (followed_up_at is not None)
        for person_id, school_id, role, status, paused_until, _, checkin_time in people:
            if role not in trigger.roles:
                continue
            school = rules[school_id]
            slot = demand_slot(school, calendars.get(school_id, SchoolCalendar()), trigger, zones[person_id],
                               parse_clock(checkin_time), now, used.get(person_id))
            personal = personal_reason(status, tx.as_date(paused_until) if trigger.takes(Part.pauses) else None,
                                       slot.day)
            state, reason = ((NudgeStatus.skipped, personal) if personal and slot.status == NudgeStatus.planned
                             else (slot.status, slot.reason))
            written += tx.execute(
                "INSERT INTO nudge (person_id, kind, occasion, due_at, expires_at, status, reason, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (person_id, kind, occasion) DO NOTHING",
                (person_id, kind, tx.day(slot.occasion), tx.ts(slot.due_at),
                 tx.ts(expiry(school, trigger, slot.due_at)), state, reason, tx.ts(now))).rowcount
    return written


def choose_time(database: SQLEngine | Store, person_id: int, kind: str, weekday: int | None, at: time | None,
                now: datetime) -> None:
    """A person's own weekday (None: off) and time (None: the school's) for the chosen trigger `kind`."""
    with _store(database).transaction() as tx:
        choose_time_in(tx, person_id, kind, weekday, at, now)


def choose_time_in(tx: Tx, person_id: int, kind: str, weekday: int | None, at: time | None, now: datetime) -> None:
    """`choose_time` inside a transaction already open (a person choosing in chat); the next planning moves the nudge."""
    tx.execute("DELETE FROM chosentime WHERE person_id = ? AND kind = ?", (person_id, kind))
    tx.execute("INSERT INTO chosentime (person_id, kind, weekday, at, updated_at) VALUES (?, ?, ?, ?, ?)",
               (person_id, kind, weekday, f"{at:%H:%M}" if at else None, tx.ts(now)))


# -- sweeping what is due --------------------------------------------------------------------------


@dataclass
class SweepReport:
    """What one sweep did, for logs and tests."""

    stale: int = 0
    claimed: int = 0
    sent: int = 0
    skipped: int = 0
    followed_up: int = 0
    answered: int = 0
    flagged: int = 0
    failed: int = 0

    def __bool__(self) -> bool:
        """True when the sweep found anything to do: callers loop until a sweep comes back empty."""
        return any(vars(self).values())


@dataclass(frozen=True, slots=True)
class Due:
    """A claimed nudge with what sending it needs: the person, their chat account, the school."""

    id: int
    person_id: int
    kind: str
    school_id: int
    role: str
    person_status: str
    paused_until: date | None
    consented: bool
    zone: ZoneInfo
    preferred: time
    locale: str
    given_name: str
    platform: str | None
    external_id: str | None
    chat_id: str | None


# A student's newest reachable chat account: where nudges go.
REACHABLE_IDENTITY = ("i.person_id = p.id AND i.unreachable = ? AND NOT EXISTS (SELECT 1 FROM chatidentity newer "
                      "WHERE newer.person_id = p.id AND newer.unreachable = i.unreachable AND newer.id > i.id)")
# Who left the roster (`left_on`, core/school/roster.py) is nudged no more: their status reads so.
PERSON_STATUS = "CASE WHEN p.left_on IS NOT NULL THEN 'left the roster' ELSE p.status END"
DUE_QUERY = f"""
SELECT n.id, n.person_id, n.kind, p.school_id, p.role, {PERSON_STATUS}, p.paused_until, p.consent_at IS NOT NULL,
       p.timezone, s.timezone, lp.checkin_time, COALESCE(p.locale, s.locale), p.given_name,
       i.platform, i.external_id, i.chat_id
FROM nudge n JOIN person p ON p.id = n.person_id JOIN school s ON s.id = p.school_id
LEFT JOIN learnerprofile lp ON lp.person_id = p.id
LEFT JOIN chatidentity i ON {REACHABLE_IDENTITY}
WHERE n.id IN ({{ids}})"""


def _due_from_row(tx: Tx, row: tuple) -> Due:
    """A DUE_QUERY row as a Due."""
    (nudge_id, person_id, kind, school_id, role, status, paused_until, consented, zone, school_zone,
     checkin_time, locale, given_name, platform, external_id, chat_id) = row
    return Due(nudge_id, person_id, kind, school_id, role, status, tx.as_date(paused_until),
               bool(consented), zone_of(zone, school_zone), parse_clock(checkin_time), locale or DEFAULT_LOCALE, given_name,
               platform, external_id, chat_id)


def sweep(database: SQLEngine | Store, conversation: "ConversationEngine", now: datetime, worker_id: str,
          limit: int = 500) -> SweepReport:
    """Send what is due at `now`, skip what is past its grace window, then follow up; safe to run anywhere.

    Call it again while it reports work done. With PostgreSQL several workers may sweep at once.
    """
    store = _store(database)
    report = SweepReport()
    report.stale = skip_stale(store, now, worker_id)
    with store.transaction() as tx:
        rules, calendars = load_rules(tx, conversation.registry), load_calendars(tx)
    outcomes = [decide(due, rules[due.school_id], now) for due in load_due(store, claim(store, now, worker_id, limit))]
    report.claimed = len(outcomes)
    failed = open_flows(conversation, [outcome for outcome in outcomes if outcome.opens], report)
    # Stamped after the flows opened, so only the student's own answer moves the conversation past it.
    sent_at = conversation.clock()
    record(store, conversation.registry, [outcome for outcome in outcomes if outcome.due.id not in failed],
           rules, calendars, sent_at, worker_id, now, report)
    follow_up(store, now, limit, rules, calendars, conversation.registry.menu, report)
    return report


# What the sweep walks: planned rows by due time, claimed ones by claim time (their partial indexes).
PLANNED_DUE = f"{PLANNED} AND due_at <= ?"
CLAIM_LAPSED = f"{CLAIMED} AND claimed_at <= ?"


def skip_stale(store: Store, now: datetime, worker_id: str) -> int:
    """Nudges missed for longer than the grace window (the server was down) are skipped, never sent late in a burst.

    One statement per status, each with its status written out, so each walks its own partial index.
    """
    skipped = 0
    with store.transaction() as tx:
        for waiting, bound in ((PLANNED_DUE, now), (CLAIM_LAPSED, now - CLAIM_LEASE)):
            skipped += tx.execute(
                "UPDATE nudge SET status = 'skipped', reason = 'stale: missed its grace window', claimed_by = ?, "
                f"claimed_at = ? WHERE {waiting} AND expires_at <= ?",
                (worker_id, tx.ts(now), tx.ts(bound), tx.ts(now))).rowcount
    return skipped


CLAIM = ("UPDATE nudge SET status = 'claimed', claimed_by = ?, claimed_at = ? WHERE id IN ("
         "SELECT id FROM nudge WHERE {waiting} AND expires_at > ? ORDER BY {order} LIMIT {limit}{lock}) RETURNING id")


def claim(store: Store, now: datetime, worker_id: str, limit: int) -> list[int]:
    """Claim up to `limit` due nudges for `worker_id`: first any whose worker died, then planned ones, oldest first.

    Two statements rather than one with OR: each walks its partial index in order and stops at `limit`.
    """
    lock = " FOR UPDATE SKIP LOCKED" if store.postgres else ""
    with store.transaction() as tx:
        claimed = [row[0] for row in tx.all(
            CLAIM.format(waiting=CLAIM_LAPSED, order="claimed_at", limit=int(limit), lock=lock),
            (worker_id, tx.ts(now), tx.ts(now - CLAIM_LEASE), tx.ts(now)))]
        if len(claimed) < limit:
            claimed += [row[0] for row in tx.all(
                CLAIM.format(waiting=PLANNED_DUE, order="due_at", limit=int(limit - len(claimed)), lock=lock),
                (worker_id, tx.ts(now), tx.ts(now), tx.ts(now)))]
    return claimed


def load_due(store: Store, claimed: list[int]) -> list[Due]:
    """The claimed nudges with what sending them needs, in id order."""
    if not claimed:
        return []
    with store.transaction() as tx:
        rows = tx.all(DUE_QUERY.format(ids=", ".join("?" * len(claimed))), (False, *claimed))
    return sorted((_due_from_row(tx, row) for row in rows), key=lambda due: due.id)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What becomes of one claimed nudge: sent (opening its flow or command, or as a plain message), skipped, or
    planned again for the person's next good moment."""

    due: Due
    status: str
    parts: frozenset[str]  # the policy parts its trigger takes
    zone: ZoneInfo  # the clock it goes by
    reason: str | None = None
    event: Inbound | None = None  # sent through the engine: the event that opens its flow or runs its command

    @property
    def opens(self) -> bool:
        """Is it sent through the conversation engine?"""
        return self.event is not None


def decide(due: Due, rules: Rules, now: datetime) -> Outcome:
    """Whether a claimed nudge goes now, is skipped, or waits; only the policy parts its trigger takes apply:
    a pause, arriving late into quiet hours, the follow-up. Consent is asked of students (onboarding); adults
    come from the roster."""
    trigger = rules.trigger(due.kind)
    parts = trigger.parts if trigger else ALL_PARTS
    zone = due.zone if Part.timezone in parts else rules.school_zone()
    local = now.astimezone(zone)
    reason = personal_reason(due.person_status, due.paused_until if Part.pauses in parts else None, local.date(),
                             due.platform is not None, due.consented or due.role != Role.student)
    late = _arrives_off_hours(rules, local) if Part.quiet_hours in parts and not reason else None
    if late and Part.grace not in parts:  # never stale, so not lost either: it waits for the next good moment
        return Outcome(due, NudgeStatus.planned, parts, zone, late)
    if reason or late:
        return Outcome(due, NudgeStatus.skipped, parts, zone, reason or late)
    flow, command = (trigger.flow, trigger.command) if trigger else (None, None)
    event = (Inbound(due.platform, f"nudge:{due.id}", due.external_id, due.chat_id, opens=flow,
                     payload=f"/{command}" if command else None) if flow or command else None)
    return Outcome(due, NudgeStatus.sent, parts, zone, event=event)


def open_flows(conversation: "ConversationEngine", outcomes: list[Outcome], report: SweepReport) -> set[int]:
    """Open the nudges' flows through the engine in one batch, one commit (the event ids make a retry after a
    crash change nothing); returns the ids of the nudges that failed, left claimed to be tried again.

    When the batch fails (a nudge failed in it and again alone), each is opened alone: those the batch
    committed are no-ops, and the one that fails is found without holding up the others.
    """
    try:
        conversation.handle_many([outcome.event for outcome in outcomes], priority=NUDGE_PRIORITY)
        return set()
    except Exception:
        LOG.warning("a batch of %s nudges failed; opening them one by one", len(outcomes))
    failed = set()
    for outcome in outcomes:
        try:
            conversation.handle(outcome.event, priority=NUDGE_PRIORITY)
        except Exception:  # one student's failure must not hold up the others
            LOG.exception("nudge %s failed; it is tried again when its claim lapses", outcome.due.id)
            failed.add(outcome.due.id)
    report.failed += len(failed)
    return failed


MARK_SENT = ("UPDATE nudge SET status = 'sent', sent_at = ?, followup_due_at = ? WHERE id = ? AND claimed_by = ? "
             "AND status = 'claimed'")


def record(store: Store, registry: Registry, outcomes: list[Outcome], rules: dict[int, Rules],
           calendars: dict[int, SchoolCalendar], sent_at: datetime, worker_id: str, now: datetime,
           report: SweepReport) -> None:
    """Write what became of a sweep's nudges in one transaction (one commit, not one per nudge).

    Each row changes only while this worker still holds its claim; a plain nudge's message is queued
    with its row. A worker that dies before this leaves its flows opened and its rows claimed: the
    next worker opens them again as no-ops (their event ids) and records them.
    """
    opened = []
    with store.transaction() as tx:
        for outcome in outcomes:
            due, school = outcome.due, rules[outcome.due.school_id]
            calendar = calendars.get(due.school_id, SchoolCalendar())
            if outcome.status == NudgeStatus.planned:
                later = next_school_moment(school, calendar, outcome.zone, due.preferred, now, outcome.parts)
                tx.execute("UPDATE nudge SET status = 'planned', due_at = ?, claimed_by = NULL, claimed_at = NULL, "
                           "reason = ? WHERE id = ? AND claimed_by = ? AND status = 'claimed'",
                           (tx.ts(later), f"{outcome.reason}: moved to {later.astimezone(outcome.zone):%a %d %b %H:%M}",
                            due.id, worker_id))
                report.skipped += 1
                continue
            if outcome.status == NudgeStatus.skipped:
                tx.execute("UPDATE nudge SET status = 'skipped', reason = ? WHERE id = ? AND claimed_by = ? "
                           "AND status = 'claimed'", (outcome.reason, due.id, worker_id))
                report.skipped += 1
                continue
            # One follow-up (then a flag) only for a trigger that takes it: without, nothing watches for an answer.
            watch = (followup_due(school, calendar, outcome.zone, due.preferred, sent_at, outcome.parts)
                     if Part.followup in outcome.parts else None)
            row = (tx.ts(sent_at), tx.ts(watch) if watch else None, due.id, worker_id)
            if outcome.opens:
                opened.append(row)
                continue
            marked = tx.execute(MARK_SENT, row).rowcount
            if marked:
                tx.enqueue(due.person_id, due.platform, due.chat_id, due.locale,
                           Outbound(f"{due.kind}/nudge", {"name": due.given_name}, registry.menu(due.role)),
                           now, priority=NUDGE_PRIORITY)
            report.sent += marked
            report.skipped += not marked
        if opened:  # one statement for many rows: PostgreSQL pipelines them instead of a round trip each
            tx.cursor.executemany(store.sql(MARK_SENT), opened)
            report.sent += tx.cursor.rowcount
            report.skipped += len(opened) - tx.cursor.rowcount


def _arrives_off_hours(rules: Rules, local: datetime) -> str | None:
    """A nudge sent late (after downtime) must still not arrive at night or in class."""
    off = off_hours(rules, local.date(), local.time())
    return f"late: it would arrive at {local:%H:%M}, in {off}" if off else None


# -- follow-ups and flags --------------------------------------------------------------------------

FOLLOWUP_QUERY = f"""
SELECT n.id, n.person_id, n.kind, n.due_at, n.sent_at, n.followed_up_at, c.updated_at, p.school_id, p.role,
       {PERSON_STATUS}, p.paused_until, p.timezone, s.timezone, lp.checkin_time, COALESCE(p.locale, s.locale),
       p.given_name, i.platform, i.chat_id
FROM nudge n JOIN person p ON p.id = n.person_id JOIN school s ON s.id = p.school_id
LEFT JOIN learnerprofile lp ON lp.person_id = p.id
LEFT JOIN conversation c ON c.person_id = n.person_id
LEFT JOIN chatidentity i ON {REACHABLE_IDENTITY}
WHERE n.status = 'sent' AND n.followup_due_at <= ?
ORDER BY n.followup_due_at, n.id LIMIT {{limit}}"""


@dataclass(frozen=True)
class Silence:
    """A sent nudge whose follow-up time has come: did the student answer since?"""

    nudge_id: int
    person_id: int
    kind: str
    due_at: datetime
    sent_at: datetime
    followed_up_at: datetime | None
    last_activity: datetime | None
    school_id: int
    role: str
    person_status: str
    paused_until: date | None
    zone: ZoneInfo
    preferred: time
    locale: str
    given_name: str
    platform: str | None
    chat_id: str | None

    @property
    def answered(self) -> bool:
        """The student wrote after the nudge went out (their conversation moved on)."""
        return self.last_activity is not None and self.last_activity > self.sent_at


def follow_up(store: Store, now: datetime, limit: int, rules: dict[int, Rules], calendars: dict[int, SchoolCalendar],
              menu: Callable[[str], tuple[Button, ...]], report: SweepReport) -> None:
    """One follow-up for a person who has not answered, then a flag for the adviser; answered ones are left alone.

    Only nudges whose trigger takes the follow-up are watched (`record` sets no follow-up time for the others);
    `menu(role)` gives the follow-up's buttons.

    A batch is locked, decided, queued and updated in one transaction: exactly once, with any number of workers.
    """
    lock = " FOR UPDATE OF n SKIP LOCKED" if store.postgres else ""
    with store.transaction() as tx:
        tx.begin()
        rows = tx.all(FOLLOWUP_QUERY.format(limit=int(limit)) + lock, (False, tx.ts(now)))
        for silence in (_silence_from_row(tx, row) for row in rows):
            _settle(tx, silence, now, rules[silence.school_id], calendars.get(silence.school_id, SchoolCalendar()),
                    menu(silence.role), report)


def _silence_from_row(tx: Tx, row: tuple) -> Silence:
    """A FOLLOWUP_QUERY row as a Silence."""
    (nudge_id, person_id, kind, due_at, sent_at, followed_up_at, last_activity, school_id, role, status,
     paused_until, zone, school_zone, checkin_time, locale, given_name, platform, chat_id) = row
    return Silence(nudge_id, person_id, kind, as_moment(due_at), as_moment(sent_at), as_moment(followed_up_at),
                   as_moment(last_activity), school_id, role, status, tx.as_date(paused_until),
                   zone_of(zone, school_zone), parse_clock(checkin_time), locale or DEFAULT_LOCALE, given_name, platform, chat_id)


def _settle(tx: Tx, silence: Silence, now: datetime, rules: Rules, calendar: SchoolCalendar,
            buttons: tuple[Button, ...], report: SweepReport) -> None:
    """Decide one silent nudge: answered, followed up once (never at night or in class), or flagged.

    The trigger's parts decide: a pause, the cap (a follow-up counts against it) and quiet hours bind
    only a trigger that takes them.
    """
    parts = rules.parts_of(silence.kind)
    if silence.answered:
        report.answered += 1
        _close(tx, silence.nudge_id)
        return
    if Part.followup not in parts:  # sent before its trigger left out the follow-up
        _close(tx, silence.nudge_id)
        return
    zone = silence.zone if Part.timezone in parts else rules.school_zone()
    local = now.astimezone(zone)
    if personal_reason(silence.person_status, silence.paused_until if Part.pauses in parts else None, local.date(),
                       silence.platform is not None):
        _close(tx, silence.nudge_id)  # a paused or stopped person is not a non-responder
        return
    if silence.followed_up_at is None and (Part.cap not in parts
                                           or _nudges_this_week(tx, silence, rules) < rules.weekly_cap):
        if Part.quiet_hours in parts and off_hours(rules, local.date(), local.time()):
            # the sweep ran late: wait for the person's next good moment
            later = next_school_moment(rules, calendar, zone, silence.preferred, now, parts)
            tx.execute("UPDATE nudge SET followup_due_at = ? WHERE id = ?", (tx.ts(later), silence.nudge_id))
            return
        tx.enqueue(silence.person_id, silence.platform, silence.chat_id, silence.locale,
                   Outbound("nudges/followup", {"name": silence.given_name, "kind": silence.kind},
                            buttons), now, priority=NUDGE_PRIORITY)
        tx.execute("UPDATE nudge SET followed_up_at = ?, followup_due_at = ? WHERE id = ?",
                   (tx.ts(now), tx.ts(now + rules.followup), silence.nudge_id))
        report.followed_up += 1
        return
    detail = "no answer to the nudge or its follow-up" if silence.followed_up_at else "no answer (weekly cap reached)"
    tx.execute("INSERT INTO flag (person_id, kind, nudge_id, detail, created_at) VALUES (?, 'no_response', ?, ?, ?) "
               "ON CONFLICT DO NOTHING",
               (silence.person_id, silence.nudge_id, json.dumps({"kind": silence.kind, "why": detail}), tx.ts(now)))
    _close(tx, silence.nudge_id)
    report.flagged += 1


def _close(tx: Tx, nudge_id: int) -> None:
    """Nothing more to watch for this nudge."""
    tx.execute("UPDATE nudge SET followup_due_at = NULL WHERE id = ?", (nudge_id,))


def week_of(zone: ZoneInfo, moment: datetime) -> tuple[datetime, datetime]:
    """The UTC bounds of the person's local week (Monday to Monday) that holds `moment`: the week of a cap."""
    monday = dates.week_start(moment.astimezone(zone).date())
    return (datetime.combine(monday, time(0), tzinfo=zone).astimezone(timezone.utc),
            datetime.combine(monday + timedelta(weeks=1), time(0), tzinfo=zone).astimezone(timezone.utc))


def _nudges_this_week(tx: Tx, silence: Silence, rules: Rules) -> int:
    """Messages the bot started in the nudge's week that count against the cap: sent nudges of capped triggers
    and their follow-ups."""
    capped = rules.capped_kinds()
    if not capped:
        return 0
    begins, ends = week_of(silence.zone, silence.due_at)
    sent, followups = tx.one(
        "SELECT COUNT(*), COUNT(followed_up_at) FROM nudge WHERE person_id = ? AND due_at >= ? AND due_at < ? "
        f"AND status = 'sent' AND kind IN ({', '.join('?' * len(capped))})",
        (silence.person_id, tx.ts(begins), tx.ts(ends), *capped))
    return sent + followups


# -- what a person can expect ----------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """One line of `companion schedule show`: a nudge, when, and what happens to it (or why there is none)."""

    kind: str
    local: datetime | None  # in the person's zone; None for a trigger with no nudge in these weeks
    status: str  # planned, past, claimed, sent, skipped; none: no nudge of this trigger in these weeks
    reason: str | None = None
    when: str = When.weekly  # how its trigger falls due


@dataclass
class Outlook:
    """A person's nudges in some weeks: who, in which zone, and each nudge with its reason."""

    person_id: int
    name: str
    zone: str
    preferred: time
    role: str = Role.student
    nudges: list[Expected] = field(default_factory=list)


def find_people(database: SQLEngine | Store, who: str, roles: Iterable[str] = (Role.student,)) -> list[tuple[int, str]]:
    """People of `roles` whose sourced id or e-mail is `who`, or whose name contains it: [(id, full name)]."""
    store = _store(database)
    roles = sorted({Role(role).value for role in roles})
    among = f"role IN ({', '.join('?' * len(roles))})"
    with store.transaction() as tx:
        exact = tx.all(f"SELECT id, given_name || ' ' || family_name FROM person WHERE {among} "
                       "AND (sourced_id = ? OR lower(email) = lower(?)) ORDER BY id", (*roles, who, who))
        if exact:
            return exact
        pattern = f"%{who.lower()}%"
        return tx.all(f"SELECT id, given_name || ' ' || family_name FROM person WHERE {among} AND "
                      "(lower(given_name || ' ' || family_name) LIKE ? OR lower(given_name) LIKE ?) ORDER BY id",
                      (*roles, pattern, pattern))


def find_students(database: SQLEngine | Store, who: str) -> list[tuple[int, str]]:
    """Students whose sourced id or e-mail is `who`, or whose name contains it: [(id, full name)]."""
    return find_people(database, who)


def nudged_roles(registry: Registry) -> set[str]:
    """Every role some trigger is for (students always): whose schedule `companion schedule show` can explain."""
    return {Role.student.value, *(role for trigger in registry.triggers for role in trigger.roles)}


def outlook(database: SQLEngine | Store, registry: Registry, person_id: int, now: datetime, weeks: int = 2,
            start: date | None = None) -> Outlook:
    """A person's nudges in `weeks` weeks from the one holding `start` (default: this one), every trigger of theirs.

    The same planner as `plan_week` (`week_slots`) decides; a stored row wins once it left `planned`
    (and a stored row no planning gives, such as an on-demand one, is shown as stored). A trigger
    with no nudge in these weeks gets a line saying why (off, on demand, no calendar event).
    """
    store = _store(database)
    with store.transaction() as tx:
        (school_id, name, zone_name, role, status, paused_until, consented, checkin_time, linked) = tx.one(
            "SELECT p.school_id, p.given_name || ' ' || p.family_name, COALESCE(p.timezone, s.timezone), p.role, "
            f"{PERSON_STATUS}, p.paused_until, p.consent_at IS NOT NULL, lp.checkin_time, EXISTS (SELECT 1 FROM "
            "chatidentity i WHERE i.person_id = p.id AND i.unreachable = ?) FROM person p LEFT JOIN school s "
            "ON s.id = p.school_id LEFT JOIN learnerprofile lp ON lp.person_id = p.id WHERE p.id = ?", (False, person_id))
        if school_id is None:  # the roster placed them in no school: no school's rules, nothing planned
            found = Outlook(person_id, name, zone_of(zone_name, DEFAULT_TIMEZONE).key, parse_clock(checkin_time), role)
            found.nudges = [Expected(trigger.kind, None, "none", "in no school: the roster places them in none",
                                     trigger.when) for trigger in registry.triggers if role in trigger.roles]
            return found
        paused_until = tx.as_date(paused_until)
        rules = load_rules(tx, registry)[school_id]
        calendar = load_calendars(tx).get(school_id, SchoolCalendar())
        chosen = {kind: Choice(weekday, _clock_or_none(at)) for kind, weekday, at in tx.all(
            "SELECT kind, weekday, at FROM chosentime WHERE person_id = ?", (person_id,))}
        stored = {(row[0], tx.as_date(row[1])): (as_moment(row[2]), *row[3:]) for row in tx.all(
            "SELECT kind, occasion, due_at, status, reason FROM nudge WHERE person_id = ?", (person_id,))}
    zone, preferred = zone_of(zone_name, rules.timezone), parse_clock(checkin_time)
    found = Outlook(person_id, name, zone.key, preferred, role)
    first_week = dates.week_start(start or now.astimezone(zone).date())
    after_last = first_week + timedelta(weeks=weeks)
    whens = {trigger.kind: trigger.when for trigger in rules.triggers}
    shown: set[tuple[str, date | None]] = set()
    for week in range(weeks):
        week_start = first_week + timedelta(weeks=week)
        for slot in week_slots(rules, calendar, zone, preferred, week_start, role, chosen):
            pauses = Part.pauses in rules.parts_of(slot.kind)
            personal = personal_reason(status, paused_until if pauses else None, slot.day, bool(linked),
                                       bool(consented) or role != Role.student)
            shown.add((slot.kind, slot.occasion))
            found.nudges.append(_expected(slot, stored.get((slot.kind, slot.occasion)), zone, now, personal,
                                          whens[slot.kind]))
    for (kind, occasion), (due_at, state, reason) in stored.items():
        local = due_at.astimezone(zone)
        if (kind, occasion) not in shown and first_week <= local.date() < after_last:
            found.nudges.append(Expected(kind, local, state, reason, whens.get(kind, When.on_demand)))
    found.nudges.sort(key=lambda line: line.local)
    present = {line.kind for line in found.nudges}
    for trigger in rules.triggers:
        if role in trigger.roles and trigger.kind not in present:
            found.nudges.append(Expected(trigger.kind, None, "none", absent_reason(trigger, chosen), trigger.when))
    return found


def _expected(slot: Slot, row: tuple | None, zone: ZoneInfo, now: datetime, personal: str | None,
              when: str = When.weekly) -> Expected:
    """What will happen to one slot: the stored row wins once it left `planned`; otherwise policy says."""
    if row is not None and row[1] != NudgeStatus.planned:
        return Expected(slot.kind, row[0].astimezone(zone), row[1], row[2], when)
    local = slot.due_at.astimezone(zone)
    if slot.status == NudgeStatus.skipped:
        return Expected(slot.kind, local, slot.status, slot.reason, when)
    if personal:
        return Expected(slot.kind, local, NudgeStatus.skipped, "; ".join(filter(None, (personal, slot.reason))), when)
    status = "past" if slot.due_at <= now else NudgeStatus.planned
    return Expected(slot.kind, local, status, slot.reason, when)


def sweep_until_idle(database: SQLEngine | Store, conversation: "ConversationEngine", now: datetime,
                     worker_id: str, limit: int = 500) -> Iterator[SweepReport]:
    """Sweep until nothing is left to do at `now`, yielding each sweep's report."""
    while report := sweep(database, conversation, now, worker_id, limit):
        yield report


def total(reports: Iterable[SweepReport]) -> SweepReport:
    """The sum of several sweeps' reports."""
    summed = SweepReport()
    for report in reports:
        for name, value in vars(report).items():
            setattr(summed, name, getattr(summed, name) + value)
    return summed


def plan_coming_weeks(database: SQLEngine | Store, registry: Registry, now: datetime) -> int:
    """Plan this week and next (by UTC: next week covers the zones already in it); returns rows written."""
    this_week = dates.week_start(now.astimezone(timezone.utc).date())
    return sum(plan_week(database, registry, monday, now) for monday in (this_week, this_week + timedelta(weeks=1)))


def wake_sweeps(scheduler: "BaseScheduler", database: SQLEngine | Store, conversation: "ConversationEngine",
                worker_id: str, sweep_seconds: int = 60, plan_minutes: int = 60) -> None:
    """Have an APScheduler 3 scheduler (in-memory job store) wake the sweeps and the planning.

    The scheduler only says "look now": what is due lives in the database, so any number of
    processes may run these jobs, and a restart loses nothing.
    """
    scheduler.add_job(lambda: total(sweep_until_idle(database, conversation, conversation.clock(), worker_id)),
                      "interval", seconds=sweep_seconds, id="nudges.sweep", coalesce=True, max_instances=1,
                      replace_existing=True)
    scheduler.add_job(lambda: plan_coming_weeks(database, conversation.registry, conversation.clock()), "interval", minutes=plan_minutes,
                      id="nudges.plan", coalesce=True, max_instances=1, replace_existing=True,
                      next_run_time=conversation.clock())
