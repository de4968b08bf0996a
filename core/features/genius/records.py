"""The genius-hour project record: one active project per student and term, its milestones,
weekly check-ins and evidence; and the reads other views make of it.

A project moves through the six Ps as its `stage`:

    pitch ─► plan ─► project ─► product ─► presentation ─► done
    (passion and pitch; approval)  (weekly check-ins)  (date, audience, then the reflection)

A finished or dropped project keeps its rows (`status`), so a student's history stays whole.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from enum import StrEnum

from sqlmodel import Field, SQLModel

from core.domain.models import utcnow
from core.domain.store import Tx, as_moment


class Stage(StrEnum):
    pitch = "pitch"  # passion and pitch, until the pitch is approved (or needs no approval)
    plan = "plan"  # milestones with dates
    project = "project"  # weekly check-ins, milestones done one by one
    product = "product"  # what was made, with evidence
    presentation = "presentation"  # a date and an audience; after it, the reflection
    done = "done"


class Approval(StrEnum):
    pending = "pending"
    approved = "approved"
    changes = "changes"  # the adviser asked for changes (their comment is kept)
    not_required = "not_required"  # the school does not ask for approval


class GeniusProject(SQLModel, table=True):
    """A passion project: the pitch, its approval, the product and the presentation."""

    __tablename__ = "geniusproject"
    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    status: str = "active"  # active, finished, dropped
    stage: str = Stage.pitch
    term_ends_on: date | None = None  # the last day of the term it belongs to, when the calendar knows it
    passion: str
    question: str | None = None  # the driving question
    why: str | None = None  # why it matters
    audience: str | None = None  # who it is for
    approval: str | None = None  # see Approval; who decided is an `adultaction` row
    approval_comment: str | None = None
    product: str | None = None  # what was made
    presentation_on: date | None = None
    presentation_audience: str | None = None
    learned: str | None = None  # the reflection after the presentation
    differently: str | None = None
    proud: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class GeniusMilestone(SQLModel, table=True):
    """A step of the plan with its date; `done_on` once the student says so."""

    __tablename__ = "geniusmilestone"
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="geniusproject.id", index=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    position: int
    text: str
    due_on: date
    done_on: date | None = None


class GeniusCheckin(SQLModel, table=True):
    """A weekly project check-in: what moved, the next step, a blocker, and whether help was asked for."""

    __tablename__ = "geniuscheckin"
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="geniusproject.id", index=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    progress: str
    next_step: str
    blocker: str | None = None
    help_request_id: int | None = Field(default=None, foreign_key="helprequest.id")
    created_at: datetime = Field(default_factory=utcnow)


class GeniusEvidence(SQLModel, table=True):
    """An artifact (a link, photo or file in the portfolio) that is evidence of a project."""

    __tablename__ = "geniusevidence"
    artifact_id: int = Field(foreign_key="artifact.id", primary_key=True)
    project_id: int = Field(foreign_key="geniusproject.id", index=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    checkin_id: int | None = Field(default=None, foreign_key="geniuscheckin.id")
    milestone_id: int | None = Field(default=None, foreign_key="geniusmilestone.id")
    stage: str  # the stage it was shared in: project (a check-in) or product


PERSON_TABLES = ("geniusproject", "geniusmilestone", "geniuscheckin", "geniusevidence")
COLUMNS = ("id", "person_id", "status", "stage", "term_ends_on", "passion", "question", "why", "audience",
           "approval", "approval_comment", "product", "presentation_on", "presentation_audience", "learned",
           "differently", "proud", "created_at", "updated_at", "finished_at")
DATES = ("term_ends_on", "presentation_on")


def _project(row: tuple | None) -> dict | None:
    if row is None:
        return None
    project = dict(zip(COLUMNS, row))
    for name in DATES:
        project[name] = Tx.as_date(project[name])
    for name in ("created_at", "updated_at", "finished_at"):
        project[name] = as_moment(project[name])
    return project


def active_project(tx: Tx, person_id: int) -> dict | None:
    """The student's project in progress, if any."""
    return _project(tx.one(f"SELECT {', '.join(COLUMNS)} FROM geniusproject WHERE person_id = ? AND status = 'active' "
                           "ORDER BY id DESC LIMIT 1", (person_id,)))


def latest_project(tx: Tx, person_id: int) -> dict | None:
    """The project in progress, else the newest finished or dropped one."""
    return _project(tx.one(f"SELECT {', '.join(COLUMNS)} FROM geniusproject WHERE person_id = ? "
                           "ORDER BY status = 'active' DESC, id DESC LIMIT 1", (person_id,)))


