"""Nudges at the right moment (SPEC §4): what is due comes from the database, never from memory.

    plan_week ─► nudge rows (planned, or skipped with the reason) for every student, set-based
    sweep     ─► stale past the grace window? skipped · claim due rows · open the flow through
                 the conversation engine (or queue a plain nudge) · mark sent
              ─► follow-ups: answered since? done · else one follow-up · still silent? a flag

The policy is pure functions of a school's rules, its calendar, the student's time zone and
preferred time (`week_slots`, `place`, `followup_due`), so it can be tested with any clock.
Exactly once: a claimed nudge opens its flow with the event id `nudge:<id>`, which the engine
handles once; a worker that dies after claiming leaves rows that another worker takes over when
the claim lease runs out, and the event id makes that retry change nothing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from enum import StrEnum
from functools import cache
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Engine as SQLEngine, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from core.domain import dates
from core.domain.messages import Button, Inbound, Outbound
from core.domain.models import DEFAULT_LOCALE, DEFAULT_TIMEZONE, CalendarKind, PersonStatus, Role, utcnow
from core.domain.settings import Clock, Duration, Key, Number
from core.domain.store import Store, Tx, as_moment
from core.engine.registry import Registry, Trigger

if TYPE_CHECKING:
    from apscheduler.schedulers.base import BaseScheduler

    from core.engine.pipeline import Engine as ConversationEngine

LOG = logging.getLogger(__name__)
DEFAULT_CHECKIN_TIME = "15:30"
CLAIM_LEASE = timedelta(minutes=5)  # a claim older than this belongs to a worker that died
EVENING_MARGIN = timedelta(minutes=30)  # a nudge moved out of the night still leaves time to answer
WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class NudgeStatus(StrEnum):
    planned = "planned"
    claimed = "claimed"
    sent = "sent"
    skipped = "skipped"



NUDGE_PRIORITY = 1  # outbox order: replies to students (0) go out before nudges

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
    """One planned message to one student in one week; its status is the source of truth."""

    __table_args__ = (
        UniqueConstraint("person_id", "kind", "week_start"),
        Index("ix_nudge_status_due_at", "status", "due_at"),
        # Only sent nudges still waiting for an answer have one: a partial index stays small.
        Index("ix_nudge_followup_due_at", "followup_due_at", sqlite_where=text("followup_due_at IS NOT NULL"),
              postgresql_where=text("followup_due_at IS NOT NULL")),
    )
    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id")
    kind: str
    week_start: date
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
    """A school's schedule: its triggers in priority order, the weekday of each, and the policy settings."""

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

    @classmethod
    def of(cls, triggers: Iterable[Trigger], values: Mapping[str, Any], timezone: str) -> "Rules":
        """A school's rules from its settings (`values`: every key, defaults included)."""
        triggers = tuple(triggers)
        return cls(triggers, {t.kind: values[t.day] for t in triggers}, timezone, values["quiet_hours.start"],
                   values["quiet_hours.end"], values["class_time.start"], values["class_time.end"],
                   values["nudges.weekly_cap"], values["nudges.followup_after"], values["nudges.grace"])

    def day_of(self, kind: str) -> int | None:
        """The weekday (0 = Monday) the school sends `kind` on, or None when it does not."""
        return self.days.get(kind)


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


@dataclass(frozen=True)
class Slot:
    """When one nudge goes in one week, or why it does not."""

    kind: str
    day: date  # the student's local day
    local_time: time
    due_at: datetime  # UTC
    status: str
    reason: str | None = None


@cache  # a sweep reads the same few values thousands of times
def parse_clock(value: str | time | None, default: str = DEFAULT_CHECKIN_TIME) -> time:
    """A "HH:MM" column as a time; an empty or malformed value falls back to `default`."""
    if isinstance(value, time):
        return value
    try:
        return time.fromisoformat(value or default)
    except ValueError:
        return time.fromisoformat(default)


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


