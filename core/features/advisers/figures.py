"""Class figures for a set of students: how many set goals, reviewed, finished, by category, week by week.

The digest reports the last week that has mostly happened (`reported_week`): sent on a Monday
morning it speaks of the week before; sent on a Thursday or later, of the current one. The chart
shows the eight weeks ending there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from core.domain import dates
from core.domain.models import Category
from core.domain.store import Tx
from core.features.advisers.triage import WEEK, marks
from core.render.charts import Series

CHART_WEEKS = 8
MOSTLY_GONE = timedelta(days=3)  # from Thursday on, the current week is the one to report


def reported_week(today: date) -> date:
    return dates.week_start(today - MOSTLY_GONE)


@dataclass(frozen=True)
class Week:
    """One week of a class: students who set goals, who reviewed, and the goals and how many were done."""

    start: date
    set: int = 0
    reviewed: int = 0
    goals: int = 0
    done: int = 0

    def as_context(self) -> dict:
        return {"week": self.start.isoformat(), "set": self.set, "reviewed": self.reviewed, "goals": self.goals,
                "done": self.done}


def weeks_of(tx: Tx, ids: list[int], last: date, count: int = CHART_WEEKS) -> list[Week]:
    """The `count` weeks ending with the week starting `last`, oldest first."""
    first = last - (count - 1) * WEEK
    found: dict[date, dict] = {first + n * WEEK: {} for n in range(count)}
    if ids:
        for week, setters, goals, done in tx.all(
                "SELECT week_start, COUNT(DISTINCT person_id), COUNT(*), SUM(CASE WHEN status = 'done' THEN 1 ELSE 0 END) "
                f"FROM goal WHERE week_start >= ? AND week_start <= ? AND person_id IN ({marks(ids)}) "
                "GROUP BY week_start", (tx.day(first), tx.day(last), *ids)):
            found[tx.as_date(week)].update(set=setters, goals=goals, done=done or 0)
        for week, reviewed in tx.all(
                "SELECT g.week_start, COUNT(DISTINCT r.person_id) FROM goalreview r JOIN goal g ON g.id = r.goal_id "
                f"WHERE g.week_start >= ? AND g.week_start <= ? AND r.person_id IN ({marks(ids)}) GROUP BY g.week_start",
                (tx.day(first), tx.day(last), *ids)):
            found[tx.as_date(week)]["reviewed"] = reviewed
    return [Week(start, **values) for start, values in found.items()]


def by_category(tx: Tx, ids: list[int], week: date) -> list[dict]:
    """Goals set and done in each of the four categories, this week and the week before."""
    counts = {(category, when): [0, 0] for category in Category for when in ("this", "last")}
    if ids:
        for start, category, goals, done in tx.all(
                # a range, not IN (…): with an equality the planner walks the whole week's goals of the school
                "SELECT week_start, category, COUNT(*), SUM(CASE WHEN status = 'done' THEN 1 ELSE 0 END) FROM goal "
                f"WHERE week_start >= ? AND week_start <= ? AND person_id IN ({marks(ids)}) GROUP BY week_start, category",
                (tx.day(week - WEEK), tx.day(week), *ids)):
            key = (category, "this" if tx.as_date(start) == week else "last")
            if key in counts:
                counts[key] = [goals, done or 0]
    return [{"category": str(category), "goals": counts[category, "this"][0], "done": counts[category, "this"][1],
             "last_goals": counts[category, "last"][0], "last_done": counts[category, "last"][1]}
            for category in Category]


def class_figures(tx: Tx, ids: list[int], today: date) -> tuple[dict, list[Week]]:
    """The figures a template reads (this week against last, by category) and the chart's weeks."""
    week = reported_week(today)
    history = weeks_of(tx, ids, week)
    return ({"students": len(ids), "this": history[-1].as_context(), "last": history[-2].as_context(),
             "categories": by_category(tx, ids, week)}, history)


def percent(part: int, whole: int) -> float:
    return round(100 * part / whole, 1) if whole else 0.0


def chart_series(history: list[Week], students: int, labels: dict[str, str]) -> list[Series]:
    """The chart's lines: % of the class who set goals, who reviewed, and % of goals done."""
    return [Series(labels["set"], tuple(percent(week.set, students) for week in history)),
            Series(labels["reviewed"], tuple(percent(week.reviewed, students) for week in history)),
            Series(labels["done"], tuple(percent(week.done, week.goals) for week in history))]


def group_figures(tx: Tx, ids: list[int], today: date) -> list[dict]:
    """Each advisory group holding any of these students: its title, its advisers and the class figures of those
    of its students among `ids` (a student in two groups counts in both), by title."""
    members: dict[int, list[int]] = {}
    titles: dict[int, str] = {}
    if ids:
        for group_id, title, student in tx.all(
                "SELECT g.id, g.title, m.person_id FROM advisorymember m JOIN advisorygroup g ON g.id = m.group_id "
                f"WHERE m.role = 'student' AND m.person_id IN ({marks(ids)}) ORDER BY g.title, g.id, m.person_id", ids):
            members.setdefault(group_id, []).append(student)
            titles[group_id] = title
    advisers: dict[int, list[str]] = {}
    if members:
        for group_id, given, family in tx.all(
                "SELECT a.group_id, p.given_name, p.family_name FROM advisorymember a JOIN person p ON p.id = a.person_id "
                f"WHERE a.role = 'adviser' AND a.group_id IN ({marks(list(members))}) "
                "ORDER BY p.family_name, p.given_name", list(members)):
            advisers.setdefault(group_id, []).append(f"{given} {family}")
    return [{"title": titles[group_id], "advisers": advisers.get(group_id, []),
             "figures": class_figures(tx, students, today)[0]} for group_id, students in members.items()]
