"""Who needs their adviser first, and why: the triage every adviser view ranks by.

Each feature registers its concerns (`core.engine.registry.Concern`); this module brings the ones
that read the engine's and the scheduler's own tables. The score is documented, not a black box:

    score(student) = Σ over their reasons of  weight(concern) × min(level, 3)

| concern | weight | level |
|---|---|---|
| a safety alert nobody has closed | 100 | how many are open |
| a help request still open | 40 | the oldest one's age in weeks (at least 1) |
| the bot is blocked (no chat account reaches them) | 30 | 1 |
| silent after a nudge and its follow-up (the scheduler's flag) | 25 | weeks in a row |
| goals carried or "not yet" two weeks running | 20 | weeks in a row (2 or more) |
| a missed report-card reflection (the reflection feature) | 15 | its own |
| low confidence (1 or 2 of 5) on a goal this week | 10 | 1 |

Highest score first; ties by family name, given name. A student an adult marked "Followed up"
drops below everyone not followed up, unless something new happened since: a reason that was not
there at the follow-up, or one whose level rose (`is_fresh`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Iterable

from sqlmodel import Field, SQLModel

from core.domain import dates
from core.domain.store import Tx, as_moment
from core.engine.registry import Concern, Highlight, Reason, Registry
from core.features import checkin
from core.render.templates import Catalog

MAX_LEVEL = 3  # a reason counts at most three times its weight: one old reason does not drown the rest
FOLLOWED_UP = "followed_up"
WEEK = timedelta(weeks=1)


class FollowUp(SQLModel, table=True):
    """What an adult's "Followed up" (an `adultaction` row) answered: each reason kind and its level then."""

    id: int | None = Field(default=None, primary_key=True)
    action_id: int = Field(index=True)  # the adultaction row; no foreign key, so forgetting may go in any order
    student_id: int = Field(foreign_key="person.id", index=True)
    reasons: str = "{}"  # JSON: {kind: level}


def marks(ids: list[int]) -> str:
    return ", ".join("?" * len(ids))


def _start(day: date) -> datetime:
    """The first moment of `day`, in UTC (days here are the adviser's; an hour either way does not matter)."""
    return datetime.combine(day, time(), tzinfo=timezone.utc)


def _day(value) -> date | None:
    moment = as_moment(value) if value is not None and not isinstance(value, date) else value
    return moment.date() if isinstance(moment, datetime) else moment


# -- the concerns this feature brings ---------------------------------------------------------------


def open_alerts(tx: Tx, ids: list[int], today: date) -> dict[int, list[Reason]]:
    found: dict[int, list[Reason]] = {}
    if not ids:
        return found
    rows = tx.all("SELECT a.person_id, COUNT(*), MIN(a.created_at), MAX(CASE WHEN a.acknowledged_by IS NULL THEN 0 "
                  f"ELSE 1 END) FROM safetyalert a WHERE a.closed_at IS NULL AND a.person_id IN ({marks(ids)}) "
                  "GROUP BY a.person_id", ids)
    for student, count, first, taken in rows:
        found[student] = [Reason(count, _day(first), {"count": count, "taken": bool(taken)})]
    return found