def week_slots(rules: Rules, calendar: SchoolCalendar, zone: ZoneInfo, preferred: time, week_start: date) -> list[Slot]:
    """Every nudge of one week for a student in `zone` who prefers `preferred`, with its reasons."""
    slots = []
    for trigger in rules.triggers:
        kind, offset = trigger.kind, rules.day_of(trigger.kind)
        if offset is None:
            continue
        day, day_reason = _school_day(calendar, week_start, offset, trigger.holiday_shift)
        if day is None:
            fallback = week_start + timedelta(days=offset)
            slots.append(Slot(kind, fallback, preferred, to_utc(zone, fallback, preferred)[0],
                              NudgeStatus.skipped, day_reason))
            continue
        exam = calendar.first(CalendarKind.exam_week, day)
        moment, time_reason = place(rules, day, preferred)
        due_at, dst_reason = to_utc(zone, day, moment)
        if trigger.quiet_in_exams and exam:
            slots.append(Slot(kind, day, moment, due_at, NudgeStatus.skipped, f"exam week ({exam.title})"))
            continue
        reason = "; ".join(part for part in (day_reason, time_reason, dst_reason) if part) or None
        slots.append(Slot(kind, day, moment, due_at, NudgeStatus.planned, reason))
    return _apply_cap(rules.weekly_cap, slots)


def _apply_cap(cap: int, slots: list[Slot]) -> list[Slot]:
    """Skip the planned nudges beyond the weekly cap, lowest priority first (slots come in priority order)."""
    kept, capped = 0, []
    for slot in slots:
        if slot.status == NudgeStatus.planned:
            kept += 1
            if kept > cap:
                slot = Slot(slot.kind, slot.day, slot.local_time, slot.due_at, NudgeStatus.skipped,
                            f"weekly cap of {cap} nudges")
        capped.append(slot)
    return sorted(capped, key=lambda slot: slot.due_at)


def personal_reason(status: str | None, paused_until: date | None, day: date,
                    linked: bool = True, consented: bool = True) -> str | None:
    """Why this student gets no nudge on their local `day`, or None.

    `plan_week` applies the first two conditions in SQL (PLAN_PERSONAL_*): keep the two in step.
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
                       earliest: datetime) -> datetime:
    """The first school day's nudge time for this student (out of class and quiet hours) at or after `earliest`."""
    day = earliest.astimezone(zone).date()
    for _ in range(21):  # three weeks covers any school break short of summer
        if day.weekday() < 5 and calendar.day_off(day) is None:
            due_at = to_utc(zone, day, place(rules, day, preferred)[0])[0]
            if due_at >= earliest:
                return due_at
        day += timedelta(days=1)
    return earliest


def followup_due(rules: Rules, calendar: SchoolCalendar, zone: ZoneInfo, preferred: time,
                 sent_at: datetime) -> datetime:
    """When to follow up: the first school day at the student's time, `followup` after the nudge."""
    return next_school_moment(rules, calendar, zone, preferred, sent_at + rules.followup)


# -- reading rules and calendars -------------------------------------------------------------------

def load_rules(tx: Tx, registry: Registry) -> dict[int, Rules]:
    """Every school's schedule rules, from its settings, by school id."""
    values = registry.settings.load(tx)
    return {school_id: Rules.of(registry.triggers, values[school_id], zone)
            for school_id, zone in tx.all("SELECT id, timezone FROM school")}


def load_calendars(tx: Tx) -> dict[int, SchoolCalendar]:
    """Every school's calendar, by school id (a school without events has an empty one)."""
    marks: dict[int, list[DayMark]] = {}
    for school_id, kind, title, starts_on, ends_on in tx.all(
            "SELECT school_id, kind, title, starts_on, ends_on FROM calendarevent ORDER BY starts_on, id"):
        marks.setdefault(school_id, []).append(DayMark(kind, title, tx.as_date(starts_on), tx.as_date(ends_on)))
    return {school_id: SchoolCalendar(tuple(found)) for school_id, found in marks.items()}


def _store(database: SQLEngine | Store) -> Store:
    """Functions here take an SQLAlchemy engine or an existing Store."""
    return database if isinstance(database, Store) else Store(database)



# -- planning a week -------------------------------------------------------------------------------

# Every student with the keys plan_week groups them by: school, time zone and preferred time.
STUDENTS = ("SELECT p.id, p.school_id, p.status, p.paused_until, COALESCE(p.timezone, s.timezone) AS zone, "
            "COALESCE(lp.checkin_time, ?) AS preferred FROM person p JOIN school s ON s.id = p.school_id "
            "LEFT JOIN learnerprofile lp ON lp.person_id = p.id WHERE p.role = 'student'")