def project_by_id(tx: Tx, project_id: int) -> dict | None:
    return _project(tx.one(f"SELECT {', '.join(COLUMNS)} FROM geniusproject WHERE id = ?", (project_id,)))


def update(tx: Tx, project_id: int, now: datetime, **values: object) -> None:
    """Change some columns of a project (names from COLUMNS only)."""
    unknown = set(values) - set(COLUMNS)
    if unknown:
        raise ValueError(f"not columns of geniusproject: {sorted(unknown)}")
    assignments = ", ".join(f"{name} = ?" for name in values)
    params = [tx.day(value) if name in DATES else value.value if isinstance(value, StrEnum) else value
              for name, value in values.items()]
    tx.execute(f"UPDATE geniusproject SET {assignments}, updated_at = ? WHERE id = ?",
               (*params, tx.ts(now), project_id))


def milestones(tx: Tx, project_id: int) -> list[dict]:
    rows = tx.rows("SELECT id, position, text, due_on, done_on FROM geniusmilestone WHERE project_id = ? "
                   "ORDER BY position, id", (project_id,))
    return [{**row, "due_on": Tx.as_date(row["due_on"]), "done_on": Tx.as_date(row["done_on"])} for row in rows]


def open_milestones(tx: Tx, project_id: int) -> list[dict]:
    return [milestone for milestone in milestones(tx, project_id) if milestone["done_on"] is None]


def checkins(tx: Tx, project_id: int, limit: int = 3) -> list[dict]:
    """The newest check-ins first."""
    rows = tx.rows("SELECT id, progress, next_step, blocker, help_request_id, created_at FROM geniuscheckin "
                   "WHERE project_id = ? ORDER BY id DESC LIMIT ?", (project_id, limit))
    return [{**row, "created_at": as_moment(row["created_at"])} for row in rows]


def evidence(tx: Tx, project_id: int) -> list[dict]:
    """The project's evidence timeline, oldest first: what each artifact is and when it came."""
    rows = tx.rows("SELECT a.id, a.kind, a.ref, a.caption, a.file_key, a.created_at, e.stage, e.checkin_id, "
                   "m.text AS milestone FROM geniusevidence e JOIN artifact a ON a.id = e.artifact_id "
                   "LEFT JOIN geniusmilestone m ON m.id = e.milestone_id WHERE e.project_id = ? "
                   "ORDER BY a.created_at, a.id", (project_id,))
    return [{**row, "created_at": as_moment(row["created_at"])} for row in rows]


def claim_evidence(tx: Tx, person_id: int, project_id: int, since: datetime, stage: str,
                   checkin_id: int | None = None, milestone_id: int | None = None) -> int:
    """Tie the artifacts the student shared since `since` (and not yet tied to a project) to this one."""
    cursor = tx.execute(
        "INSERT INTO geniusevidence (artifact_id, project_id, person_id, checkin_id, milestone_id, stage) "
        "SELECT a.id, ?, ?, ?, ?, ? FROM artifact a WHERE a.person_id = ? AND a.created_at >= ? AND a.goal_id IS NULL "
        "AND NOT EXISTS (SELECT 1 FROM geniusevidence e WHERE e.artifact_id = a.id)",
        (project_id, person_id, checkin_id, milestone_id, stage, person_id, tx.ts(since)))
    return cursor.rowcount


def project_summary(tx: Tx, person_id: int) -> dict | None:
    """What a view shows of a student's project (the student's own `/project`, `/plan`, an adviser's list):
    the project, its milestones, the newest check-in and the evidence."""
    project = latest_project(tx, person_id)
    if project is None:
        return None
    recent = checkins(tx, project["id"], limit=1)
    return {**project, "milestones": milestones(tx, project["id"]), "last_checkin": recent[0] if recent else None,
            "evidence": evidence(tx, project["id"])}


def overviews(tx: Tx, student_ids: list[int]) -> dict[int, dict]:
    """Each student's active project as an adviser sees it: stage, approval, last check-in and its blocker."""
    found: dict[int, dict] = {}
    if not student_ids:
        return found
    marks = ", ".join("?" * len(student_ids))
    for row in tx.rows(
            "SELECT p.person_id, p.id, p.stage, p.passion, p.question, p.approval, c.created_at AS last_checkin, "
            "c.blocker FROM geniusproject p LEFT JOIN geniuscheckin c ON c.id = (SELECT MAX(id) FROM geniuscheckin "
            f"WHERE project_id = p.id) WHERE p.status = 'active' AND p.person_id IN ({marks})", tuple(student_ids)):
        row["last_checkin"] = as_moment(row["last_checkin"]).date() if row["last_checkin"] else None
        found[row.pop("person_id")] = row
    return found


