"""Domain reads and writes the flows make, inside the engine's transaction."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from core.domain.models import Category, GoalStatus
from core.domain.store import Tx

PROFILE_FIELDS = ("strengths", "needs", "interests", "aim", "checkin_time")


def set_person(tx: Tx, person_id: int, **values: Any) -> None:
    """Update a few columns of a person (locale, timezone, status, consent_at, paused_until)."""
    columns = ", ".join(f"{name} = ?" for name in values)
    params = [tx.ts(v) if isinstance(v, datetime) else tx.day(v) if isinstance(v, date) else v
              for v in values.values()]
    tx.execute(f"UPDATE person SET {columns} WHERE id = ?", [*params, person_id])


def profile(tx: Tx, person_id: int) -> dict:
    row = tx.one(f"SELECT {', '.join(PROFILE_FIELDS)} FROM learnerprofile WHERE person_id = ?", (person_id,))
    return dict(zip(PROFILE_FIELDS, row or (None,) * len(PROFILE_FIELDS)))


def save_profile(tx: Tx, person_id: int, now: datetime, **values: Any) -> None:
    """Create or update the learner profile with the given fields."""
    unknown = set(values) - set(PROFILE_FIELDS)
    if unknown:
        raise ValueError(f"not profile fields: {unknown}")
    tx.execute("INSERT INTO learnerprofile (person_id, updated_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
               (person_id, tx.ts(now)))
    if values:
        columns = ", ".join(f"{name} = ?" for name in values)
        tx.execute(f"UPDATE learnerprofile SET {columns}, updated_at = ? WHERE person_id = ?",
                   [*values.values(), tx.ts(now), person_id])


def insert_goal(tx: Tx, person_id: int, week: date, answers: dict, now: datetime) -> int:
    """Store a goal the student finished setting up."""
    return tx.insert(
        "INSERT INTO goal (person_id, week_start, text, category, due_on, outcome, obstacle, plan, "
        "confidence, status, carried_from_id, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (person_id, tx.day(week), answers["text"], answers.get("category", Category.content_knowledge),
         answers.get("due_on"), answers.get("outcome"), answers.get("obstacle"), answers.get("plan"),
         answers.get("confidence"), GoalStatus.open, answers.get("carried_from_id"), tx.ts(now), tx.ts(now)),
    )


def goals(tx: Tx, person_id: int, where: str, params: tuple = ()) -> list[dict]:
    """The student's goals matching an SQL condition, oldest first."""
    return list(tx.rows(
        "SELECT id, week_start, text, category, due_on, status, confidence, plan FROM goal "
        f"WHERE person_id = ? AND {where} ORDER BY week_start, id", (person_id, *params)))


def unfinished_before(tx: Tx, person_id: int, week: date) -> list[dict]:
    """Goals from earlier weeks still open, partly done or not yet done: to carry forward or drop."""
    return goals(tx, person_id, "week_start < ? AND status IN (?, ?, ?)",
                 (tx.day(week), GoalStatus.open, GoalStatus.partly, GoalStatus.not_yet))


def of_week(tx: Tx, person_id: int, week: date) -> list[dict]:
    return goals(tx, person_id, "week_start = ? AND status != ?", (tx.day(week), GoalStatus.dropped))


def set_goal_status(tx: Tx, goal_id: int, status: str, now: datetime) -> None:
    tx.execute("UPDATE goal SET status = ?, updated_at = ? WHERE id = ?", (status, tx.ts(now), goal_id))


def insert_review(tx: Tx, person_id: int, goal_id: int, status: str, notes: str | None, now: datetime) -> None:
    tx.execute("INSERT INTO goalreview (goal_id, person_id, status, notes, created_at) VALUES (?, ?, ?, ?, ?)",
               (goal_id, person_id, status, notes, tx.ts(now)))
    set_goal_status(tx, goal_id, status, now)


def insert_reflection(tx: Tx, person_id: int, week: date, text: str, now: datetime, kind: str = "week") -> None:
    tx.execute("INSERT INTO reflection (person_id, kind, week_start, text, created_at) VALUES (?, ?, ?, ?, ?)",
               (person_id, kind, tx.day(week), text, tx.ts(now)))


def review_streak(tx: Tx, person_id: int, week: date) -> int:
    """Consecutive weeks, ending with `week`, in which the student reflected on their week."""
    weeks = {tx.as_date(row[0]) for row in tx.all(
        "SELECT DISTINCT week_start FROM reflection WHERE person_id = ? AND kind = 'week'", (person_id,))}
    streak = 0
    while week - timedelta(weeks=streak) in weeks:
        streak += 1
    return streak


def progress_by_category(tx: Tx, person_id: int) -> dict[str, dict[str, int]]:
    """Goals set and goals done in each of the four categories, over the whole plan."""
    counts = {category.value: {"set": 0, "done": 0} for category in Category}
    for category, status, n in tx.all(
            "SELECT category, status, COUNT(*) FROM goal WHERE person_id = ? AND status != ? "
            "GROUP BY category, status", (person_id, GoalStatus.dropped)):
        if category in counts:
            counts[category]["set"] += n
            if status == GoalStatus.done:
                counts[category]["done"] += n
    return counts
