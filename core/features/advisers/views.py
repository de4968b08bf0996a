"""What an adult looks at: the advisees list (each one's week at a glance) and one student's summary.

Both ask `core.domain.access` who may be seen; neither scopes students itself.
"""

from __future__ import annotations

from datetime import date

from rapidfuzz import fuzz, utils

from core.domain import access
from core.domain.store import Tx
from core.engine.flow import plain
from core.engine.registry import Registry
from core.render.templates import Catalog
from core.features import checkin, reflection
from core.features.advisers.digest import entry_context, suggestions
from core.features.advisers.triage import Entry, highlights_of, marks, reasons_of

MATCH_CUTOFF = 75  # a name typed with a slip ("Mario Gomes") still finds "Mario Gómez"
CLOSE = 8  # a runner-up this close to the best match means the adult should pick


def week_at_a_glance(tx: Tx, students: list[dict], week: date, today: date) -> list[dict]:
    """Each student's week in fields a template says in plain words: goals set, review done, paused,
    stopped, consent declined, not linked or reachable, open alerts (and who is on them) and help requests."""
    ids = [student["id"] for student in students]
    if not ids:
        return []
    rows = {row["id"]: row for row in tx.rows(
        "SELECT p.id, p.status, p.consent_at IS NOT NULL AS consented, p.paused_until, "
        "EXISTS (SELECT 1 FROM chatidentity i WHERE i.person_id = p.id) AS linked, "
        "(SELECT COUNT(*) FROM goal g WHERE g.person_id = p.id AND g.week_start = ? AND g.status != 'dropped') AS goals, "
        "EXISTS (SELECT 1 FROM goalreview r JOIN goal g ON g.id = r.goal_id WHERE r.person_id = p.id "
        "AND g.week_start = ?) AS reviewed "
        f"FROM person p WHERE p.id IN ({marks(ids)})", (tx.day(week), tx.day(week), *ids))}
    alerts, helps = open_items(tx, ids, today)
    listing = []
    for student in students:
        row = rows[student["id"]]
        paused = tx.as_date(row["paused_until"])
        listing.append({
            "id": student["id"], "given_name": student["given_name"], "family_name": student["family_name"],
            "goals": row["goals"], "reviewed": bool(row["reviewed"]),
            "paused_until": paused.isoformat() if paused and paused > today else None,
            "stopped": row["status"] == "stopped" and bool(row["consented"]),
            "declined": row["status"] == "stopped" and not row["consented"] and bool(row["linked"]),
            "linked": bool(row["linked"]), "unreachable": bool(student["unreachable"]),
            "alerts": alerts.get(student["id"], []), "help_requests": helps.get(student["id"], [])})
    return listing


def open_items(tx: Tx, ids: list[int], today: date) -> tuple[dict[int, list[dict]], dict[int, list[dict]]]:
    """The students' open safety alerts (their concerns, who is on each) and the help requests nobody handled yet
    (their words, how many days ago), by student; a student with none is left out."""
    alerts: dict[int, list[dict]] = {}
    if ids:
        for row in tx.rows("SELECT a.id, a.person_id, a.category, o.given_name AS on_it FROM safetyalert a "
                           "LEFT JOIN person o ON o.id = a.acknowledged_by "
                           f"WHERE a.closed_at IS NULL AND a.person_id IN ({marks(ids)}) ORDER BY a.id", ids):
            alerts.setdefault(row.pop("person_id"), []).append(
                {"id": row["id"], "concerns": row["category"].split(","), "on_it": row["on_it"]})
    helps = {student: [{"id": request["id"], "text": request["obstacle"],
                        "days": (today - request["asked_at"].date()).days} for request in requests]
             for student, requests in checkin.open_help_requests(tx, ids).items() if requests}
    return alerts, helps


def with_open_items(tx: Tx, students: list[dict], today: date) -> list[dict]:
    """Only the students with an open safety alert or help request, each with them (what `/alerts` lists)."""
    alerts, helps = open_items(tx, [student["id"] for student in students], today)
    return [{**{key: student[key] for key in ("id", "given_name", "family_name")},
             "alerts": alerts.get(student["id"], []), "help_requests": helps.get(student["id"], [])}
            for student in students if student["id"] in alerts or student["id"] in helps]


def name_words(text: str) -> list[str]:
    """A name as comparable words: no case, accents or punctuation ("Álvarez-Núñez" → alvarez nunez)."""
    return plain(utils.default_process(text)).split()


def name_score(typed: list[str], name: list[str]) -> float:
    """How well the typed words fit a name: each typed word against its best name word (a prefix counts as whole;
    else the edit similarity, so "alvares" finds "Álvarez"); the worst-fitting typed word decides."""
    return min(max(100.0 if part.startswith(word) else fuzz.ratio(word, part) for part in name) for word in typed)


def find_students(tx: Tx, viewer_id: int | None, words: str) -> list[dict]:
    """The students `viewer_id` may see whose name best fits `words`: one, several to pick from, or none."""
    students = access.visible_students(tx, viewer_id, access.View.summary)
    words = words.strip()
    if words.lstrip("#").isdigit():  # a button's payload names the student by id
        return [student for student in students if student["id"] == int(words.lstrip("#"))]
    typed = name_words(words)
    if not typed:
        return []
    scored = [(name_score(typed, name_words(f"{s['given_name']} {s['family_name']}") or [""]), s) for s in students]
    fitting = [(score, student) for score, student in scored if score >= MATCH_CUTOFF]
    if not fitting:
        return []
    best = max(score for score, _ in fitting)
    return [student for score, student in sorted(fitting, key=lambda pair: -pair[0]) if score >= best - CLOSE]


def summary(tx: Tx, registry: Registry, student: dict, today: date, catalog: Catalog, locale: str) -> dict:
    """The teacher's four questions about one student: something personal (what they chose to share),
    passions and aims, strengths, what they are working on; with their reasons in triage, highlights,
    and a suggestion."""
    sid = student["id"]
    profile = next(tx.rows("SELECT strengths, needs, interests, aim FROM learnerprofile WHERE person_id = ?", (sid,)),
                   {"strengths": None, "needs": None, "interests": None, "aim": None})
    shared = reflection.reflections_for(tx, [sid], access.Viewer.adviser).get(sid)  # only what they let adults see
    goals = [row["text"] for row in tx.rows(
        "SELECT text FROM goal WHERE person_id = ? AND status = 'open' ORDER BY week_start DESC, id LIMIT 3", (sid,))]
    found = reasons_of(tx, registry, [sid], today).get(sid, [])
    entry = entry_context(Entry(student, found), today, suggestions(tx, [sid], today)[sid], catalog, locale)
    return {"student": {key: student[key] for key in ("id", "given_name", "family_name")},
            "personal": profile["needs"], "message": shared["message"] if shared else None,
            "period": shared["period"] if shared else None, "interests": profile["interests"], "aim": profile["aim"],
            "strengths": profile["strengths"], "goals": goals, "reasons": entry["reasons"],
            "highlights": highlights_of(tx, registry, [student], today, catalog, locale).get(sid, []),
            "suggestion": entry["suggestion"]}

