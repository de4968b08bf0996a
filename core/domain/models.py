"""The domain model (SPEC §1–§6) as SQLModel tables.

The schema is created only by the Alembic migrations in `migrations/`; these classes describe it
for the ORM (administration, roster import, reports). The conversation engine's hot path reads
and writes the same tables with plain SQL (see `core/store.py`).
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from enum import StrEnum

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel


DEFAULT_LOCALE = "en"  # a school's language until it says otherwise, and every message's fallback
DEFAULT_TIMEZONE = "America/New_York"  # a school's time zone until it says otherwise


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(timezone.utc)


class Role(StrEnum):
    student = "student"
    adviser = "adviser"
    counselor = "counselor"
    admin = "admin"


class PersonStatus(StrEnum):
    active = "active"
    stopped = "stopped"  # the student said /stop: no nudges until they come back
    unreachable = "unreachable"  # the platform refuses delivery (blocked bot)


class Category(StrEnum):
    """Summit's four outcomes: every goal serves one of them."""

    content_knowledge = "content_knowledge"
    cognitive_skills = "cognitive_skills"
    habits_of_success = "habits_of_success"
    sense_of_purpose = "sense_of_purpose"


class GoalStatus(StrEnum):
    open = "open"
    done = "done"
    partly = "partly"
    not_yet = "not_yet"
    dropped = "dropped"
    carried = "carried"  # carried forward into a new week's goal


class CalendarKind(StrEnum):
    term = "term"
    grading_period = "grading_period"
    holiday = "holiday"
    exam_week = "exam_week"


class School(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    sourced_id: str = Field(unique=True)
    name: str
    timezone: str = DEFAULT_TIMEZONE
    locale: str = DEFAULT_LOCALE


class Person(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    sourced_id: str = Field(unique=True)
    school_id: int | None = Field(default=None, foreign_key="school.id")
    role: str = Field(default=Role.student, index=True)
    given_name: str
    family_name: str = ""
    email: str | None = Field(default=None, index=True)
    grade: str | None = None
    locale: str | None = None  # None until the student chooses; the school's default applies
    timezone: str | None = None
    status: str = PersonStatus.active
    paused_until: date | None = None
    consent_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class ChatIdentity(SQLModel, table=True):
    """A chat account on one platform; linked to a person once an invite code is redeemed."""

    __table_args__ = (UniqueConstraint("platform", "external_id"),)
    id: int | None = Field(default=None, primary_key=True)
    platform: str
    external_id: str
    chat_id: str  # where to send: Telegram chat id, Slack DM channel, console name
    person_id: int | None = Field(default=None, foreign_key="person.id", index=True)
    failed_attempts: int = 0
    window_started_at: datetime | None = None
    unreachable: bool = False
    created_at: datetime = Field(default_factory=utcnow)


class AdvisoryGroup(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    sourced_id: str = Field(unique=True)
    school_id: int | None = Field(default=None, foreign_key="school.id")
    title: str


class AdvisoryMember(SQLModel, table=True):
    group_id: int = Field(foreign_key="advisorygroup.id", primary_key=True)
    person_id: int = Field(foreign_key="person.id", primary_key=True)
    role: str  # student or adviser


class LearnerProfile(SQLModel, table=True):
    person_id: int = Field(foreign_key="person.id", primary_key=True)
    strengths: str | None = None
    needs: str | None = None
    interests: str | None = None
    aim: str | None = None
    checkin_time: str | None = None  # "HH:MM" in the student's time zone
    updated_at: datetime = Field(default_factory=utcnow)


class PlanFocus(SQLModel, table=True):
    """A focus area or competency on the student's learning plan, with a mastery level."""

    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    category: str
    title: str
    mastery: int | None = None  # 1–4, self-assessed or set by a teacher
    set_by: str = "student"
    created_at: datetime = Field(default_factory=utcnow)


class Goal(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    week_start: date = Field(index=True)
    text: str
    category: str
    due_on: date | None = None
    outcome: str | None = None  # WOOP: the best outcome
    obstacle: str | None = None  # WOOP: the main inner obstacle
    plan: str | None = None  # WOOP: "If <obstacle>, then I will <action>"
    confidence: int | None = None  # 1–5
    status: str = GoalStatus.open
    carried_from_id: int | None = Field(default=None, foreign_key="goal.id")
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class GoalReview(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    goal_id: int = Field(foreign_key="goal.id", index=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    status: str
    notes: str | None = None  # what helped or got in the way
    created_at: datetime = Field(default_factory=utcnow)


class Reflection(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    kind: str = "week"
    week_start: date
    text: str
    created_at: datetime = Field(default_factory=utcnow)


class Conversation(SQLModel, table=True):
    """Where a student is in a conversation; written with the rows each answer produced."""

    person_id: int = Field(foreign_key="person.id", primary_key=True)
    flow: str | None = None
    state: str | None = None
    answers: str = "{}"  # JSON: what the current flow has collected so far
    stack: str | None = None  # JSON: flows waiting below this one, set aside, or queued (core/engine/stack.py)
    version: int = 0
    updated_at: datetime = Field(default_factory=utcnow)


class InboundEvent(SQLModel, table=True):
    """Platform event ids already handled: a retried event changes nothing."""

    platform: str = Field(primary_key=True)
    event_id: str = Field(primary_key=True)
    received_at: datetime = Field(default_factory=utcnow)


class Outbox(SQLModel, table=True):
    """A message to send, written in the same transaction as the state that produced it."""

    id: int | None = Field(default=None, primary_key=True)
    person_id: int | None = Field(default=None, foreign_key="person.id", index=True)
    platform: str
    chat_id: str
    template: str
    locale: str
    context: str = "{}"  # JSON
    buttons: str = "[]"  # JSON list of [label key, payload]
    priority: int = 0  # 0: a reply to the student, 1: a nudge or broadcast
    status: str = Field(default="pending", index=True)
    attempts: int = 0
    not_before: datetime | None = None
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    sent_at: datetime | None = None
    external_id: str | None = None
    error: str | None = None
    created_at: datetime = Field(default_factory=utcnow)


class InviteCode(SQLModel, table=True):
    code: str = Field(primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    used_at: datetime | None = None
    used_by: int | None = Field(default=None, foreign_key="chatidentity.id")


class AuditLog(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow)
    actor: str
    action: str
    person_id: int | None = None  # no foreign key: the entry outlives a deleted student
    detail: str = "{}"


class Artifact(SQLModel, table=True):
    """Evidence a student shared: a link, photo or file, for the portfolio."""

    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    goal_id: int | None = Field(default=None, foreign_key="goal.id")
    kind: str  # link, photo, file
    ref: str  # URL or platform file id
    caption: str | None = None
    created_at: datetime = Field(default_factory=utcnow)


class HelpRequest(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    goal_id: int | None = Field(default=None, foreign_key="goal.id")
    text: str
    status: str = "open"
    created_at: datetime = Field(default_factory=utcnow)
    resolved_at: datetime | None = None


class SafetyAlert(SQLModel, table=True):
    """Crisis, self-harm, abuse or basic-needs language: logged, and the adviser alerted."""

    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    category: str
    text: str
    created_at: datetime = Field(default_factory=utcnow)


class CalendarEvent(SQLModel, table=True):
    """A term, grading period, holiday or exam week from the school's iCalendar file."""

    __table_args__ = (UniqueConstraint("school_id", "uid"),)
    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id")
    uid: str
    kind: str
    title: str
    starts_on: date
    ends_on: date  # the last day (inclusive); a grading period's end triggers report-card reflection
    updated_at: datetime = Field(default_factory=utcnow)
