"""General triggers (issue 8): a nudge is (person, trigger, due time).

A trigger falls due weekly, after a calendar event, at each person's chosen time, or on demand;
it opens its flow through the engine; and it declares which parts of the policy bind it. Here:
one test per kind of trigger, one per policy part with a trigger that leaves the part out and is
shown not to be bound by it, `companion schedule show --from` for every kind, and the migration
that re-keys the nudge table. The toy features are declared here, never installed.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import click
import pytest
from alembic import command
from click.testing import CliRunner
from sqlalchemy import text

from bot.schedule_cli import register
from core.domain import db
from core.domain.messages import Inbound
from core.domain.settings import Clock, Key, Values, Weekday
from core.domain.store import Store, as_moment
from core.engine.flow import Flow, Step, Text
from core.engine.pipeline import Engine
from core.engine.registry import ADULTS, ALL_PARTS, Feature, Part, Registry, Trigger, When
from core.features import REGISTRY
from core.schedule import policy as schedule
from core.schedule.policy import Choice, DayMark, Rules, SchoolCalendar, plan_week

UTC = timezone.utc
NEW_YORK = ZoneInfo("America/New_York")
MONDAY = date(2026, 11, 23)  # the conftest `now` (Monday 14:00 UTC, 09:00 in New York) falls in this week
WEDNESDAY = MONDAY + timedelta(days=2)


# The features the toy triggers join: the weekly goals and review the policy's examples speak of. The later
# features' own nudges (the report card, the project check-in, the advisers' digest) have tests of their own.
LATER = {"reflection", "genius", "adviser"}
BASE = Registry(tuple(feature for feature in REGISTRY.features if feature.name not in LATER), REGISTRY.settings_keys)


def toys(*triggers: Trigger, keys: tuple[Key, ...] = ()) -> Registry:
    """The installed features (but the later ones) plus a toy one with these triggers, a one-step flow for each that names one,
    and a Wednesday (weekday) or 16:00 (time) setting for each setting key a trigger names and `keys` does not."""
    flows = tuple(Flow(t.flow, steps=(Step("ask", ask=f"toys/{t.flow}", expect=Text()),)) for t in triggers if t.flow)
    given = {*(key.name for key in keys), *REGISTRY.settings.keys}
    days = tuple(Key(t.day, Weekday(), 2, "a toy day") for t in triggers if t.day and t.day not in given)
    times = tuple(Key(t.at, Clock(), time(16), "a toy time") for t in triggers if t.at and t.at not in given)
    return BASE.extended(Feature("toys", flows=flows, triggers=triggers, settings=(*keys, *days, *times),
                                     prompts=None))


def rules_of(registry: Registry, school_zone: str = "America/New_York", **settings) -> Rules:
    """A school's rules under `registry`: these settings (by key), the defaults for the rest."""
    return Rules.of(registry.triggers, Values(registry.settings.keys, settings), school_zone)


def slots(rules: Rules, zone: str = "America/New_York", preferred: time = time(15, 30), week: date = MONDAY,
          calendar: SchoolCalendar = SchoolCalendar(), role: str = "student",
          chosen: dict | None = None) -> dict[str, schedule.Slot]:
    """One week's slots by kind."""
    return {slot.kind: slot for slot in schedule.week_slots(rules, calendar, ZoneInfo(zone), preferred, week, role,
                                                            chosen)}


