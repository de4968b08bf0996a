"""Who may see whom: the one place that scopes an adviser's students and a student's adults.

An adviser sees only their own advisees (the students of the advisory groups they advise); a
student sees only themself; a safety alert about a student goes to that student's advisers and
to the counselors of their school.
"""

from __future__ import annotations

from core.domain.store import Tx

ADVISEES = ("SELECT DISTINCT m.person_id FROM advisorymember m JOIN advisorymember a ON a.group_id = m.group_id "
            "AND a.role = 'adviser' WHERE m.role = 'student' AND a.person_id = ?")


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
