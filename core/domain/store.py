"""The engine's lean data path: plain SQL on one DBAPI connection, one transaction per event.

The ORM is the obvious way to write this and about ten times too slow for the hot path
(`../shared/bench/README.md`): here each inbound message costs a handful of prepared statements
and one commit. The statements are written once with `?` placeholders and work on SQLite and
PostgreSQL alike; the tables are the ones `core/models.py` describes and the migrations create.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import date, datetime, timezone
from typing import Any, Iterator

import orjson
from sqlalchemy import Engine

from core.domain.messages import Attachment, FileRef, FormData, Inbound, Outbound


@dataclass(slots=True)
class Sender:
    """Who wrote: the chat account and, once linked, the person with their conversation."""

    identity_id: int
    person_id: int | None
    chat_id: str
    platform: str | None = None
    role: str | None = None
    given_name: str | None = None
    locale: str | None = None
    timezone: str | None = None
    school_locale: str | None = None
    school_timezone: str | None = None
    status: str | None = None
    consented: bool = False
    flow: str | None = None
    state: str | None = None
    answers: dict | None = None
    stack: dict | None = None  # the flows below the open one, those set aside, those queued (core/engine/stack.py)
    version: int = 0


SENDER_QUERY = """
SELECT i.id, i.person_id, i.chat_id, i.platform, p.role, p.given_name, p.locale, p.timezone,
       s.locale, s.timezone, p.status, p.consent_at IS NOT NULL, c.flow, c.state, c.answers, c.stack, c.version
FROM chatidentity i
LEFT JOIN person p ON p.id = i.person_id
LEFT JOIN school s ON s.id = p.school_id
LEFT JOIN conversation c ON c.person_id = i.person_id
WHERE """


class Store:
    """Opens transactions on an engine's raw connections, in the engine's dialect."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self._converted: dict[str, str] = {}

    def sql(self, statement: str) -> str:
        """`statement` with the driver's placeholders (psycopg wants %s where sqlite3 takes ?)."""
        if not self.postgres:
            return statement
        converted = self._converted.get(statement)
        if converted is None:
            converted = self._converted[statement] = statement.replace("%", "%%").replace("?", "%s")
        return converted

    def transaction(self) -> "Tx":
        """A new transaction on a pooled connection; use it as a context manager."""
        return Tx(self)