def add_people(engine, now: datetime, zones: list[str | None], role: str = "student", preferred: str | None = None,
               paused_until: date | None = None) -> list[int]:
    """Linked people of `role` (students have agreed to the bot; adults come from the roster, without), with a
    conversation row and, when given, a preferred time."""
    store = Store(engine)
    with store.transaction() as tx:
        if tx.one("SELECT id FROM school WHERE id = 1") is None:
            tx.execute("INSERT INTO school (id, sourced_id, name, timezone, locale) "
                       "VALUES (1, 's1', 'School', 'America/New_York', 'en')")
        first = tx.one("SELECT COALESCE(MAX(id), 0) FROM person")[0] + 1
        ids = list(range(first, first + len(zones)))
        consent = tx.ts(now) if role == "student" else None
        for pid, zone in zip(ids, zones):
            tx.execute("INSERT INTO person (id, sourced_id, school_id, role, given_name, family_name, email, "
                       "timezone, status, paused_until, consent_at, created_at) "
                       "VALUES (?, ?, 1, ?, ?, 'Test', ?, ?, 'active', ?, ?, ?)", (pid, f"p-{pid}", role, f"{role.title()}{pid}", f"p{pid}@school.test", zone,
                                 tx.day(paused_until), consent, tx.ts(now)))
            tx.execute("INSERT INTO chatidentity (platform, external_id, chat_id, person_id, failed_attempts, "
                       "unreachable, created_at) VALUES ('console', ?, ?, ?, 0, ?, ?)",
                       (f"u{pid}", f"u{pid}", pid, False, tx.ts(now)))
            tx.execute("INSERT INTO conversation (person_id, answers, version, updated_at) VALUES (?, '{}', 0, ?)",
                       (pid, tx.ts(now - timedelta(days=7))))
            if preferred:
                tx.execute("INSERT INTO learnerprofile (person_id, checkin_time, updated_at) VALUES (?, ?, ?)",
                           (pid, preferred, tx.ts(now)))
    if engine.dialect.name == "postgresql":  # explicit ids leave the sequence behind
        with engine.begin() as connection:
            connection.execute(text("SELECT setval(pg_get_serial_sequence('person', 'id'), "
                                    "(SELECT MAX(id) FROM person))"))
    return ids


def rows(engine, person_id: int) -> dict[str, dict]:
    """A person's nudges by kind (the latest of each), as dicts."""
    with engine.connect() as connection:
        found = connection.execute(text("SELECT * FROM nudge WHERE person_id = :p ORDER BY id"),
                                   {"p": person_id}).mappings().all()
    return {row["kind"]: dict(row) for row in found}


def outbox(engine) -> dict[int, list[str]]:
    """The templates queued for each person, in order."""
    with engine.connect() as connection:
        found = connection.execute(text("SELECT person_id, template FROM outbox ORDER BY id")).all()
    templates: dict[int, list[str]] = {}
    for person_id, template in found:
        templates.setdefault(person_id, []).append(template)
    return templates


def sweep(engine, registry: Registry, at: datetime) -> schedule.SweepReport:
    """Sweep at `at` until nothing is left, with an engine whose clock says `at`."""
    conversation = Engine(Store(engine), registry, clock=lambda: at)
    return schedule.total(schedule.sweep_until_idle(engine, conversation, at, "w1", 100))


def add_event(engine, kind: str, title: str, starts_on: date, ends_on: date, now: datetime) -> None:
    """A calendar event of school 1."""
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO calendarevent (school_id, uid, kind, title, starts_on, ends_on, "
                                "updated_at) VALUES (1, :uid, :kind, :title, :s, :e, :n)"),
                           {"uid": f"{title}@test", "kind": kind, "title": title, "s": starts_on, "e": ends_on,
                            "n": now})


def set_setting(engine, registry: Registry, key: str, value: str, now: datetime) -> None:
    with Store(engine).transaction() as tx:
        registry.settings.set(tx, 1, key, value, now)


# -- declaring a trigger ---------------------------------------------------------------------------


