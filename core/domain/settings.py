"""Typed school settings: one registry of keys that features and the scheduler add to.

A key has a name (`goals.day`), a type that parses and shows a value (a number, a duration, a
time of day, a weekday, a list, a map, a text or template), a default and a line of help. A
school's values live in the `schoolsetting` table, one row per key it changed; every other key
has its default. `companion school show` lists them all, `companion school set KEY VALUE`
changes one after the type has checked it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, Iterable, Mapping

import jinja2
from sqlmodel import Field, SQLModel

from core.domain.models import utcnow

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
OFF = ("off", "none", "never", "")
UNITS = {"m": "minutes", "h": "hours", "d": "days"}
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|min|minutes?|h|hours?|d|days?)\s*$", re.IGNORECASE)


class SettingError(ValueError):
    """A value a key cannot take, with what it expects."""


class SchoolSetting(SQLModel, table=True):
    """One setting a school changed from its default; the value is JSON of the key's type."""

    school_id: int = Field(foreign_key="school.id", primary_key=True)
    key: str = Field(primary_key=True)
    value: str
    updated_at: datetime = Field(default_factory=utcnow)


# -- the types a key can have -----------------------------------------------------------------------


class Kind:
    """How a key's value is parsed from what an administrator types, shown, and kept as JSON."""

    expects = ""

    def parse(self, text: str) -> Any:
        raise NotImplementedError

    def show(self, value: Any) -> str:
        return str(value)

    def dump(self, value: Any) -> Any:
        return value

    def load(self, stored: Any) -> Any:
        return stored


@dataclass(frozen=True)
class Number(Kind):
    low: int = 0
    high: int = 1_000_000

    @property
    def expects(self) -> str:
        return f"a whole number from {self.low} to {self.high}"

    def parse(self, text: str) -> int:
        if not text.strip().isdigit() or not self.low <= int(text) <= self.high:
            raise SettingError(self.expects)
        return int(text)