class Tx:
    """One transaction: commits when the block ends cleanly, rolls back on any error."""

    def __init__(self, store: Store):
        self.store = store
        self.postgres = store.postgres
        self.connection = store.engine.raw_connection()
        self.cursor = self.connection.cursor()
        self._last_moment: datetime | None = None
        self._last_stamp = ""
        self.bot = ""  # the bot or workspace of the event being handled: its event ids are its own

    def __enter__(self) -> "Tx":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.connection.commit()
            else:
                self.connection.rollback()
        finally:
            self.cursor.close()
            self.connection.close()

    def begin(self, immediate: bool = False) -> None:
        """Open the transaction now (SQLite would otherwise let the first savepoint be the transaction).

        `immediate` takes SQLite's write lock at once: a read-then-write claim of two workers then waits
        its turn instead of failing at the write (PostgreSQL uses row locks for that).
        """
        if not self.postgres:
            self.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")

    # -- plumbing -------------------------------------------------------------------------------

    def execute(self, statement: str, params: tuple | list = ()) -> Any:
        self.cursor.execute(self.store.sql(statement), params)
        return self.cursor

    def one(self, statement: str, params: tuple | list = ()) -> tuple | None:
        return self.execute(statement, params).fetchone()

    def all(self, statement: str, params: tuple | list = ()) -> list[tuple]:
        return self.execute(statement, params).fetchall()

    def insert(self, statement: str, params: tuple | list) -> int:
        """Run an INSERT and give back the new row's id (SQLite knows it without a RETURNING clause)."""
        if self.postgres:
            return self.execute(statement + " RETURNING id", params).fetchone()[0]
        return self.execute(statement, params).lastrowid

    def ts(self, moment: datetime) -> Any:
        """A timestamp as the column stores it (SQLite: SQLAlchemy's UTC text format)."""
        if self.postgres:
            return moment
        if moment is not self._last_moment:  # a turn stamps many rows with the same moment
            self._last_moment = moment
            self._last_stamp = moment.astimezone(timezone.utc).isoformat(" ", "microseconds")[:26]
        return self._last_stamp

    def day(self, value: date | None) -> Any:
        return value if (self.postgres or value is None) else value.isoformat()

    @staticmethod
    def as_date(value: Any) -> date | None:
        """A date column's value: SQLite hands back text, PostgreSQL a date."""
        if value is None or isinstance(value, date):
            return value
        return date.fromisoformat(value)

    # -- inbound ----------------------------------------------------------------------------------

    def record_event(self, platform: str, event_id: str, now: datetime, bot: str | None = None) -> bool:
        """Remember an inbound event id of a bot or workspace (by default `self.bot`, the one of the event
        being handled); False when it was handled before."""
        cursor = self.execute(
            "INSERT INTO inboundevent (platform, bot, event_id, received_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (platform, self.bot if bot is None else bot, event_id, self.ts(now)),
        )
        return cursor.rowcount == 1

    def put_inbox(self, inbound: Inbound, bot: str, extra: dict | None, now: datetime) -> bool:
        """Store an event as it arrives, before the platform hears that it did; False when it is there already
        (a platform's retry of an event not handled yet)."""
        cursor = self.execute(
            "INSERT INTO inbox (platform, bot, event_id, sender, payload, extra, status, attempts, received_at) "
            "VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?) ON CONFLICT DO NOTHING",
            (inbound.platform, bot, inbound.event_id, inbound.sender, inbound_json(inbound),
             json.dumps(extra) if extra else None, self.ts(now)),
        )
        return cursor.rowcount == 1

    def linked(self, platform: str, external_id: str) -> bool:
        """Whether this chat account belongs to a person already (no lock: a hint for a channel)."""
        row = self.one("SELECT person_id FROM chatidentity WHERE platform = ? AND external_id = ?",
                       (platform, external_id))
        return row is not None and row[0] is not None

    def sender(self, platform: str, external_id: str) -> Sender | None:
        """The chat account with its person and conversation, locked on PostgreSQL."""
        return self._sender("i.platform = ? AND i.external_id = ?", (platform, external_id))

    def sender_of_person(self, person_id: int) -> Sender | None:
        """A person's conversation with their newest reachable chat account (where replies go), locked."""
        return self._sender("i.id = (SELECT id FROM chatidentity WHERE person_id = ? ORDER BY unreachable, id DESC "
                            "LIMIT 1)", (person_id,))

    def _sender(self, where: str, params: tuple) -> Sender | None:
        statement = SENDER_QUERY + where + (" FOR UPDATE OF i" if self.postgres else "")
        row = self.one(statement, params)
        if row is None:
            return None
        sender = Sender(*row[:14], version=row[16] or 0)
        sender.consented = bool(sender.consented)
        sender.answers = from_json(row[14]) if row[14] else {}
        sender.stack = from_json(row[15]) if row[15] else {}
        return sender

    def add_identity(self, platform: str, external_id: str, chat_id: str, now: datetime) -> int:
        return self.insert(
            "INSERT INTO chatidentity (platform, external_id, chat_id, failed_attempts, unreachable, "
            "created_at) VALUES (?, ?, ?, 0, ?, ?)",
            (platform, external_id, chat_id, False, self.ts(now)),
        )

    def save_conversation(self, sender: Sender, now: datetime) -> None:
        """Write the sender's flow, state and answers; the version guards against a lost update."""
        stack = to_json(sender.stack) if sender.stack and any(sender.stack.values()) else None
        cursor = self.execute(
            "UPDATE conversation SET flow = ?, state = ?, answers = ?, stack = ?, "
            "version = version + 1, updated_at = ? WHERE person_id = ? AND version = ?",
            (sender.flow, sender.state, to_json(sender.answers or {}), stack, self.ts(now),
             sender.person_id, sender.version),
        )
        if cursor.rowcount != 1:
            raise ConcurrentUpdate(sender.person_id)

    def create_conversation(self, person_id: int, now: datetime) -> None:
        self.execute(
            "INSERT INTO conversation (person_id, answers, version, updated_at) VALUES (?, '{}', 0, ?) "
            "ON CONFLICT DO NOTHING",
            (person_id, self.ts(now)),
        )

    # -- outbox ---------------------------------------------------------------------------------

    def enqueue(self, person_id: int | None, platform: str, chat_id: str, locale: str,
                message: Outbound, now: datetime, priority: int = 0) -> int:
        """Queue `message` for delivery, inside the caller's transaction; its files go by reference."""
        buttons = to_json([[b.label, b.payload, b.context] for b in message.buttons]) if message.buttons else "[]"
        parts = message.parts()
        return self.insert(
            "INSERT INTO outbox (person_id, platform, chat_id, template, locale, context, buttons, parts, "
            "priority, status, attempts, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?)",
            (person_id, platform, chat_id, message.template, locale,
             to_json(message.context), buttons, to_json(parts) if parts else None,
             priority, self.ts(now)),
        )

    def audit(self, actor: str, action: str, person_id: int | None, detail: dict, now: datetime) -> None:
        self.execute(
            "INSERT INTO auditlog (at, actor, action, person_id, detail) VALUES (?, ?, ?, ?, ?)",
            (self.ts(now), actor, action, person_id, json.dumps(detail, default=str)),
        )

    def rows(self, statement: str, params: tuple | list = ()) -> Iterator[dict]:
        """Rows as dicts keyed by column name, for the less hurried reads of flows and reports."""
        cursor = self.execute(statement, params)
        names = [column[0] for column in cursor.description]
        for row in cursor.fetchall():
            yield dict(zip(names, row))