def test_a_trigger_declares_how_it_falls_due_for_whom_and_which_policy_parts_bind_it():
    book = Trigger("book", day="book.day", priority=5, flow="book")  # the README's weekly trigger, as before
    assert (book.when, book.roles, book.parts) == (When.weekly, frozenset({"student"}), ALL_PARTS)
    digest = Trigger("digest", when="chosen", day="digest.day", at="digest.time", roles=ADULTS,
                     parts=ALL_PARTS - {"followup"})
    assert digest.when == When.chosen and not digest.takes(Part.followup) and digest.takes(Part.cap)
    with pytest.raises(ValueError, match="a weekly trigger needs 'day'"):
        Trigger("nothing")
    with pytest.raises(ValueError, match="a calendar trigger needs 'after'"):
        Trigger("report", when=When.calendar)
    with pytest.raises(ValueError, match="no calendar event kind 'semester'"):
        Trigger("report", when=When.calendar, after="semester")
    with pytest.raises(ValueError, match="an on-demand trigger takes no 'day'"):
        Trigger("now", when=When.on_demand, day="goals.day")
    with pytest.raises(ValueError, match="'weather' is not a valid Part"):
        Trigger("now", when=When.on_demand, parts={"weather"})
    with pytest.raises(ValueError, match="roles must be some of"):
        Trigger("now", when=When.on_demand, roles=frozenset({"parent"}))
    with pytest.raises(ValueError, match="setting goals.day is not a clock"):
        toys(Trigger("digest", when=When.chosen, day="digest.day", at="goals.day"))


# -- one test per kind of trigger ------------------------------------------------------------------


def test_weekly_the_schools_day_at_the_persons_time_opening_its_flow(engine, now):
    registry = toys(Trigger("book", day="book.day", priority=5, flow="book"))
    (student,) = add_people(engine, now, [None])
    assert plan_week(engine, registry, MONDAY, now) == 3  # goals, book (Wednesday), review
    book = rows(engine, student)["book"]
    assert as_moment(book["due_at"]) == datetime(2026, 11, 25, 20, 30, tzinfo=UTC)  # Wednesday 15:30 in New York
    assert str(book["occasion"]) == "2026-11-23"  # a weekly trigger's occasion: its week
    sweep(engine, registry, datetime(2026, 11, 23, 20, 30, tzinfo=UTC))
    Engine(Store(engine), registry, clock=lambda: now + timedelta(days=1)).handle(  # idle again by Wednesday
        Inbound("console", "cancel-1", f"u{student}", f"u{student}", text="/cancel"))
    sweep(engine, registry, datetime(2026, 11, 25, 20, 30, tzinfo=UTC))
    sent = outbox(engine)[student]
    assert sent[0] == "goals/ask_goal" and sent[-1] == "toys/book"  # the flow, opened through the engine


def test_calendar_event_the_first_school_day_after_it_ends_at_the_persons_time(engine, now):
    registry = toys(Trigger("reflection", when=When.calendar, after="grading_period", priority=3, flow="reflection"))
    (student,) = add_people(engine, now, [None])
    set_setting(engine, registry, "goals.day", "tuesday", now)
    add_event(engine, "grading_period", "Quarter 1", date(2026, 10, 26), date(2026, 11, 20), now)  # ends on a Friday
    plan_week(engine, registry, MONDAY - timedelta(weeks=1), now)
    assert "reflection" not in rows(engine, student)  # the week it ends in has none: the next school day is Monday
    plan_week(engine, registry, MONDAY, now)
    reflection = rows(engine, student)["reflection"]
    assert as_moment(reflection["due_at"]) == datetime(2026, 11, 23, 20, 30, tzinfo=UTC)
    assert str(reflection["occasion"]) == "2026-11-20" and reflection["reason"] == "after Quarter 1 (ended Fri 20 Nov)"
    add_event(engine, "holiday", "Staff day", MONDAY, MONDAY, now)  # the calendar changes: the same row moves
    assert plan_week(engine, registry, MONDAY, now) == 1  # the reflection moves to Tuesday, in its own row
    moved = rows(engine, student)["reflection"]
    assert moved["id"] == reflection["id"] and as_moment(moved["due_at"]) == datetime(2026, 11, 24, 20, 30, tzinfo=UTC)
    assert "holiday (Staff day)" in moved["reason"]
    report = sweep(engine, registry, datetime(2026, 11, 24, 20, 30, tzinfo=UTC))  # with Tuesday's goal prompt
    assert report.sent == 2 and outbox(engine)[student] == ["toys/reflection"]  # the flow opened by the engine …
    with engine.connect() as connection:
        assert "goals" in connection.execute(text("SELECT stack FROM conversation")).scalar()  # … the other queued