STUDENT_KEYS = f"SELECT DISTINCT school_id, zone, preferred FROM ({STUDENTS}) keys"
PLAN_PERSONAL_STATUS = ("CASE WHEN st.status <> 'active' THEN 'skipped' "
                        "WHEN st.paused_until > t.local_day THEN 'skipped' ELSE t.status END")
PLAN_PERSONAL_REASON = ("CASE WHEN st.status <> 'active' THEN st.status "
                        "WHEN st.paused_until > t.local_day THEN 'paused until ' || st.paused_until ELSE t.reason END")
PLAN_INSERT = f"""
INSERT INTO nudge (person_id, kind, week_start, due_at, expires_at, status, reason, created_at)
SELECT st.id, t.kind, ?, t.due_at, t.expires_at, {PLAN_PERSONAL_STATUS}, {PLAN_PERSONAL_REASON}, ?
FROM ({STUDENTS}) st
JOIN plan_slot t ON t.school_id = st.school_id AND t.zone = st.zone AND t.preferred = st.preferred
WHERE TRUE -- without a WHERE, SQLite would read ON CONFLICT as part of the join
ORDER BY t.due_at
ON CONFLICT (person_id, kind, week_start) DO UPDATE
SET due_at = excluded.due_at, expires_at = excluded.expires_at, status = excluded.status, reason = excluded.reason
WHERE nudge.status IN ('planned', 'skipped') AND nudge.claimed_at IS NULL
  AND (nudge.due_at <> excluded.due_at OR nudge.status <> excluded.status)"""


def plan_week(database: SQLEngine | Store, registry: Registry, week_start: date, now: datetime) -> int:
    """Plan (or re-plan) every student's nudges for the week starting on Monday `week_start`.

    Students who share a school, time zone and preferred time share a schedule: it is computed
    once per group in Python, and one INSERT … SELECT writes the rows for all of them, in the
    order they fall due, so each sweep's claims touch neighbouring pages. Rows already claimed
    or sent, and rows whose time and status did not change, are left alone. Returns the number
    of rows written.
    """
    store = _store(database)
    with store.transaction() as tx:
        tx.begin()
        rules, calendars = load_rules(tx, registry), load_calendars(tx)
        moment, dropped = ("TIMESTAMPTZ", " ON COMMIT DROP") if tx.postgres else ("TEXT", "")
        tx.execute(f"CREATE TEMPORARY TABLE plan_slot (school_id INTEGER, zone TEXT, preferred TEXT, kind TEXT, "
                   f"local_day DATE, due_at {moment}, expires_at {moment}, status TEXT, reason TEXT){dropped}")
        tx.execute("CREATE INDEX plan_slot_key ON plan_slot (school_id, zone, preferred)")
        rows = []
        for school_id, zone_name, preferred in tx.all(STUDENT_KEYS, (DEFAULT_CHECKIN_TIME,)):
            school = rules[school_id]
            grace = school.grace
            for slot in week_slots(school, calendars.get(school_id, SchoolCalendar()),
                                   zone_of(zone_name, school.timezone), parse_clock(preferred), week_start):
                rows.append((school_id, zone_name, preferred, slot.kind, tx.day(slot.day), tx.ts(slot.due_at),
                             tx.ts(slot.due_at + grace), slot.status, slot.reason))
        tx.cursor.executemany(store.sql("INSERT INTO plan_slot VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"), rows)
        if tx.postgres:
            tx.execute("ANALYZE plan_slot")  # a temporary table has no statistics: the join would be a guess
        written = tx.execute(PLAN_INSERT, (tx.day(week_start), tx.ts(now), DEFAULT_CHECKIN_TIME)).rowcount
        if not tx.postgres:
            tx.execute("DROP TABLE plan_slot")
    return written


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
    """A claimed nudge with what sending it needs: the student, their chat account, the school."""

    id: int
    person_id: int
    kind: str
    school_id: int
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
DUE_QUERY = f"""
SELECT n.id, n.person_id, n.kind, p.school_id, p.status, p.paused_until, p.consent_at IS NOT NULL,
       p.timezone, s.timezone, lp.checkin_time, COALESCE(p.locale, s.locale), p.given_name,
       i.platform, i.external_id, i.chat_id
FROM nudge n JOIN person p ON p.id = n.person_id JOIN school s ON s.id = p.school_id
LEFT JOIN learnerprofile lp ON lp.person_id = p.id
LEFT JOIN chatidentity i ON {REACHABLE_IDENTITY}
WHERE n.id IN ({{ids}})"""


