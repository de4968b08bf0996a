"""Typed school settings: every key parses what an administrator types, refuses what it cannot
take with what it expects, and a school's values survive the trip through the database."""

from __future__ import annotations

from datetime import time, timedelta

import pytest
from sqlalchemy import text

from core.domain import db
from core.domain.settings import (Clock, Duration, Number, Pairs, SettingError, Template, Weekday, Words)
from core.domain.store import Store
from core.features import REGISTRY
from tests.helpers import enrol


@pytest.mark.parametrize("kind, typed, value, shown", [
    (Number(0, 21), "5", 5, "5"),
    (Duration(), "15m", timedelta(minutes=15), "15m"),
    (Duration(), "24 hours", timedelta(hours=24), "1d"),
    (Duration(), "6h", timedelta(hours=6), "6h"),
    (Clock(), "07:30", time(7, 30), "07:30"),
    (Weekday(), "Wed", 2, "wednesday"),
    (Weekday(), "off", None, "off"),
    (Words(), "homeroom, advisory", ["homeroom", "advisory"], "homeroom, advisory"),
    (Pairs(), "A=exceeds, B+=meets", {"A": "exceeds", "B+": "meets"}, "A=exceeds, B+=meets"),
    (Template(), "Call {{ name }} at 555-0100", "Call {{ name }} at 555-0100", "Call {{ name }} at 555-0100"),
])
def test_each_type_parses_and_shows_what_it_took(kind, typed, value, shown):
    assert kind.parse(typed) == value
    assert kind.show(value) == shown
    assert kind.load(kind.dump(value)) == value


@pytest.mark.parametrize("kind, typed", [(Number(0, 21), "22"), (Number(0, 21), "three"), (Duration(), "soon"),
                                         (Clock(), "25:00"), (Weekday(), "t"), (Weekday(), "funday"),
                                         (Pairs(), "A"), (Template(), "{{ name")])
def test_each_type_refuses_what_it_cannot_take(kind, typed):
    with pytest.raises(SettingError):
        kind.parse(typed)


def test_a_schools_values_round_trip_and_the_rest_keep_their_defaults(engine, now):
    enrol(engine, now)
    with Store(engine).transaction() as tx:
        REGISTRY.settings.set(tx, 1, "quiet_hours.start", "20:30", now)
        REGISTRY.settings.set(tx, 1, "checkin.day", "wednesday", now)
        REGISTRY.settings.set(tx, 1, "nudges.followup_after", "2d", now)
    with Store(engine).transaction() as tx:
        values = REGISTRY.settings.load(tx)[1]
    assert values["quiet_hours.start"] == time(20, 30) and values["checkin.day"] == 2
    assert values["nudges.followup_after"] == timedelta(days=2)
    assert values["goals.day"] == 0 and values["nudges.weekly_cap"] == 3  # defaults


def test_an_unknown_key_names_the_known_ones(engine, now):
    enrol(engine, now)
    with Store(engine).transaction() as tx, pytest.raises(SettingError, match="goals.day"):
        REGISTRY.settings.set(tx, 1, "goal.day", "monday", now)


def test_the_migration_turns_a_schedule_row_into_settings(database_url, now):
    engine = db.make_engine(database_url)
    db.upgrade(engine, "0002")
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO school (id, sourced_id, name, timezone, locale) "
                                "VALUES (1, 's1', 'School', 'Europe/Madrid', 'es')"))
        connection.execute(text("INSERT INTO schoolschedule VALUES (1, 0, 2, 4, '21:00', '06:30', '08:00', '14:00', "
                                "2, 48, 6)"))
    db.upgrade(engine)
    with Store(engine).transaction() as tx:
        values = REGISTRY.settings.load(tx)[1]
    assert values["checkin.day"] == 2 and values["quiet_hours.end"] == time(6, 30)
    assert values["class_time.end"] == time(14) and values["nudges.weekly_cap"] == 2
    assert values["nudges.followup_after"] == timedelta(hours=48)
    assert values["goals.day"] == 0 and values["nudges.grace"] == timedelta(hours=6)  # defaults were not copied
    engine.dispose()