@dataclass(frozen=True)
class Duration(Kind):
    """A length of time: "15m", "24h", "2d"; kept as seconds."""

    expects = 'a duration such as "15m", "6h" or "2d"'

    def parse(self, text: str) -> timedelta:
        match = DURATION.match(text)
        if not match:
            raise SettingError(self.expects)
        amount, unit = float(match.group(1)), match.group(2)[0].lower()
        return timedelta(**{UNITS[unit]: amount})

    def show(self, value: timedelta) -> str:
        minutes = int(value.total_seconds() // 60)
        if minutes % (24 * 60) == 0:
            return f"{minutes // (24 * 60)}d"
        return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"

    def dump(self, value: timedelta) -> int:
        return int(value.total_seconds())

    def load(self, stored: int) -> timedelta:
        return timedelta(seconds=stored)


@dataclass(frozen=True)
class Clock(Kind):
    """A time of day, "HH:MM"."""

    expects = 'a time of day such as "07:30" or "21:00"'

    def parse(self, text: str) -> time:
        try:
            return time.fromisoformat(text.strip())
        except ValueError:
            raise SettingError(self.expects) from None

    def show(self, value: time) -> str:
        return f"{value:%H:%M}"

    def dump(self, value: time) -> str:
        return self.show(value)

    def load(self, stored: str) -> time:
        return time.fromisoformat(stored)


@dataclass(frozen=True)
class Weekday(Kind):
    """A day of the week, or "off"; kept as 0 (Monday) … 6 (Sunday) or None."""

    expects = "a weekday (monday … sunday) or off"

    def parse(self, text: str) -> int | None:
        word = text.strip().lower()
        if word in OFF:
            return None
        found = [n for n, name in enumerate(WEEKDAYS) if name.startswith(word) and len(word) >= 2]
        if len(found) != 1:
            raise SettingError(self.expects)
        return found[0]

    def show(self, value: int | None) -> str:
        return "off" if value is None else WEEKDAYS[value]


@dataclass(frozen=True)
class Words(Kind):
    """A comma-separated list."""

    expects = "a comma-separated list"

    def parse(self, text: str) -> list[str]:
        return [part.strip() for part in text.split(",") if part.strip()]

    def show(self, value: list[str]) -> str:
        return ", ".join(value)


@dataclass(frozen=True)
class Pairs(Kind):
    """A map written as "key=value, key=value"."""

    expects = 'pairs such as "A=exceeds, B=meets"'

    def parse(self, text: str) -> dict[str, str]:
        pairs = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                raise SettingError(self.expects)
            pairs[key.strip()] = value.strip()
        return pairs

    def show(self, value: dict[str, str]) -> str:
        return ", ".join(f"{key}={item}" for key, item in value.items())


@dataclass(frozen=True)
class Template(Kind):
    """A text a school writes, possibly with Jinja2 variables; it must parse."""

    expects = "a text (Jinja2 variables allowed)"

    def parse(self, text: str) -> str:
        try:
            jinja2.Environment().parse(text)
        except jinja2.TemplateSyntaxError as error:
            raise SettingError(f"{self.expects}: {error.message} on line {error.lineno}") from None
        return text


# -- keys and a school's values ---------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """One setting: its name, type, default (a value of the type) and a line of help."""

    name: str
    kind: Kind
    default: Any
    help: str

    def parse(self, text: str) -> Any:
        try:
            return self.kind.parse(text)
        except SettingError as error:
            raise SettingError(f"{self.name} must be {error}") from None


@dataclass(frozen=True)
class Values(Mapping[str, Any]):
    """A school's settings: what it set, and the defaults for the rest."""

    keys: Mapping[str, Key]
    changed: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        if name in self.changed:
            return self.changed[name]
        return self.keys[name].default

    def __iter__(self):
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def show(self, name: str) -> str:
        return self.keys[name].kind.show(self[name])


class SettingsCatalog:
    """Every key there is, by name; two features may not claim the same name."""

    def __init__(self, keys: Iterable[Key]):
        self.keys: dict[str, Key] = {}
        for key in keys:
            if key.name in self.keys:
                raise ValueError(f"setting {key.name} is declared twice")
            self.keys[key.name] = key

    def key(self, name: str) -> Key:
        if name not in self.keys:
            raise SettingError(f"no setting {name!r}; known: {', '.join(sorted(self.keys))}")
        return self.keys[name]

    def load(self, tx) -> dict[int, Values]:
        """Every school's values (a school that changed nothing has only defaults), by school id."""
        changed: dict[int, dict[str, Any]] = {school_id: {} for (school_id,) in tx.all("SELECT id FROM school")}
        for school_id, name, stored in tx.all("SELECT school_id, key, value FROM schoolsetting"):
            key = self.keys.get(name)
            if key is not None:  # a key of a feature no longer installed is kept but ignored
                changed.setdefault(school_id, {})[name] = key.kind.load(json.loads(stored))
        return {school_id: Values(self.keys, values) for school_id, values in changed.items()}

    def for_school(self, tx, school_id: int | None) -> Values:
        """One school's values (the defaults for a person in no school)."""
        changed = {}
        for name, stored in tx.all("SELECT key, value FROM schoolsetting WHERE school_id = ?", (school_id,)):
            if name in self.keys:
                changed[name] = self.keys[name].kind.load(json.loads(stored))
        return Values(self.keys, changed)

    def set(self, tx, school_id: int, name: str, text: str, now: datetime) -> Any:
        """Check `text` against the key's type and store it for the school; returns the value."""
        key = self.key(name)
        value = key.parse(text)
        tx.execute("DELETE FROM schoolsetting WHERE school_id = ? AND key = ?", (school_id, name))
        tx.execute("INSERT INTO schoolsetting (school_id, key, value, updated_at) VALUES (?, ?, ?, ?)",
                   (school_id, name, json.dumps(key.kind.dump(value)), tx.ts(now)))
        return value
