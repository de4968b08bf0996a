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
    holiday = "holiday"  # a closure: no school for students
    exam_week = "exam_week"
    early_dismissal = "early_dismissal"  # a school day that ends early (shown, never a day off)


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
    # The day the roster import saw them leave (absent from a full import, tobedeleted, or disabled):
    # the retention clock (`retention_days`) starts here; None while they are on the roster.
    left_on: date | None = None


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


class PersonSchool(SQLModel, table=True):
    """A school a person covers besides `person.school_id` (core/school/roster.py): district staff cover
    every school below their district, and someone the roster places at several schools covers each."""

    person_id: int = Field(foreign_key="person.id", primary_key=True)
    school_id: int = Field(foreign_key="school.id", primary_key=True)


class RosterClass(SQLModel, table=True):
    """Every class of the roster: advisory groups (each also an AdvisoryGroup) and subject classes, whose
    enrollments are a student's subjects (title and `subjects`, as the SIS exports them)."""

    id: int | None = Field(default=None, primary_key=True)
    sourced_id: str = Field(unique=True)
    school_id: int | None = Field(default=None, foreign_key="school.id")
    title: str
    class_type: str = ""  # OneRoster's classType: homeroom, scheduled, or a profile's own (ext:…)
    class_code: str | None = None
    subjects: str | None = None  # comma-separated, as exported
    grades: str | None = None  # comma-separated, as exported
    advisory: bool = False  # the school's advisory markers name its type or title