# orjson writes the rows every message touches (its answers, its replies) about five times as fast as the
# standard library; what it does not take (an integer past 64 bits a student typed, NaN) goes the slow way.
# Dates, datetimes and dataclasses are written as str() writes them, as json.dumps(default=str) does.
_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def to_json(value: Any) -> str:
    """`value` as compact JSON text; anything JSON has no type for is written as its str()."""
    try:
        return orjson.dumps(value, default=str, option=_ORJSON_OPTIONS).decode()
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value, default=str)


def from_json(text: str) -> Any:
    """JSON text back as data (also text the standard library wrote, NaN included)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def inbound_json(inbound: Inbound) -> str:
    """An event as the inbox stores it (JSON), every field that is set."""
    data: dict[str, Any] = {field.name: getattr(inbound, field.name) for field in fields(Inbound)
                            if getattr(inbound, field.name) is not None}
    if inbound.attachment is not None:
        attachment = inbound.attachment
        data["attachment"] = {"kind": attachment.kind, "ref": attachment.ref, "caption": attachment.caption,
                              "file": attachment.file.as_json() if attachment.file else None}
    if inbound.form is not None:
        data["form"] = {"name": inbound.form.name, "values": inbound.form.values}
    return json.dumps(data)


def inbound_from_json(text: str) -> Inbound:
    """The event an inbox row holds."""
    data = json.loads(text)
    attachment = data.pop("attachment", None)
    if attachment is not None:
        file = attachment.pop("file", None)
        data["attachment"] = Attachment(**attachment, file=FileRef.from_json(file) if file else None)
    form = data.pop("form", None)
    if form is not None:
        data["form"] = FormData(form["name"], form["values"])
    return Inbound(**data)


def as_moment(value: Any) -> datetime | None:
    """A timestamp column's value: SQLite hands back UTC text, PostgreSQL an aware datetime."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value).replace(tzinfo=timezone.utc)


class ConcurrentUpdate(Exception):
    """Another worker changed this conversation first; the event is retried from the start."""
