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


def alert_recipients(tx: Tx, student_id: int) -> list[tuple[int, str, str, str | None]]:
    """The chat accounts of a student's advisers and their school's counselors: (person, platform, chat, locale)."""
    return tx.all(
        "SELECT DISTINCT p.id, i.platform, i.chat_id, COALESCE(p.locale, s.locale) FROM person p "
        "JOIN chatidentity i ON i.person_id = p.id LEFT JOIN school s ON s.id = p.school_id "
        "WHERE p.id IN (SELECT a.person_id FROM advisorymember a JOIN advisorymember m "
        "ON m.group_id = a.group_id WHERE m.person_id = ? AND a.role = 'adviser') "
        "OR (p.role = 'counselor' AND p.school_id = (SELECT school_id FROM person WHERE id = ?))",
        (student_id, student_id))