def test_chosen_time_each_persons_own_day_and_time_else_the_schools(engine, now):
    registry = toys(Trigger("digest", when=When.chosen, day="digest.day", at="digest.time", roles=ADULTS, flow="digest",
                            parts=ALL_PARTS - {Part.followup}),
                    keys=(Key("digest.day", Weekday(), 0, "the advisers' digest day"),
                          Key("digest.time", Clock(), time(16), "the advisers' digest time")))
    pure = rules_of(registry)
    assert slots(pure, role="adviser")["digest"].due_at == datetime(2026, 11, 23, 21, 0, tzinfo=UTC)  # the school's
    assert slots(pure, role="adviser", chosen={"digest": Choice(4, None)})["digest"].day == MONDAY + timedelta(days=4)
    assert "digest" not in slots(pure, role="adviser", chosen={"digest": Choice(None)})  # turned off
    assert "digest" not in slots(pure) and "goals" not in slots(pure, role="adviser")  # each role its own triggers
    default, own, off = add_people(engine, now, [None, "America/Chicago", None], role="adviser")
    (student,) = add_people(engine, now, [None])
    schedule.choose_time(engine, own, "digest", 2, time(17, 15), now)
    schedule.choose_time(engine, off, "digest", None, None, now)
    plan_week(engine, registry, MONDAY, now)
    assert as_moment(rows(engine, default)["digest"]["due_at"]) == datetime(2026, 11, 23, 21, 0, tzinfo=UTC)
    assert as_moment(rows(engine, own)["digest"]["due_at"]) == datetime(2026, 11, 25, 23, 15, tzinfo=UTC)  # Chicago
    assert rows(engine, off) == {}
    assert set(rows(engine, student)) == {"goals", "review"} and set(rows(engine, default)) == {"digest"}
    sweep(engine, registry, datetime(2026, 11, 23, 21, 0, tzinfo=UTC))
    assert outbox(engine)[default] == ["toys/digest"]  # an adult's flow opens through the engine too
    assert outbox(engine)[student] == ["goals/ask_goal"] and own not in outbox(engine)
    assert rows(engine, default)["digest"]["followup_due_at"] is None


def test_on_demand_queued_now_for_the_people_asked_for_and_swept_like_any_nudge(engine, now):
    registry = toys(Trigger("announce", when=When.on_demand, priority=4, flow="announce"))
    asked, paused = add_people(engine, now, [None, None])
    with engine.begin() as connection:
        connection.execute(text("UPDATE person SET paused_until = :d WHERE id = :p"), {"d": WEDNESDAY, "p": paused})
    assert schedule.on_demand(engine, registry, "announce", [asked, paused], now) == 2
    announce = rows(engine, asked)["announce"]  # 09:00 in New York is class time: the student's 15:30
    assert as_moment(announce["due_at"]) == datetime(2026, 11, 23, 20, 30, tzinfo=UTC)
    assert announce["reason"] == "asked for Mon 09:00, in class time 08:00–15:00: moved to Mon 23 Nov 15:30"
    assert (rows(engine, paused)["announce"]["status"], rows(engine, paused)["announce"]["reason"]) == (
        "skipped", "paused until 2026-11-25")
    assert schedule.on_demand(engine, registry, "announce", [asked], now + timedelta(hours=1)) == 0  # once a day
    with pytest.raises(ValueError, match="no on-demand trigger 'goals'"):
        schedule.on_demand(engine, registry, "goals", [asked], now)
    assert sweep(engine, registry, datetime(2026, 11, 23, 20, 30, tzinfo=UTC)).sent == 1
    assert outbox(engine) == {asked: ["toys/announce"]}


