"""Who may see whom: the one place that scopes which students a person may see, in which view.

| viewer | sees |
|---|---|
| a student | only themself (their own summary, portfolio, export) |
| an adviser | their own advisees (the students of the advisory groups they advise), in every view |
| a counselor | every student of their school, for safety alerts and summaries |
| a school administrator in chat (role admin) | their school's students, for alerts, class figures and summaries |
| the operator at the `companion` command line (no viewer) | everyone |

A safety alert about a student goes to that student's advisers and to the counselors of their
school. Students who left the roster are out of every adult's view (the operator still sees them).
An answer a student marked private ("only me") is shown to nobody else (`audience_allows`).
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import Index

from core.domain.models import AdvisoryMember, Role
from core.domain.store import Tx

# Every scope starts from the adviser's own memberships: found by person, not by walking every group.
Index("ix_advisorymember_person_id", AdvisoryMember.person_id)

ADVISEES = ("SELECT DISTINCT m.person_id FROM advisorymember m JOIN advisorymember a ON a.group_id = m.group_id "
            "AND a.role = 'adviser' WHERE m.role = 'student' AND a.person_id = ?")


class View(StrEnum):
    """What a person looks at about students."""

    students = "students"  # the advisees list (/students, the App Home)
    summary = "summary"  # one student's summary (/student NAME, the App Home's modal)
    digest = "digest"  # the weekly triage digest
    home = "home"  # the Slack App Home dashboard
    alerts = "alerts"  # safety alerts and help requests, and acting on them
    figures = "figures"  # class figures and the chart
    portfolio = "portfolio"
    export = "export"


ALL_VIEWS = frozenset(View)
# For each adult role: how far it sees, and in which views. A student sees only themself, in every view.
SCOPES: dict[str, tuple[str, frozenset[View]]] = {
    Role.adviser: ("advisees", ALL_VIEWS),
    Role.counselor: ("school", frozenset({View.alerts, View.summary})),
    Role.admin: ("school", frozenset({View.alerts, View.figures, View.summary})),
}
PRIVATE = "me"  # an answer the student kept for themself


def _scope(tx: Tx, viewer_id: int | None, view: View) -> tuple[str, tuple]:
    """The SQL condition on `p` (a student's person row) for what `viewer_id` may see in `view`."""
    if viewer_id is None:  # the operator at the command line
        return "p.role = 'student'", ()
    row = tx.one("SELECT role, school_id FROM person WHERE id = ? AND status != 'inactive' AND left_on IS NULL",
                 (viewer_id,))
    role, school_id = row if row else (None, None)
    if role == Role.student:
        return "p.id = ?", (viewer_id,)
    reach, views = SCOPES.get(role, ("", frozenset()))
    if View(view) not in views:
        return "1 = 0", ()
    current = "p.role = 'student' AND p.left_on IS NULL"
    if reach == "advisees":
        return f"{current} AND p.id IN ({ADVISEES})", (viewer_id,)
    return f"{current} AND p.school_id = ?", (school_id,)


def visible_ids(tx: Tx, viewer_id: int | None, view: View) -> list[int]:
    """The students `viewer_id` (None: the operator) may see in `view`, by id."""
    where, params = _scope(tx, viewer_id, view)
    return [row[0] for row in tx.all(f"SELECT p.id FROM person p WHERE {where} ORDER BY p.id", params)]


def may_see(tx: Tx, viewer_id: int | None, student_id: int, view: View) -> bool:
    """May `viewer_id` (None: the operator) see this student in `view`?"""
    where, params = _scope(tx, viewer_id, view)
    return tx.one(f"SELECT 1 FROM person p WHERE p.id = ? AND {where}", (student_id, *params)) is not None


def visible_students(tx: Tx, viewer_id: int | None, view: View) -> list[dict]:
    """The students `viewer_id` may see in `view`, by family name, as the roster has them, with whether the
    bot can still reach them."""
    where, params = _scope(tx, viewer_id, view)
    return list(tx.rows(
        "SELECT p.id, p.given_name, p.family_name, p.school_id, EXISTS (SELECT 1 FROM chatidentity i "
        "WHERE i.person_id = p.id AND i.unreachable) AND NOT EXISTS (SELECT 1 FROM chatidentity i "
        "WHERE i.person_id = p.id AND NOT i.unreachable) AS unreachable "
        f"FROM person p WHERE {where} ORDER BY p.family_name, p.given_name, p.id", params))


class Audience(StrEnum):
    """Who a student lets see an answer (a reflection's, SPEC §2): one choice per answer."""

    me = PRIVATE  # only me
    adviser = "adviser"  # my adviser (and the adults who may see me), not my family
    family = "family"  # my adviser and my family (the conference portfolio's audience)


class Viewer(StrEnum):
    """Who is looking at a student's answers."""

    student = "student"  # the student themself
    adviser = "adviser"  # an adult who may see the student (an adviser's views, the digest)
    family = "family"  # the student's family (the conference portfolio)


AUDIENCES_SEEN: dict[str, frozenset[str]] = {
    Viewer.student: frozenset(Audience),
    Viewer.adviser: frozenset({Audience.adviser, Audience.family}),
    Viewer.family: frozenset({Audience.family}),
}


def audience_allows(audience: str | None, viewer: str) -> bool:
    """May `viewer` see an answer the student gave `audience`? (No audience stored: only the student.)"""
    return (audience or PRIVATE) in AUDIENCES_SEEN[Viewer(viewer)]


def advisees(tx: Tx, adviser_id: int) -> list[dict]:
    """An adviser's students, by family name, with whether the bot can still reach them."""
    return list(tx.rows(
        "SELECT p.id, p.given_name, p.family_name, EXISTS (SELECT 1 FROM chatidentity i WHERE i.person_id = p.id "
        f"AND i.unreachable) AS unreachable FROM person p WHERE p.id IN ({ADVISEES}) "
        "ORDER BY p.family_name, p.given_name, p.id", (adviser_id,)))


def alert_recipients(tx: Tx, student_id: int) -> list[tuple[int, str, str, str | None, str]]:
    """The reachable chat accounts of a student's advisers and their school's counselors:
    (person, platform, chat, locale, role)."""
    return tx.all(
        "SELECT DISTINCT p.id, i.platform, i.chat_id, COALESCE(p.locale, s.locale), p.role FROM person p "
        "JOIN chatidentity i ON i.person_id = p.id AND i.unreachable = ? LEFT JOIN school s ON s.id = p.school_id "
        "WHERE p.status = 'active' AND p.left_on IS NULL AND (p.id IN (SELECT a.person_id FROM advisorymember a JOIN advisorymember m "
        "ON m.group_id = a.group_id WHERE m.person_id = ? AND a.role = 'adviser') "
        "OR (p.role = 'counselor' AND p.school_id = (SELECT school_id FROM person WHERE id = ?)))",
        (False, student_id, student_id))


def escalation_contacts(tx: Tx, school_id: int | None) -> list[tuple[int, str, str, str | None]]:
    """The chat accounts of a school's administrators, who get an alert nobody answered."""
    return tx.all(
        "SELECT DISTINCT p.id, i.platform, i.chat_id, COALESCE(p.locale, s.locale) FROM person p "
        "JOIN chatidentity i ON i.person_id = p.id AND i.unreachable = ? LEFT JOIN school s ON s.id = p.school_id "
        "WHERE p.role = 'admin' AND p.status = 'active' AND p.left_on IS NULL AND p.school_id = ?", (False, school_id))


def may_act_on_alert(tx: Tx, adult_id: int, alert_id: int) -> bool:
    """An alert's student is one of this adult's advisees, or of their school (a counselor or administrator)."""
    return tx.one(
        "SELECT 1 FROM safetyalert a JOIN person s ON s.id = a.person_id JOIN person adult ON adult.id = ? "
        f"WHERE a.id = ? AND (a.person_id IN ({ADVISEES}) OR (adult.role IN ('counselor', 'admin') "
        "AND adult.school_id = s.school_id))", (adult_id, alert_id, adult_id)) is not None