class Enrollment(SQLModel, table=True):
    """A person in a class of the roster, in the role the enrollment names (OneRoster's: student, teacher,
    aide, administrator, proctor). What the person is here is their own role (`person.role`), never this."""

    id: int | None = Field(default=None, primary_key=True)
    sourced_id: str = Field(unique=True)
    class_id: int = Field(foreign_key="rosterclass.id", index=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    role: str


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
    """Platform event ids already handled, per bot or workspace: a retried event changes nothing.

    `bot` is the Telegram bot's id (from its token) or the Slack workspace's id, "" for the console:
    update ids are a bot's own, so an id another bot token (or the same bot, months ago) used is new.
    """

    __table_args__ = {"sqlite_with_rowid": False}  # one b-tree written per event on SQLite (migration 0020)

    platform: str = Field(primary_key=True)
    bot: str = Field(default="", primary_key=True, sa_column_kwargs={"server_default": ""})
    event_id: str = Field(primary_key=True)
    received_at: datetime = Field(default_factory=utcnow)


class Inbox(SQLModel, table=True):
    """An event a platform sent, stored before the platform is told it arrived, until it is handled.

    `payload` is the translated `Inbound` (JSON: the person's words, their button, their form);
    `extra` what the channel still fetches before the engine hears of it (a file to download, the
    DM channel to open, the e-mail to look up). The row is deleted once the engine has handled the
    event; a row that keeps failing stays as 'failed'. `sender` is the platform's user id: each
    sender's events are handled one at a time, in `id` order.
    """

    __table_args__ = (UniqueConstraint("platform", "bot", "event_id"),)
    id: int | None = Field(default=None, primary_key=True)
    platform: str
    bot: str = ""
    event_id: str
    sender: str
    payload: str  # JSON: the Inbound
    extra: str | None = None  # JSON: what the channel fetches before handling
    status: str = "pending"  # pending, failed
    attempts: int = 0
    not_before: datetime | None = None
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    error: str | None = None  # the kind of the last failure (an exception's type: never the words)
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
    parts: str | None = None  # JSON: {"image" | "document": {"file": a file reference, "caption": a template}}
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


class SendPace(SQLModel, table=True):
    """A platform's sending budget shared by every `serve` process (PostgreSQL; core/delivery/budget.py).

    One row per bot (`chat_id` "") and one per chat that got a message lately. Times are seconds
    since the epoch on the database's clock, the one clock every process shares: `next_slot` is the
    bot's next send slot to hand out, `next_send` when a chat may get its next message: a second after
    its last send ended, or a minute on while that send is in flight (the rows less than a second past
    the end of their send are the bot's sliding window), `paused_until` the end of a 429's retry-after
    on the bot.
    """

    platform: str = Field(primary_key=True)
    bot: str = Field(primary_key=True)
    chat_id: str = Field(primary_key=True)
    next_slot: float = 0.0
    next_send: float = 0.0
    paused_until: float = 0.0


class InviteCode(SQLModel, table=True):
    code: str = Field(primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    used_at: datetime | None = None
    used_by: int | None = Field(default=None, foreign_key="chatidentity.id")
    # Issued by an adult (`companion invites --reissue`): it may replace the person's account on the
    # platform where it is redeemed, whose old account is unlinked and told so.
    reissued: bool = False


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
    file_key: str | None = None  # the copy in the file store (core/domain/files.py), for a photo or file
    created_at: datetime = Field(default_factory=utcnow)


class StoredFile(SQLModel, table=True):
    """A file in the database kind of the file store (core/domain/files.py): what a student sent, or a school."""

    key: str = Field(primary_key=True)
    person_id: int | None = Field(default=None, foreign_key="person.id", index=True)  # whose evidence it is
    name: str
    mime: str
    size: int
    data: bytes
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
    """Words of a student that may mean they are in danger: one alert per message, until an adult acts.

    Open until someone records what was done (`closed_at`); unacknowledged, it goes to the
    school's escalation contacts at `escalate_at`, again each window (`escalations` counts them).
    """

    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    category: str  # the concerns, comma-separated (suicidal_ideation, abuse_neglect, …)
    text: str
    created_at: datetime = Field(default_factory=utcnow)
    escalate_at: datetime | None = Field(default=None, index=True)  # None once someone said "I'm on it"
    escalations: int = 0
    acknowledged_at: datetime | None = None
    acknowledged_by: int | None = Field(default=None, foreign_key="person.id")
    closed_at: datetime | None = None


class AdultAction(SQLModel, table=True):
    """What an adult did about something: who, when, what, a note, on what (an alert, a help request…).

    `actor_id` is None for what the system did on the adults' behalf (an escalation sent).
    """

    id: int | None = Field(default=None, primary_key=True)
    actor_id: int | None = Field(default=None, foreign_key="person.id")
    student_id: int | None = Field(default=None, foreign_key="person.id", index=True)
    subject: str  # the table of what it is about: safetyalert, helprequest, flag
    subject_id: int | None = None
    action: str  # on_it, resolved, escalated, followed_up, …
    note: str | None = None
    at: datetime = Field(default_factory=utcnow)


class DeleteRequest(SQLModel, table=True):
    """A student asked in chat (/delete) for their data to be deleted; `companion forget` carries it out."""

    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    platform: str
    requested_at: datetime = Field(default_factory=utcnow)


class Tombstone(SQLModel, table=True):
    """A forgotten person: a hash of their roster id, so a re-import does not bring them back unasked."""

    key: str = Field(primary_key=True)  # core.school.privacy.tombstone_key(sourced_id)
    forgotten_at: datetime = Field(default_factory=utcnow)


class JobRun(SQLModel, table=True):
    """The last run of each background job (the retention sweep, …), for `companion status`."""

    name: str = Field(primary_key=True)
    started_at: datetime
    finished_at: datetime | None = None
    ok: bool = True
    detail: str = "{}"  # JSON: counts, never personal data


class CalendarEvent(SQLModel, table=True):
    """A term, grading period, closure, exam week or early dismissal of a school (core/school/calendar.py).

    `source` says where it came from: "roster" (the roster's academicSessions.csv), a calendar
    file's name, or a calendar's URL; each import replaces the rows of its own source only. Terms
    and grading periods from the roster win over a calendar's. "" marks rows from before sources
    were kept: the next calendar import takes them over.
    """

    __table_args__ = (UniqueConstraint("school_id", "source", "uid"),)
    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id")
    source: str = Field(default="", sa_column_kwargs={"server_default": ""})
    uid: str  # the event's UID (derived when it has none; "UID#YYYYMMDD" for one day of a repeating event)
    kind: str
    title: str
    starts_on: date
    ends_on: date  # the last day (inclusive); a grading period's end triggers report-card reflection
    updated_at: datetime = Field(default_factory=utcnow)


class CalendarFeed(SQLModel, table=True):
    """A calendar published at a URL (`companion calendar import URL`), re-imported daily by `serve`.

    A failed fetch or a file that cannot be read keeps the last good calendar: `last_error` says why.
    """

    __table_args__ = (UniqueConstraint("school_id", "url"),)
    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id")
    url: str
    holidays: bool = False  # a holiday list: every all-day event is a closure
    next_fetch_at: datetime = Field(index=True)
    last_ok_at: datetime | None = None
    last_error: str | None = None
    etag: str | None = None  # the server's, for a conditional GET
    last_modified: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