def test_a_safety_escalation_takes_no_part_of_the_policy(engine, now):
    registry = toys(Trigger("escalation", when=When.on_demand, roles=ADULTS, parts=frozenset()))
    (adviser,) = add_people(engine, now, ["Pacific/Auckland"], role="adviser", paused_until=date(2026, 12, 1))
    add_event(engine, "holiday", "Staff day", MONDAY, MONDAY + timedelta(days=1), now)
    night = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)  # 03:00 on Tuesday in Auckland: a holiday, a pause, the night
    assert schedule.on_demand(engine, registry, "escalation", [adviser], night) == 1
    escalation = rows(engine, adviser)["escalation"]
    assert (escalation["status"], as_moment(escalation["due_at"]), escalation["reason"]) == ("planned", night, None)
    assert as_moment(escalation["expires_at"]) == schedule.FOREVER
    assert sweep(engine, registry, night + timedelta(days=2)).sent == 1  # days late and still sent
    assert outbox(engine) == {adviser: ["escalation/nudge"]}
    assert rows(engine, adviser)["escalation"]["followup_due_at"] is None


# -- each part of the policy, and a trigger that leaves it out -------------------------------------


def test_without_the_time_zone_part_the_nudge_goes_by_the_schools_clock():
    registry = toys(Trigger("bound", day="bound.day", priority=5),
                    Trigger("school_clock", day="school_clock.day", priority=6, parts=ALL_PARTS - {Part.timezone}))
    found = slots(rules_of(registry), zone="Pacific/Auckland")
    assert found["bound"].due_at == datetime(2026, 11, 25, 2, 30, tzinfo=UTC)  # Wednesday 15:30 in Auckland
    assert found["school_clock"].due_at == datetime(2026, 11, 25, 20, 30, tzinfo=UTC)  # Wednesday 15:30 in New York


def test_without_the_quiet_hours_part_the_nudge_keeps_its_night_time_and_is_sent_then(engine, now):
    registry = toys(Trigger("owl", day="owl.day", priority=5, parts=ALL_PARTS - {Part.quiet_hours}))
    pure = slots(rules_of(registry), preferred=time(22, 30))
    assert pure["goals"].local_time == time(20, 30) and "quiet hours" in pure["goals"].reason
    assert pure["owl"].local_time == time(22, 30) and pure["owl"].reason is None
    assert slots(rules_of(registry), preferred=time(10))["owl"].local_time == time(10)  # class time neither
    (student,) = add_people(engine, now, [None], preferred="22:30")
    plan_week(engine, registry, MONDAY, now)
    late = datetime(2026, 11, 26, 3, 40, tzinfo=UTC)  # Wednesday 22:40 in New York, ten minutes late
    report = sweep(engine, registry, late)
    assert rows(engine, student)["owl"]["status"] == "sent" and report.sent == 1
    assert outbox(engine)[student] == ["owl/nudge"]


def test_without_the_holidays_part_the_nudge_goes_on_a_holiday_and_outside_term():
    registry = toys(Trigger("bound", day="bound.day", priority=5),
                    Trigger("any_day", day="any_day.day", priority=6, parts=ALL_PARTS - {Part.holidays}))
    holiday = SchoolCalendar((DayMark("holiday", "Founders' day", WEDNESDAY, WEDNESDAY),))
    found = slots(rules_of(registry), calendar=holiday)
    assert (found["bound"].status, found["bound"].reason) == ("skipped", "holiday (Founders' day)")
    assert (found["any_day"].status, found["any_day"].day, found["any_day"].reason) == ("planned", WEDNESDAY, None)
    summer = SchoolCalendar((DayMark("term", "Fall", date(2026, 8, 24), date(2026, 12, 18)),))
    july = slots(rules_of(registry), calendar=summer, week=date(2027, 7, 5))
    assert july["goals"].reason == "outside term" and july["any_day"].status == "planned"


def test_without_the_pauses_part_a_paused_person_still_gets_the_nudge(engine, now):
    registry = toys(Trigger("unpaused", day="unpaused.day", priority=5, parts=ALL_PARTS - {Part.pauses}))
    (student,) = add_people(engine, now, [None], paused_until=date(2026, 11, 30))
    plan_week(engine, registry, MONDAY, now)
    assert (rows(engine, student)["goals"]["status"], rows(engine, student)["goals"]["reason"]) == (
        "skipped", "paused until 2026-11-30")
    assert rows(engine, student)["unpaused"]["status"] == "planned"
    seen = schedule.outlook(engine, registry, student, now, weeks=1)
    assert [(n.kind, n.status) for n in seen.nudges if n.local] == [
        ("goals", "skipped"), ("unpaused", "planned"), ("review", "skipped")]
    assert sweep(engine, registry, datetime(2026, 11, 25, 20, 30, tzinfo=UTC)).sent == 1
    assert outbox(engine) == {student: ["unpaused/nudge"]}