# -- the adviser digest: triage reasons and highlights ------------------------------------------------

BLOCKED_RUN = 2  # a blocker in this many check-ins running makes a project blocked
MISSED_AFTER = timedelta(days=1)  # a check-in nudge unanswered this long after it went out is missed


def _in(student_ids: list[int]) -> str:
    return ", ".join("?" * len(student_ids))


def blocked_projects(tx: Tx, student_ids: list[int], today: date) -> dict[int, dict]:
    """Students whose newest check-ins all name a blocker, two or more running: how many, since, the newest blocker."""
    found: dict[int, dict] = {}
    if not student_ids:
        return found
    runs: dict[int, list[dict]] = {}
    for row in tx.rows("SELECT c.person_id, c.blocker, c.created_at FROM geniuscheckin c JOIN geniusproject p "
                       f"ON p.id = c.project_id AND p.status = 'active' WHERE c.person_id IN ({_in(student_ids)}) "
                       "ORDER BY c.person_id, c.id DESC", tuple(student_ids)):
        runs.setdefault(row["person_id"], []).append(row)
    for person_id, rows in runs.items():
        run = []
        for row in rows:
            if not row["blocker"]:
                break
            run.append(row)
        if len(run) >= BLOCKED_RUN:
            found[person_id] = {"count": len(run), "since": as_moment(run[-1]["created_at"]).date(),
                                "blocker": run[0]["blocker"]}
    return found


def missed_checkins(tx: Tx, student_ids: list[int], now: datetime) -> dict[int, dict]:
    """Students with an active project who left project check-in nudges unanswered: how many, since when."""
    found: dict[int, dict] = {}
    if not student_ids:
        return found
    for row in tx.rows(
            "SELECT n.person_id, COUNT(*) AS missed, MIN(n.due_at) AS since FROM nudge n JOIN geniusproject p "
            "ON p.person_id = n.person_id AND p.status = 'active' AND p.stage = 'project' "
            f"WHERE n.kind = 'project_checkin' AND n.status = 'sent' AND n.due_at <= ? AND n.due_at >= p.updated_at "
            f"AND n.person_id IN ({_in(student_ids)}) AND NOT EXISTS (SELECT 1 FROM geniuscheckin c "
            "WHERE c.project_id = p.id AND c.created_at >= n.due_at) GROUP BY n.person_id",
            (tx.ts(now - MISSED_AFTER), *student_ids)):
        found[row["person_id"]] = {"missed": row["missed"], "since": as_moment(row["since"]).date()}
    return found


def pitches_waiting(tx: Tx, student_ids: list[int]) -> dict[int, dict]:
    """Students whose pitch waits for an adviser's approval: the question, and since when."""
    found: dict[int, dict] = {}
    if not student_ids:
        return found
    for row in tx.rows("SELECT person_id, question, updated_at FROM geniusproject WHERE status = 'active' "
                       f"AND approval = 'pending' AND person_id IN ({_in(student_ids)})", tuple(student_ids)):
        found[row["person_id"]] = {"question": row["question"], "since": as_moment(row["updated_at"]).date()}
    return found


def milestones_done(tx: Tx, student_ids: list[int], today: date) -> dict[int, list[dict]]:
    """Milestones done in the last seven days."""
    found: dict[int, list[dict]] = {}
    if not student_ids:
        return found
    for row in tx.rows(f"SELECT person_id, text, done_on FROM geniusmilestone WHERE person_id IN ({_in(student_ids)}) "
                       "AND done_on > ? AND done_on <= ? ORDER BY done_on, id",
                       (*student_ids, tx.day(today - timedelta(days=7)), tx.day(today))):
        found.setdefault(row["person_id"], []).append({"milestone": row["text"], "on": Tx.as_date(row["done_on"])})
    return found


def presentations_given(tx: Tx, student_ids: list[int], today: date) -> dict[int, list[dict]]:
    """Projects presented (and reflected on) in the last seven days."""
    found: dict[int, list[dict]] = {}
    if not student_ids:
        return found
    for row in tx.rows("SELECT person_id, question, passion, presentation_audience FROM geniusproject "
                       f"WHERE status = 'finished' AND person_id IN ({_in(student_ids)}) AND presentation_on > ? "
                       "AND presentation_on <= ?", (*student_ids, tx.day(today - timedelta(days=7)), tx.day(today))):
        found.setdefault(row["person_id"], []).append(
            {"question": row["question"] or row["passion"], "audience": row["presentation_audience"]})
    return found