def _due_from_row(tx: Tx, row: tuple) -> Due:
    """A DUE_QUERY row as a Due."""
    (nudge_id, person_id, kind, school_id, status, paused_until, consented, zone, school_zone,
     checkin_time, locale, given_name, platform, external_id, chat_id) = row
    return Due(nudge_id, person_id, kind, school_id, status, tx.as_date(paused_until),
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
    for due in load_due(store, claim(store, now, worker_id, limit)):
        report.claimed += 1
        try:
            went = send(store, conversation, due, rules[due.school_id],
                        calendars.get(due.school_id, SchoolCalendar()), now, worker_id)
        except Exception:  # one student's failure must not hold up the others
            LOG.exception("nudge %s failed; it is tried again when its claim lapses", due.id)
            report.failed += 1
            continue
        report.sent += went
        report.skipped += not went
    follow_up(store, now, limit, rules, calendars, conversation.registry.menu(Role.student), report)
    return report


def skip_stale(store: Store, now: datetime, worker_id: str) -> int:
    """Nudges missed for longer than the grace window (the server was down) are skipped, never sent late in a burst."""
    with store.transaction() as tx:
        return tx.execute(
            "UPDATE nudge SET status = 'skipped', reason = 'stale: missed its grace window', claimed_by = ?, "
            "claimed_at = ? WHERE status IN ('planned', 'claimed') AND due_at <= ? AND expires_at <= ? "
            "AND (status = 'planned' OR claimed_at <= ?)",  # due_at bounds the walk along (status, due_at)
            (worker_id, tx.ts(now), tx.ts(now), tx.ts(now), tx.ts(now - CLAIM_LEASE))).rowcount


CLAIM = ("UPDATE nudge SET status = 'claimed', claimed_by = ?, claimed_at = ? WHERE id IN ("
         "SELECT id FROM nudge WHERE status = ? AND due_at <= ? AND expires_at > ? {abandoned}"
         "ORDER BY due_at LIMIT {limit}{lock}) RETURNING id")


def claim(store: Store, now: datetime, worker_id: str, limit: int) -> list[int]:
    """Claim up to `limit` due nudges for `worker_id`, oldest first: first any whose worker died, then planned ones.

    Two statements rather than one with OR: each walks the (status, due_at) index in order and stops at `limit`.
    """
    lock = " FOR UPDATE SKIP LOCKED" if store.postgres else ""
    with store.transaction() as tx:
        claimed = [row[0] for row in tx.all(
            CLAIM.format(abandoned="AND claimed_at <= ? ", limit=int(limit), lock=lock),
            (worker_id, tx.ts(now), NudgeStatus.claimed, tx.ts(now), tx.ts(now), tx.ts(now - CLAIM_LEASE)))]
        if len(claimed) < limit:
            claimed += [row[0] for row in tx.all(
                CLAIM.format(abandoned="", limit=int(limit - len(claimed)), lock=lock),
                (worker_id, tx.ts(now), NudgeStatus.planned, tx.ts(now), tx.ts(now)))]
    return claimed


def load_due(store: Store, claimed: list[int]) -> list[Due]:
    """The claimed nudges with what sending them needs, in id order."""
    if not claimed:
        return []
    with store.transaction() as tx:
        rows = tx.all(DUE_QUERY.format(ids=", ".join("?" * len(claimed))), (False, *claimed))
    return sorted((_due_from_row(tx, row) for row in rows), key=lambda due: due.id)


def send(store: Store, conversation: "ConversationEngine", due: Due, rules: Rules, calendar: SchoolCalendar,
         now: datetime, worker_id: str) -> bool:
    """Send one claimed nudge, or skip it when the student cannot be nudged now; True when it went."""
    local = now.astimezone(due.zone)
    reason = (personal_reason(due.person_status, due.paused_until, local.date(), due.platform is not None,
                              due.consented)
              or _arrives_off_hours(rules, local))
    if reason:
        with store.transaction() as tx:
            tx.execute("UPDATE nudge SET status = 'skipped', reason = ? WHERE id = ? AND claimed_by = ? "
                       "AND status = 'claimed'", (reason, due.id, worker_id))
        return False
    flow = next((trigger.flow for trigger in rules.triggers if trigger.kind == due.kind), None)
    if flow:
        # Its own transaction in the engine; the event id makes a retry after a crash change nothing.
        conversation.handle(Inbound(due.platform, f"nudge:{due.id}", due.external_id, due.chat_id, opens=flow),
                            priority=NUDGE_PRIORITY)
    # Stamped after the flow opened, so only the student's own answer moves the conversation past it.
    sent_at = conversation.clock()
    with store.transaction() as tx:
        marked = tx.execute(
            "UPDATE nudge SET status = 'sent', sent_at = ?, followup_due_at = ? WHERE id = ? AND claimed_by = ? "
            "AND status = 'claimed'",
            (tx.ts(sent_at), tx.ts(followup_due(rules, calendar, due.zone, due.preferred, sent_at)), due.id,
             worker_id)).rowcount
        if marked and not flow:
            tx.enqueue(due.person_id, due.platform, due.chat_id, due.locale,
                       Outbound(f"{due.kind}/nudge", {"name": due.given_name}, conversation.registry.menu(Role.student)),
                       now, priority=NUDGE_PRIORITY)
    return bool(marked)


def _arrives_off_hours(rules: Rules, local: datetime) -> str | None:
    """A nudge sent late (after downtime) must still not arrive at night or in class."""
    off = off_hours(rules, local.date(), local.time())
    return f"late: it would arrive at {local:%H:%M}, in {off}" if off else None


# -- follow-ups and flags --------------------------------------------------------------------------

FOLLOWUP_QUERY = f"""
SELECT n.id, n.person_id, n.kind, n.week_start, n.sent_at, n.followed_up_at, c.updated_at, p.school_id, p.status,
       p.paused_until, p.timezone, s.timezone, lp.checkin_time, COALESCE(p.locale, s.locale),
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
    week_start: date
    sent_at: datetime
    followed_up_at: datetime | None
    last_activity: datetime | None
    school_id: int
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
              buttons: tuple[Button, ...], report: SweepReport) -> None:
    """One follow-up for a student who has not answered, then a flag for the adviser; answered ones are left alone.

    A batch is locked, decided, queued and updated in one transaction: exactly once, with any number of workers.
    """
    lock = " FOR UPDATE OF n SKIP LOCKED" if store.postgres else ""
    with store.transaction() as tx:
        tx.begin()
        rows = tx.all(FOLLOWUP_QUERY.format(limit=int(limit)) + lock, (False, tx.ts(now)))
        for silence in (_silence_from_row(tx, row) for row in rows):
            _settle(tx, silence, now, rules[silence.school_id], calendars.get(silence.school_id, SchoolCalendar()),
                    buttons, report)


def _silence_from_row(tx: Tx, row: tuple) -> Silence:
    """A FOLLOWUP_QUERY row as a Silence."""
    (nudge_id, person_id, kind, week_start, sent_at, followed_up_at, last_activity, school_id, status, paused_until,
     zone, school_zone, checkin_time, locale, given_name, platform, chat_id) = row
    return Silence(nudge_id, person_id, kind, tx.as_date(week_start), as_moment(sent_at), as_moment(followed_up_at),
                   as_moment(last_activity), school_id, status, tx.as_date(paused_until), zone_of(zone, school_zone),
                   parse_clock(checkin_time), locale or DEFAULT_LOCALE, given_name, platform, chat_id)


def _settle(tx: Tx, silence: Silence, now: datetime, rules: Rules, calendar: SchoolCalendar,
            buttons: tuple[Button, ...], report: SweepReport) -> None:
    """Decide one silent nudge: answered, followed up once (never at night or in class), or flagged."""
    if silence.answered:
        report.answered += 1
        _close(tx, silence.nudge_id)
        return
    local = now.astimezone(silence.zone)
    if personal_reason(silence.person_status, silence.paused_until, local.date(), silence.platform is not None):
        _close(tx, silence.nudge_id)  # a paused or stopped student is not a non-responder
        return
    if silence.followed_up_at is None and _nudges_this_week(tx, silence) < rules.weekly_cap:
        if off_hours(rules, local.date(), local.time()):  # the sweep ran late: wait for the student's next good moment
            later = next_school_moment(rules, calendar, silence.zone, silence.preferred, now)
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


def _nudges_this_week(tx: Tx, silence: Silence) -> int:
    """Messages the bot started this week: sent nudges and follow-ups, counted against the cap."""
    sent, followups = tx.one("SELECT COUNT(*), COUNT(followed_up_at) FROM nudge WHERE person_id = ? "
                             "AND week_start = ? AND status = 'sent'", (silence.person_id, tx.day(silence.week_start)))
    return sent + followups


# -- what a student can expect ---------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """One line of `companion schedule show`: a nudge, when, and what happens to it."""

    kind: str
    local: datetime  # in the student's zone
    status: str
    reason: str | None = None


@dataclass
class Outlook:
    """A student's coming nudges: who, in which zone, and each nudge with its reason."""

    person_id: int
    name: str
    zone: str
    preferred: time
    nudges: list[Expected] = field(default_factory=list)


def find_students(database: SQLEngine | Store, who: str) -> list[tuple[int, str]]:
    """Students whose sourced id or e-mail is `who`, or whose name contains it: [(id, full name)]."""
    store = _store(database)
    with store.transaction() as tx:
        exact = tx.all("SELECT id, given_name || ' ' || family_name FROM person WHERE role = 'student' "
                       "AND (sourced_id = ? OR lower(email) = lower(?)) ORDER BY id", (who, who))
        if exact:
            return exact
        pattern = f"%{who.lower()}%"
        return tx.all("SELECT id, given_name || ' ' || family_name FROM person WHERE role = 'student' AND "
                      "(lower(given_name || ' ' || family_name) LIKE ? OR lower(given_name) LIKE ?) ORDER BY id",
                      (pattern, pattern))


def outlook(database: SQLEngine | Store, registry: Registry, person_id: int, now: datetime, weeks: int = 2) -> Outlook:
    """This week's and the coming weeks' nudges for one student: planned rows as stored, the rest computed."""
    store = _store(database)
    with store.transaction() as tx:
        (school_id, name, zone_name, status, paused_until, consented, checkin_time, linked) = tx.one(
            "SELECT p.school_id, p.given_name || ' ' || p.family_name, COALESCE(p.timezone, s.timezone), p.status, "
            "p.paused_until, p.consent_at IS NOT NULL, lp.checkin_time, EXISTS (SELECT 1 FROM chatidentity i "
            "WHERE i.person_id = p.id AND i.unreachable = ?) FROM person p JOIN school s ON s.id = p.school_id "
            "LEFT JOIN learnerprofile lp ON lp.person_id = p.id WHERE p.id = ?", (False, person_id))
        paused_until = tx.as_date(paused_until)
        rules = load_rules(tx, registry)[school_id]
        calendar = load_calendars(tx).get(school_id, SchoolCalendar())
        stored = {(row[0], tx.as_date(row[1])): row[2:] for row in tx.all(
            "SELECT kind, week_start, due_at, status, reason FROM nudge WHERE person_id = ?", (person_id,))}
    zone, preferred = zone_of(zone_name, rules.timezone), parse_clock(checkin_time)
    found = Outlook(person_id, name, zone.key, preferred)
    first_week = now.astimezone(zone).date() - timedelta(days=now.astimezone(zone).weekday())
    for week in range(weeks):
        week_start = first_week + timedelta(weeks=week)
        for slot in week_slots(rules, calendar, zone, preferred, week_start):
            found.nudges.append(_expected(slot, stored.get((slot.kind, week_start)), zone, now,
                                          personal_reason(status, paused_until, slot.day, bool(linked),
                                                          bool(consented))))
    return found


def _expected(slot: Slot, row: tuple | None, zone: ZoneInfo, now: datetime, personal: str | None) -> Expected:
    """What will happen to one slot: the stored row wins once it left `planned`; otherwise policy says."""
    if row is not None and row[1] != NudgeStatus.planned:
        return Expected(slot.kind, as_moment(row[0]).astimezone(zone), row[1], row[2])
    local = slot.due_at.astimezone(zone)
    if slot.status == NudgeStatus.skipped:
        return Expected(slot.kind, local, slot.status, slot.reason)
    if personal:
        return Expected(slot.kind, local, NudgeStatus.skipped, "; ".join(filter(None, (personal, slot.reason))))
    status = "past" if slot.due_at <= now else NudgeStatus.planned
    return Expected(slot.kind, local, status, slot.reason)


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