def test_without_the_cap_part_the_nudge_neither_counts_nor_is_dropped():
    registry = toys(Trigger("uncapped", day="uncapped.day", priority=9, parts=ALL_PARTS - {Part.cap}),
                    Trigger("capped", day="capped.day", priority=8))
    found = slots(rules_of(registry, **{"nudges.weekly_cap": 1}))
    assert found["goals"].status == "planned"  # priority 0: the one the cap keeps
    assert {found[kind].reason for kind in ("review", "capped")} == {"weekly cap of 1 nudges"}
    assert found["uncapped"].status == "planned"  # lowest priority of all, yet outside the cap
    nothing = slots(rules_of(registry, **{"nudges.weekly_cap": 0}))
    assert [kind for kind, slot in nothing.items() if slot.status == "planned"] == ["uncapped"]


def test_without_the_grace_part_a_nudge_missed_while_the_server_was_down_is_sent_late(engine, now):
    registry = toys(Trigger("patient", day="patient.day", priority=5, parts=ALL_PARTS - {Part.grace}))
    (student,) = add_people(engine, now, [None])
    set_setting(engine, registry, "patient.day", "monday", now)  # beside the goal prompt, Monday 15:30
    plan_week(engine, registry, MONDAY, now)
    back = datetime(2026, 11, 24, 4, 30, tzinfo=UTC)  # Monday 23:30 in New York: both eight hours late
    report = sweep(engine, registry, back)
    assert (report.stale, report.sent) == (1, 0)
    assert rows(engine, student)["goals"]["reason"] == "stale: missed its grace window"
    patient = rows(engine, student)["patient"]  # not stale, and not sent into the night either: it waits
    assert (patient["status"], as_moment(patient["due_at"])) == ("planned", datetime(2026, 11, 24, 20, 30, tzinfo=UTC))
    assert patient["reason"] == "late: it would arrive at 23:30, in quiet hours 21:00–07:00: moved to Tue 24 Nov 15:30"
    assert sweep(engine, registry, datetime(2026, 11, 24, 21, 0, tzinfo=UTC)).sent == 1  # a day late, still sent
    assert rows(engine, student)["patient"]["status"] == "sent"
    assert outbox(engine) == {student: ["patient/nudge"]}


def test_without_the_follow_up_part_silence_gets_no_follow_up_and_no_flag(engine, now):
    registry = toys(Trigger("once", day="once.day", priority=5, parts=ALL_PARTS - {Part.followup}))
    (student,) = add_people(engine, now, [None])
    plan_week(engine, registry, MONDAY, now)
    sweep(engine, registry, datetime(2026, 11, 23, 20, 30, tzinfo=UTC))  # goals
    assert sweep(engine, registry, datetime(2026, 11, 24, 20, 30, tzinfo=UTC)).followed_up == 1  # goals, once
    sweep(engine, registry, datetime(2026, 11, 25, 20, 30, tzinfo=UTC))  # once (Wednesday)
    assert rows(engine, student)["once"]["followup_due_at"] is None
    for day in range(4):  # Thursday to Sunday: goals is flagged, nothing more
        sweep(engine, registry, datetime(2026, 11, 26 + day, 20, 30, tzinfo=UTC))
    assert outbox(engine)[student] == ["goals/ask_goal", "nudges/followup", "once/nudge"]
    with engine.connect() as connection:
        flagged = connection.execute(text("SELECT n.kind FROM flag f JOIN nudge n ON n.id = f.nudge_id")).all()
    assert flagged == [("goals",)]