def open_help_requests(tx: Tx, ids: list[int], today: date) -> dict[int, list[Reason]]:
    """The check-in's help requests nobody has handled: how many, the oldest's age in weeks, the newest's words."""
    found: dict[int, list[Reason]] = {}
    for student, requests in checkin.open_help_requests(tx, ids).items():
        if requests:
            oldest = requests[0]["asked_at"].date()
            found[student] = [Reason(max(1, (today - oldest).days // 7), oldest,
                                     {"count": len(requests), "latest": requests[-1]["obstacle"]})]
    return found


def bot_blocked(tx: Tx, ids: list[int], today: date) -> dict[int, list[Reason]]:
    if not ids:
        return {}
    rows = tx.all("SELECT i.person_id, MIN(i.created_at) FROM chatidentity i WHERE i.unreachable "
                  f"AND i.person_id IN ({marks(ids)}) AND NOT EXISTS (SELECT 1 FROM chatidentity r "
                  "WHERE r.person_id = i.person_id AND NOT r.unreachable) GROUP BY i.person_id", ids)
    return {student: [Reason(1, None, {})] for student, _ in rows}


def _weeks_in_a_row(weeks: set[date], latest: date) -> int:
    """How many weeks in a row, going back from `latest`, are in `weeks`."""
    count = 0
    while latest - count * WEEK in weeks:
        count += 1
    return count


def silent(tx: Tx, ids: list[int], today: date) -> dict[int, list[Reason]]:
    """The scheduler's flags (no answer to a nudge and its follow-up) this week or last, and the run of weeks."""
    found: dict[int, list[Reason]] = {}
    if not ids:
        return found
    this_week = dates.week_start(today)
    since = this_week - 8 * WEEK
    flagged: dict[int, set[date]] = {}
    first: dict[int, date] = {}
    for student, created in tx.all("SELECT person_id, created_at FROM flag WHERE kind = 'no_response' "
                                   f"AND created_at >= ? AND person_id IN ({marks(ids)})",
                                   (tx.ts(_start(since)), *ids)):
        day = _day(created)
        flagged.setdefault(student, set()).add(dates.week_start(day))
        first[student] = min(first.get(student, day), day)
    for student, weeks in flagged.items():
        latest = this_week if this_week in weeks else this_week - WEEK
        run = _weeks_in_a_row(weeks, latest)
        if run:
            found[student] = [Reason(run, latest - (run - 1) * WEEK, {"weeks": run})]
    return found


def stalled_goals(tx: Tx, ids: list[int], today: date) -> dict[int, list[Reason]]:
    """Goals carried forward or reviewed "not yet" in each of the last two weeks (or more) before this one."""
    found: dict[int, list[Reason]] = {}
    if not ids:
        return found
    last_week = dates.week_start(today) - WEEK
    stuck: dict[int, dict[date, str]] = {}
    for student, week, text in tx.all(
            "SELECT person_id, week_start, text FROM goal WHERE status IN ('not_yet', 'carried') AND week_start >= ? "
            f"AND week_start <= ? AND person_id IN ({marks(ids)}) ORDER BY week_start, id",
            (tx.day(last_week - 7 * WEEK), tx.day(last_week), *ids)):
        stuck.setdefault(student, {})[tx.as_date(week)] = text
    for student, weeks in stuck.items():
        run = _weeks_in_a_row(set(weeks), last_week)
        if run >= 2:
            found[student] = [Reason(run, last_week - (run - 1) * WEEK, {"weeks": run, "goal": weeks[last_week]})]
    return found


def low_confidence(tx: Tx, ids: list[int], today: date) -> dict[int, list[Reason]]:
    found: dict[int, list[Reason]] = {}
    if not ids:
        return found
    for student, text, confidence in tx.all(
            # a range, not `=`: the planner then walks the students' goals, not the whole week's (see figures.py)
            "SELECT person_id, text, confidence FROM goal WHERE week_start >= ? AND week_start <= ? AND confidence <= 2 "
            f"AND status = 'open' AND person_id IN ({marks(ids)}) ORDER BY confidence, id",
            (tx.day(dates.week_start(today)), tx.day(dates.week_start(today)), *ids)):
        found.setdefault(student, [Reason(1, None, {"goal": text, "confidence": confidence})])
    return found


# -- highlights ---------------------------------------------------------------------------------------


def goals_met(tx: Tx, ids: list[int], today: date) -> dict[int, list[dict]]:
    found: dict[int, list[dict]] = {}
    if not ids:
        return found
    for student, text in tx.all(
            "SELECT r.person_id, g.text FROM goalreview r JOIN goal g ON g.id = r.goal_id WHERE r.status = 'done' "
            f"AND r.created_at >= ? AND r.person_id IN ({marks(ids)}) ORDER BY r.id",
            (tx.ts(_start(today - WEEK)), *ids)):
        found.setdefault(student, [{"goals": []}])[0]["goals"].append(text)
    return found


def reflections_done(tx: Tx, ids: list[int], today: date) -> dict[int, list[dict]]:
    """A weekly reflection written this week or last, with the streak of weeks it continues."""
    found: dict[int, list[dict]] = {}
    if not ids:
        return found
    this_week = dates.week_start(today)
    weeks: dict[int, set[date]] = {}
    for student, week in tx.all("SELECT person_id, week_start FROM reflection WHERE kind = 'week' AND week_start >= ? "
                                f"AND person_id IN ({marks(ids)})", (tx.day(this_week - 8 * WEEK), *ids)):
        weeks.setdefault(student, set()).add(tx.as_date(week))
    for student, done in weeks.items():
        latest = this_week if this_week in done else this_week - WEEK
        streak = _weeks_in_a_row(done, latest)
        if streak:
            found[student] = [{"weeks": streak}]
    return found


CONCERNS = (
    Concern("safety_alert", "adviser/concern_safety_alert", open_alerts, weight=100),
    Concern("help_request", "adviser/concern_help_request", open_help_requests, weight=40),
    Concern("bot_blocked", "adviser/concern_bot_blocked", bot_blocked, weight=30),
    Concern("silent", "adviser/concern_silent", silent, weight=25),
    Concern("goals_stalled", "adviser/concern_goals_stalled", stalled_goals, weight=20),
    Concern("low_confidence", "adviser/concern_low_confidence", low_confidence, weight=10),
)
HIGHLIGHTS = (
    Highlight("goal_met", "adviser/highlight_goal_met", goals_met),
    Highlight("reflection_done", "adviser/highlight_reflection_done", reflections_done),
)


# -- ranking ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """One reason with the concern that raised it."""

    concern: Concern
    reason: Reason

    @property
    def score(self) -> int:
        return self.concern.weight * min(self.reason.level, MAX_LEVEL)

    def as_context(self, today: date, catalog: Catalog, locale: str, student: str) -> dict:
        """The reason as a template reads it, its line already said in `locale` (JSON: it travels in the outbox)."""
        since = self.reason.since
        reason = {"level": self.reason.level, "since": since.isoformat() if since else None,
                  "days": (today - since).days if since else None}
        return {"kind": self.concern.kind, "score": self.score, **reason,
                "text": say(catalog, locale, self.concern.template, self.reason.evidence, student, reason)}


def say(catalog: Catalog, locale: str, template: str, evidence: dict, student: str, reason: dict | None = None) -> str:
    """A feature's line about a student (a concern's or a highlight's) in `locale`: see `Concern` for what it reads."""
    return catalog.text(template, locale, {**evidence, "evidence": evidence, "reason": reason or {}, "student": student})


def full_name(student: dict) -> str:
    return f"{student['given_name']} {student['family_name']}".strip()


@dataclass
class Entry:
    """One student in triage: their reasons, score, the last follow-up, and whether anything is new since."""

    student: dict
    reasons: list[Found]
    followed_up: dict | None = None  # {"by", "at", "note", "basis"}

    @property
    def score(self) -> int:
        return sum(found.score for found in self.reasons)

    @property
    def snapshot(self) -> dict[str, int]:
        """Each reason kind with its highest level: what a follow-up is measured against."""
        levels: dict[str, int] = {}
        for found in self.reasons:
            levels[found.concern.kind] = max(levels.get(found.concern.kind, 0), found.reason.level)
        return levels

    @property
    def fresh(self) -> bool:
        """Not followed up, or something new since: a reason that was not there, or one that got worse."""
        return self.followed_up is None or is_fresh(self.snapshot, self.followed_up["basis"])

    def sort_key(self) -> tuple:
        s = self.student
        return (not self.fresh, -self.score, s["family_name"].casefold(), s["given_name"].casefold(), s["id"])


def is_fresh(now: dict[str, int], at_follow_up: dict[str, int]) -> bool:
    return any(kind not in at_follow_up or level > at_follow_up[kind] for kind, level in now.items())


def reasons_of(tx: Tx, registry: Registry, ids: list[int], today: date) -> dict[int, list[Found]]:
    """Every registered concern's reasons for these students (this feature's `CONCERNS` among them)."""
    found: dict[int, list[Found]] = {}
    for concern in registry.concerns():
        for student, reasons in concern.collect(tx, ids, today).items():
            found.setdefault(student, []).extend(Found(concern, reason) for reason in reasons)
    for reasons in found.values():
        reasons.sort(key=lambda f: -f.score)
    return found


def last_follow_ups(tx: Tx, ids: list[int]) -> dict[int, dict]:
    """Each student's latest follow-up by any adult: who, when, the note, and the reasons it answered."""
    if not ids:
        return {}
    latest: dict[int, dict] = {}
    for student, by_given, by_family, at, note, basis in tx.all(
            "SELECT a.student_id, p.given_name, p.family_name, a.at, a.note, b.reasons FROM adultaction a "
            "JOIN person p ON p.id = a.actor_id LEFT JOIN followup b ON b.action_id = a.id "
            f"WHERE a.subject = 'person' AND a.action = ? AND a.student_id IN ({marks(ids)}) ORDER BY a.at, a.id",
            (FOLLOWED_UP, *ids)):
        latest[student] = {"by": f"{by_given} {by_family}".strip(), "at": _day(at).isoformat(), "note": note,
                           "basis": json.loads(basis or "{}")}
    return latest


def triage(tx: Tx, registry: Registry, students: Iterable[dict], today: date) -> list[Entry]:
    """The students with any reason, ranked by the documented score (see the module docstring)."""
    by_id = {student["id"]: student for student in students}
    ids = list(by_id)
    reasons = reasons_of(tx, registry, ids, today)
    follow_ups = last_follow_ups(tx, [student for student in reasons])
    entries = [Entry(by_id[student], found, follow_ups.get(student)) for student, found in reasons.items() if found]
    return sorted(entries, key=Entry.sort_key)


def highlights_of(tx: Tx, registry: Registry, students: list[dict], today: date, catalog: Catalog,
                  locale: str) -> dict[int, list[str]]:
    """Every registered highlight for these students, each said in `locale`: {student: [line, ...]}."""
    by_id = {student["id"]: student for student in students}
    found: dict[int, list[str]] = {}
    for highlight in registry.highlights():
        for student, items in highlight.collect(tx, list(by_id), today).items():
            found.setdefault(student, []).extend(
                say(catalog, locale, highlight.template, item, full_name(by_id[student])) for item in items)
    return found


def record_follow_up(tx: Tx, actor_id: int, entry_snapshot: dict[str, int], student_id: int, note: str | None,
                     now: datetime) -> int | None:
    """An adult followed a student up: an `adultaction` (the alerts' model) and the reasons it answered.

    A repeated tap (the platform's retry, a double tap) while nothing changed records nothing: None.
    """
    last = tx.one("SELECT b.reasons FROM adultaction a JOIN followup b ON b.action_id = a.id "
                  "WHERE a.actor_id = ? AND a.student_id = ? AND a.subject = 'person' AND a.action = ? "
                  "ORDER BY a.at DESC, a.id DESC LIMIT 1", (actor_id, student_id, FOLLOWED_UP))
    if last is not None and not is_fresh(entry_snapshot, json.loads(last[0])):
        return None
    action = tx.insert("INSERT INTO adultaction (actor_id, student_id, subject, subject_id, action, note, at) "
                       "VALUES (?, ?, 'person', ?, ?, ?, ?)", (actor_id, student_id, student_id, FOLLOWED_UP, note,
                                                                tx.ts(now)))
    tx.execute("INSERT INTO followup (action_id, student_id, reasons) VALUES (?, ?, ?)",
               (action, student_id, json.dumps(entry_snapshot)))
    tx.audit("engine", "followed_up", student_id, {"by": actor_id, "action": action}, now)
    return action