# -- companion schedule show, any week, every kind -------------------------------------------------


ALL_KINDS = (
    Trigger("reflection", when=When.calendar, after="grading_period", priority=3, flow="reflection"),
    Trigger("practice", when=When.chosen, day="practice.day", at="practice.time", priority=4),
    Trigger("announce", when=When.on_demand, priority=5),
    Trigger("digest", when=When.chosen, day="digest.day", at="digest.time", roles=ADULTS,
            parts=ALL_PARTS - {Part.followup}),
)
ALL_KIND_KEYS = (Key("practice.day", Weekday(), None, "a student's practice reminder (off until chosen)"),)


@pytest.fixture
def companion(engine):
    """`companion schedule` on the test database, with the toy triggers of every kind installed."""
    registry = toys(*ALL_KINDS, keys=ALL_KIND_KEYS)

    @click.group()
    @click.pass_context
    def main(ctx: click.Context) -> None:
        ctx.obj = SimpleNamespace(engine=engine, registry=registry)

    register(main, lambda ctx: ctx.obj)
    return lambda *args: CliRunner().invoke(main, list(args))


def kinds_shown(output: str) -> dict[str, list[str]]:
    """`schedule show`'s lines by kind (the column after the date, or after the dash of a trigger with none)."""
    found: dict[str, list[str]] = {}
    for line in output.splitlines()[1:]:
        words = line.split()
        kind = words[1] if words[0] == "—" else words[6]  # Mon 23 Nov 2026 15:30 EST
        found.setdefault(kind, []).append(line)
    return found


def test_schedule_show_from_any_week_lists_every_kind_with_its_reason(companion, engine, now):
    registry = toys(*ALL_KINDS, keys=ALL_KIND_KEYS)
    (student,) = add_people(engine, now, [None])
    (adviser,) = add_people(engine, now, [None], role="adviser")
    add_event(engine, "grading_period", "Quarter 1", date(2026, 10, 26), date(2026, 11, 20), now)
    add_event(engine, "holiday", "Thanksgiving", date(2026, 11, 26), date(2026, 11, 27), now)

    shown = companion("schedule", "show", f"p{student}@school.test", "--from", "2026-11-18", "--weeks", "2")
    assert shown.exit_code == 0, shown.output
    lines = kinds_shown(shown.output)
    assert set(lines) == {"goals", "review", "checkin", "reflection", "practice", "announce"}
    assert all("weekly" in line for line in lines["goals"] + lines["review"]) and len(lines["goals"]) == 2
    assert "Thanksgiving" in lines["review"][1]  # the week of 23 November: Friday's review moved to Wednesday
    assert "Mon 23 Nov 2026 15:30" in lines["reflection"][0] and "after Quarter 1 (ended Fri 20 Nov)" in lines[
        "reflection"][0] and "calendar" in lines["reflection"][0]
    assert "none" in lines["checkin"][0] and "off (checkin.day is off)" in lines["checkin"][0]
    assert "chosen" in lines["practice"][0] and "off (practice.day is off)" in lines["practice"][0]
    assert "on demand" in lines["announce"][0] and "on demand: only when asked for" in lines["announce"][0]

    schedule.choose_time(engine, student, "practice", 3, time(17), now)
    schedule.on_demand(engine, registry, "announce", [student], now)
    later = kinds_shown(companion("schedule", "show", f"p{student}@school.test", "--from", "2026-11-23",
                                  "--weeks", "1").output)
    assert "Thu 26 Nov 2026 17:00" in later["practice"][0] and "holiday (Thanksgiving)" in later["practice"][0]
    assert "Mon 23 Nov 2026 15:30" in later["announce"][0] and "class time" in later["announce"][0]

    spring = kinds_shown(companion("schedule", "show", f"p{student}@school.test", "--from", "2027-03-01").output)
    assert "Mon 01 Mar 2027" in spring["goals"][0] and "none ends in time" in spring["reflection"][0]

    adult = companion("schedule", "show", f"p{adviser}@school.test", "--from", "2026-11-23", "--weeks", "1")
    assert adult.exit_code == 0, adult.output
    assert adult.output.splitlines()[0].endswith(f"(id {adviser}, adviser): America/New_York, prefers 15:30")
    assert set(kinds_shown(adult.output)) == {"digest"}
    assert "Wed 25 Nov 2026 16:00" in kinds_shown(adult.output)["digest"][0]


def test_show_and_plan_agree_row_for_row(engine, now):
    registry = toys(*ALL_KINDS, keys=ALL_KIND_KEYS)
    students = add_people(engine, now, ["Pacific/Auckland", None, "Asia/Kathmandu"], preferred="07:30")
    advisers = add_people(engine, now, [None, "Europe/Madrid"], role="adviser")
    add_event(engine, "grading_period", "Quarter 1", date(2026, 10, 26), date(2026, 11, 20), now)
    schedule.choose_time(engine, students[1], "practice", 1, time(12), now)
    schedule.choose_time(engine, advisers[1], "digest", 4, None, now)
    plan_week(engine, registry, MONDAY, now)
    for person in (*students, *advisers):
        seen = schedule.outlook(engine, registry, person, now, weeks=1, start=MONDAY)
        planned = {(n.kind, n.local.astimezone(UTC), n.status if n.status != "past" else "planned")
                   for n in seen.nudges if n.local}
        stored = {(kind, as_moment(row["due_at"]), row["status"]) for kind, row in rows(engine, person).items()}
        assert planned == stored, person


# -- the migration ---------------------------------------------------------------------------------


def test_the_migration_keys_existing_nudges_by_their_week_and_keeps_their_flags_both_ways(database_url, now):
    engine = db.make_engine(database_url)
    db.upgrade(engine, "0004")
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO school (id, sourced_id, name, timezone, locale) "
                                "VALUES (1, 's1', 'School', 'America/New_York', 'en')"))
        connection.execute(text("INSERT INTO person (id, sourced_id, school_id, role, given_name, family_name, status, "
                                "created_at) VALUES (1, 'p1', 1, 'student', 'Ana', 'Test', 'active', :n)"), {"n": now})
        connection.execute(text("INSERT INTO nudge (id, person_id, kind, week_start, due_at, expires_at, status, "
                                "created_at, sent_at) VALUES (7, 1, 'goals', :w, :n, :n, 'sent', :n, :n)"),
                           {"w": MONDAY, "n": now})
        connection.execute(text("INSERT INTO flag (person_id, kind, nudge_id, detail, created_at) "
                                "VALUES (1, 'no_response', 7, '{}', :n)"), {"n": now})
    db.upgrade(engine, "0005")  # this migration alone, both ways: later ones are not its business
    with engine.connect() as connection:
        assert str(connection.execute(text("SELECT occasion FROM nudge WHERE id = 7")).scalar()) == "2026-11-23"
        assert connection.execute(text("SELECT nudge_id FROM flag")).scalar() == 7
        if engine.dialect.name == "sqlite":
            partial = connection.execute(text("SELECT sql FROM sqlite_master WHERE name = 'ix_nudge_followup_due_at'"))
        else:
            partial = connection.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = "
                                              "'ix_nudge_followup_due_at' AND schemaname = current_schema()"))
        assert "followup_due_at IS NOT NULL" in partial.scalar()
    # the new key: a second occasion of the same kind in the same week is its own row
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO nudge (person_id, kind, occasion, due_at, expires_at, status, created_at) "
                                "VALUES (1, 'goals', :o, :n, :n, 'planned', :n)"), {"o": WEDNESDAY, "n": now})
    command.downgrade(db.alembic_config(engine), "0004")  # and back: the week's weekly row stays, the other goes
    with engine.connect() as connection:
        assert [(nudge, str(week)) for nudge, week in connection.execute(
            text("SELECT id, week_start FROM nudge")).all()] == [(7, "2026-11-23")]
        assert connection.execute(text("SELECT nudge_id FROM flag")).scalar() == 7
    db.upgrade(engine, "0005")
    engine.dispose()
