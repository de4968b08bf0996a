"""The report-card reflection (SPEC §2): students linking their own actions to their grades.

    report_card: subjects? ─► for each subject: grade ─► expected ─┐
                (named by the      ▲───────────────────────────────┘
                 student when the roster has none)
                 ─► actions (their own record for the period shown) ─► change ─► term_goal ─► message
                 ─► for each subject: who may see it ─► who may see the closing answers ─► summary, then goals

It follows the grading period that just ended (the roster's academic sessions or the calendar;
without either, the last nine weeks). It comes three ways: by the school year (the first school
day after a grading period ends, in place of that day's other nudges), by an adviser (`/askreflect`,
`companion reflection start`), and by the student (`/reflect`). Every answer is written as it is
given, so a student may leave and resume; who may see each subject's answers and the closing
message (only me / my adviser / my adviser and family) is stored with them and read through
`core.domain.access` wherever they are shown.

Other features read `term_goal` and `self_assessments` (the learning plan), and the adviser's
digest reads the `reflection_missed` concern.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from core.domain import access, dates, records
from core.domain.messages import Button
from core.domain.models import CalendarKind, GoalStatus, utcnow
from core.domain.store import Tx, as_moment
from core.engine.flow import END, NEXT, Answers, Choice, Each, Flow, Invalid, Step, Text, Turn
from core.engine.registry import ADVISERS, Command, Concern, Feature, Highlight, Reason, Trigger, When
from core.schedule import policy

if TYPE_CHECKING:
    from core.engine.pipeline import Engine

EXPECTATIONS = ("higher", "about_right", "lower")  # what the student expected, against the grade they got
FALLBACK_PERIOD = timedelta(weeks=9)  # a school without grading periods: the last nine weeks
MAX_SUBJECTS = 10
MISSED_AFTER = timedelta(days=7)  # a reflection asked for and not finished this long after is missed
ASKED = ("report_card", "report_card_asked")  # the nudges that ask a student to reflect


class ReportReflection(SQLModel, table=True):
    """One student's reflection on one grading period: the closing answers and who may see them."""

    __tablename__ = "reportreflection"
    __table_args__ = (UniqueConstraint("person_id", "period_end"),)
    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    period_title: str
    period_start: date
    period_end: date
    next_title: str | None = None  # the next grading period ("next term"), when the calendar knows it
    actions: str | None = None  # which of their own actions led to their grades
    change: str | None = None  # what they will change
    term_goal: str | None = None  # one goal for next term (the learning plan's term goal)
    message: str | None = None  # what they want their adviser or family to know
    audience: str = access.Audience.me  # who may see the closing answers (actions, change, goal, message)
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class SubjectReflection(SQLModel, table=True):
    """A subject of a reflection: the grade or mastery level in the student's words, what they expected."""

    __tablename__ = "subjectreflection"
    __table_args__ = (UniqueConstraint("reflection_id", "subject"),)
    id: int | None = Field(default=None, primary_key=True)
    reflection_id: int = Field(foreign_key="reportreflection.id", index=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    subject: str
    grade: str  # "B+", "3 of 4", "meets": as the student wrote it
    expected: str  # higher, about_right, lower
    audience: str = access.Audience.me
    created_at: datetime = Field(default_factory=utcnow)


class StudentSubject(SQLModel, table=True):
    """A subject a student named themself (the roster has no subject class for them)."""

    __tablename__ = "studentsubject"
    person_id: int = Field(foreign_key="person.id", primary_key=True)
    name: str = Field(primary_key=True)
    position: int = 0  # in the order the student wrote them
    created_at: datetime = Field(default_factory=utcnow)


# -- what other features read ----------------------------------------------------------------------


def term_goal(tx: Tx, person_id: int, viewer: str = access.Viewer.student) -> str | None:
    """The student's newest goal for next term, if `viewer` may see it."""
    row = tx.one("SELECT term_goal, audience FROM reportreflection WHERE person_id = ? AND term_goal IS NOT NULL "
                 "ORDER BY period_end DESC, id DESC LIMIT 1", (person_id,))
    return row[0] if row and access.audience_allows(row[1], viewer) else None


def self_assessments(tx: Tx, person_id: int, viewer: str = access.Viewer.student) -> list[dict]:
    """The newest reflection's answers per subject that `viewer` may see: subject, grade, expected, on (a date)."""
    newest = tx.one("SELECT id FROM reportreflection WHERE person_id = ? AND EXISTS (SELECT 1 FROM subjectreflection "
                    "s WHERE s.reflection_id = reportreflection.id) ORDER BY period_end DESC, id DESC LIMIT 1",
                    (person_id,))
    if newest is None:
        return []
    return [{"subject": row["subject"], "grade": row["grade"], "expected": row["expected"],
             "on": as_moment(row["created_at"]).date()}
            for row in tx.rows("SELECT subject, grade, expected, audience, created_at FROM subjectreflection "
                               "WHERE reflection_id = ? ORDER BY id", (newest[0],))
            if access.audience_allows(row["audience"], viewer)]


def _midnight(day: date) -> datetime:
    """The start of `day` in UTC: the bound of a "the last N days" query."""
    return datetime.combine(day, datetime.min.time()).replace(tzinfo=timezone.utc)


def reflections_for(tx: Tx, students: list[int], viewer: str) -> dict[int, dict]:
    """Each student's newest finished reflection as `viewer` may see it: the period, the subjects and the
    closing answers they shared with this audience (nothing they kept to themself)."""
    found: dict[int, dict] = {}
    if not students:
        return found
    marks = ", ".join("?" * len(students))
    for row in tx.rows(
            "SELECT r.id, r.person_id, r.period_title, r.period_end, r.actions, r.change, r.term_goal, r.message, "
            f"r.audience FROM reportreflection r WHERE r.person_id IN ({marks}) AND r.finished_at IS NOT NULL "
            "ORDER BY r.period_end, r.id", tuple(students)):
        shown = access.audience_allows(row["audience"], viewer)
        found[row["person_id"]] = {
            "id": row["id"], "period": row["period_title"], "ended": tx.as_date(row["period_end"]),
            **{key: row[key] if shown else None for key in ("actions", "change", "term_goal", "message")},
            "subjects": []}
    if found:
        ids = [entry["id"] for entry in found.values()]
        for row in tx.rows("SELECT person_id, subject, grade, expected, audience FROM subjectreflection WHERE "
                           f"reflection_id IN ({', '.join('?' * len(ids))}) ORDER BY id", tuple(ids)):
            if access.audience_allows(row["audience"], viewer):
                found[row["person_id"]]["subjects"].append(
                    {"subject": row["subject"], "grade": row["grade"], "expected": row["expected"]})
    return found


def missed_reflections(tx: Tx, students: list[int], today: date) -> dict[int, dict]:
    """Students asked to reflect (by the calendar or an adviser) a week ago or more who have not finished since:
    {student: {"asked_on": the day of the newest such nudge}}."""
    found: dict[int, dict] = {}
    if not students:
        return found
    cutoff = _midnight(today - MISSED_AFTER)
    marks = ", ".join("?" * len(students))
    for person_id, sent_at in tx.all(
            f"SELECT n.person_id, MAX(n.sent_at) FROM nudge n WHERE n.person_id IN ({marks}) AND n.status = 'sent' "
            f"AND n.kind IN ({', '.join('?' * len(ASKED))}) AND n.sent_at <= ? GROUP BY n.person_id",
            (*students, *ASKED, tx.ts(cutoff))):
        asked = as_moment(sent_at)
        done = tx.one("SELECT 1 FROM reportreflection WHERE person_id = ? AND finished_at IS NOT NULL "
                      "AND finished_at >= ?", (person_id, tx.ts(asked - timedelta(days=1))))
        if done is None:
            found[person_id] = {"asked_on": asked.date()}
    return found


def missed_reasons(tx: Tx, students: list[int], today: date) -> dict[int, list[Reason]]:
    """The digest's triage reason: a reflection asked for a week ago or more and not finished."""
    return {student: [Reason(level=max(1, (today - missed["asked_on"]).days // 7), since=missed["asked_on"],
                             evidence={"asked_on": missed["asked_on"].isoformat()})]
            for student, missed in missed_reflections(tx, students, today).items()}


def finished_this_week(tx: Tx, students: list[int], today: date) -> dict[int, list[dict]]:
    """The digest's good news: a report-card reflection finished in the last seven days (that it was done, never
    what it says: its answers reach adults only as the student shared them)."""
    found: dict[int, list[dict]] = {}
    if students:
        since = _midnight(today - timedelta(days=7))
        for person_id, title in tx.all(
                f"SELECT person_id, period_title FROM reportreflection WHERE person_id IN "
                f"({', '.join('?' * len(students))}) AND finished_at >= ? ORDER BY finished_at, id",
                (*students, tx.ts(since))):
            found.setdefault(person_id, []).append({"period": title or None})
    return found


# -- the period and the subjects -------------------------------------------------------------------


def period_of(tx: Tx, person_id: int, today: date) -> dict:
    """The grading period that ended last before `today` and the next one (the school's calendar or roster);
    without one, the last nine weeks."""
    school_id = tx.one("SELECT school_id FROM person WHERE id = ?", (person_id,))[0]
    periods = policy.load_calendars(tx, school_id).get(school_id, policy.SchoolCalendar()).of_kind(
        CalendarKind.grading_period)
    ended = [mark for mark in periods if mark.ends_on < today]
    if not ended:
        return {"title": None, "starts_on": (today - FALLBACK_PERIOD).isoformat(),
                "ends_on": (today - timedelta(days=1)).isoformat(), "next": None}
    last = max(ended, key=lambda mark: mark.ends_on)
    following = [mark for mark in periods if mark.starts_on > last.ends_on]
    upcoming = min(following, key=lambda mark: mark.starts_on) if following else None
    return {"title": last.title, "starts_on": last.starts_on.isoformat(), "ends_on": last.ends_on.isoformat(),
            "next": upcoming.title if upcoming else None}


def roster_subjects(tx: Tx, person_id: int) -> list[str]:
    """The classes the student is enrolled in that are not advisory groups, by title (once each)."""
    titles = [title.strip() for (title,) in tx.all(
        "SELECT c.title FROM enrollment e JOIN rosterclass c ON c.id = e.class_id WHERE e.person_id = ? "
        "AND e.role = 'student' AND NOT c.advisory ORDER BY c.title, c.id", (person_id,))]
    return _once(titles)


def own_subjects(tx: Tx, person_id: int) -> list[str]:
    return [name for (name,) in tx.all("SELECT name FROM studentsubject WHERE person_id = ? ORDER BY position, name",
                                       (person_id,))]


def _once(names: list[str]) -> list[str]:
    """Each name once (case and spacing aside), in order, at most MAX_SUBJECTS."""
    seen, kept = set(), []
    for name in names:
        key = " ".join(name.casefold().split())
        if name and key not in seen:
            seen.add(key)
            kept.append(name)
    return kept[:MAX_SUBJECTS]


SEPARATORS = re.compile(r"\s*(?:[,;/\n•·|+]|\s-\s|\band\b|\by\b|\be\b|&)\s*", re.IGNORECASE)
BULLET = re.compile(r"^\s*(?:\d+[.)]|[-*])\s*")


def split_subjects(text: str) -> list[str]:
    """Subjects as a student lists them: "math, science and Spanish", one per line, "1. Art 2. Music",
    "my subjects are: …" (what comes before a first colon is a lead-in)."""
    lead_in, colon, listed = text.partition(":")
    if colon and listed.strip() and not SEPARATORS.search(lead_in):
        text = listed
    text = re.sub(r"\s(\d+[.)])\s", r"\n\1 ", text)  # "1. Art 2. Music": a number starts a new item
    names = [" ".join(BULLET.sub("", part).split()).strip(" .") for part in SEPARATORS.split(text)]
    return _once([name[:60].strip() for name in names if any(ch.isalnum() for ch in name)])


# -- the flow --------------------------------------------------------------------------------------


@dataclass
class ReflectionAnswers(Answers):
    """What the reflection collects between messages (every answer is also written as it comes)."""

    reflection_id: int | None = None
    period: dict = field(default_factory=dict)
    subjects: list[str] = field(default_factory=list)
    grade: str | None = None  # the grade of the subject being asked about


def begin_reflection(turn: Turn) -> str:
    """Find the period and the subjects; open (or reopen) the reflection row for that period. A period already
    reflected on is not asked again (a calendar nudge after the student reflected on their own): its summary is."""
    tx, answers = turn.tx, turn.answers
    answers.period = period_of(tx, turn.person_id, turn.today)
    answers.subjects = roster_subjects(tx, turn.person_id) or own_subjects(tx, turn.person_id)
    period = answers.period
    ends_on = date.fromisoformat(period["ends_on"])
    found = tx.one("SELECT id, finished_at FROM reportreflection WHERE person_id = ? AND period_end = ?",
                   (turn.person_id, tx.day(ends_on)))
    if found and found[1] is not None:
        answers.reflection_id = found[0]
        turn.say("reflection/already_done", **period_context(turn))
        return END
    if found:  # a reflection left unfinished and started again: it starts over
        answers.reflection_id = found[0]
        tx.execute("DELETE FROM subjectreflection WHERE reflection_id = ?", (found[0],))
        tx.execute("UPDATE reportreflection SET actions = NULL, change = NULL, term_goal = NULL, message = NULL, "
                   "audience = ?, started_at = ?, finished_at = NULL WHERE id = ?",
                   (access.Audience.me, tx.ts(turn.now), found[0]))
    else:
        answers.reflection_id = tx.insert(
            "INSERT INTO reportreflection (person_id, period_title, period_start, period_end, next_title, audience, "
            "started_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (turn.person_id, period["title"] or "", tx.day(date.fromisoformat(period["starts_on"])), tx.day(ends_on),
             period["next"], access.Audience.me, tx.ts(turn.now)))
    turn.say("reflection/intro", **period_context(turn))
    return "subject_list" if not answers.subjects else "subjects"


def period_context(turn: Turn) -> dict:
    period = turn.answers.period
    return {"period": period.get("title"), "starts_on": period.get("starts_on"), "ends_on": period.get("ends_on"),
            "next": period.get("next"), "subjects": turn.answers.subjects}


def name_subjects(turn: Turn, text: str) -> None:
    """The student's own list of subjects, kept for the next reflection."""
    names = split_subjects(text)
    if not names:
        raise Invalid("reflection/need_subjects")
    turn.tx.execute("DELETE FROM studentsubject WHERE person_id = ?", (turn.person_id,))
    for position, name in enumerate(names):
        turn.tx.execute("INSERT INTO studentsubject (person_id, name, position, created_at) VALUES (?, ?, ?, ?)",
                        (turn.person_id, name, position, turn.tx.ts(turn.now)))
    turn.answers.subjects = names


def subject_items(turn: Turn) -> list[str]:
    return list(turn.answers.subjects)


def subject_context(turn: Turn) -> dict:
    """The subject asked about, and where it stands in the list ("2 of 5")."""
    position = turn.answers.loops[turn.flows[turn.sender.flow].loop_of[turn.sender.state].name]
    item = turn.item
    return {"subject": item if isinstance(item, str) else item["subject"], "n": position["index"] + 1,
            "count": len(position["items"]), "grade": turn.answers.grade}


def store_subject(turn: Turn, expected: str) -> None:
    """The subject's grade and expectation, written at once (only the student sees it until they share it)."""
    tx = turn.tx
    tx.execute("DELETE FROM subjectreflection WHERE reflection_id = ? AND subject = ?",
               (turn.answers.reflection_id, turn.item))
    tx.execute("INSERT INTO subjectreflection (reflection_id, person_id, subject, grade, expected, audience, "
               "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
               (turn.answers.reflection_id, turn.person_id, turn.item, turn.answers.grade, expected,
                access.Audience.me, tx.ts(turn.now)))


def period_record(tx: Tx, person_id: int, starts_on: date, ends_on: date) -> dict:
    """The student's own record for the period: goals by category with how each ended and its if–then
    plan, and their review streak at the period's end."""
    goals = records.goals(tx, person_id, "week_start >= ? AND week_start <= ? AND status <> ?",
                          (tx.day(dates.week_start(starts_on)), tx.day(ends_on), GoalStatus.carried))
    by_category: dict[str, list[dict]] = {}
    for goal in goals:
        by_category.setdefault(goal["category"], []).append(
            {"text": goal["text"], "status": goal["status"], "plan": goal["plan"]})
    done = sum(goal["status"] == GoalStatus.done for goal in goals)
    return {"by_category": by_category, "total": len(goals), "done": done,
            "streak": records.review_streak(tx, person_id, dates.week_start(ends_on))}


def record_context(turn: Turn) -> dict:
    period = turn.answers.period
    return {**period_context(turn), **period_record(turn.tx, turn.person_id, date.fromisoformat(period["starts_on"]),
                                                    date.fromisoformat(period["ends_on"]))}


def save_closing(column: str):
    """An effect that writes one closing answer into the reflection row."""
    assert column in ("actions", "change", "term_goal", "message")

    def effect(turn: Turn, value: str) -> None:
        turn.tx.execute(f"UPDATE reportreflection SET {column} = ? WHERE id = ?",
                        (None if value == "skip" else value, turn.answers.reflection_id))

    effect.__doc__ = f"Store the reflection's {column}."
    return effect


def stored_subjects(turn: Turn) -> list[dict]:
    return [{"id": row["id"], "subject": row["subject"]} for row in turn.tx.rows(
        "SELECT id, subject FROM subjectreflection WHERE reflection_id = ? ORDER BY id", (turn.answers.reflection_id,))]


def share_subject(turn: Turn, audience: str) -> None:
    turn.tx.execute("UPDATE subjectreflection SET audience = ? WHERE id = ? AND person_id = ?",
                    (audience, turn.item["id"], turn.person_id))


def share_closing(turn: Turn, audience: str) -> None:
    turn.tx.execute("UPDATE reportreflection SET audience = ?, finished_at = ? WHERE id = ?",
                    (audience, turn.tx.ts(turn.now), turn.answers.reflection_id))


def summarize(turn: Turn) -> None:
    """The student's summary (what they can bring to a student-led conference), then this week's goals."""
    mine = reflections_for(turn.tx, [turn.person_id], access.Viewer.student).get(turn.person_id)
    if mine is None:
        return
    audiences = dict(turn.tx.all("SELECT subject, audience FROM subjectreflection WHERE reflection_id = ?",
                                 (turn.answers.reflection_id,)))
    closing = turn.tx.one("SELECT audience FROM reportreflection WHERE id = ?", (turn.answers.reflection_id,))[0]
    subjects = [{**subject, "audience": audiences.get(subject["subject"])} for subject in mine["subjects"]]
    turn.say("reflection/summary", reflection={**mine, "subjects": subjects, "audience": closing},
             buttons=(Button("reflection.set_goals", "/goals"),))


AUDIENCE_CHOICE = Choice(tuple(access.Audience),
                         labels={audience.value: f"reflection.audience.{audience.value}" for audience in access.Audience})

REFLECTION_FLOW = Flow(
    "report_card",
    answers=ReflectionAnswers,
    begin=begin_reflection,
    starts=("subject_list", "subjects", END),
    steps=(
        Step("subject_list", ask="reflection/ask_subjects", expect=Text(max_length=600), effect=name_subjects,
             then="subjects"),
        Each("subjects", over=subject_items, then="actions", steps=(
            Step("grade", ask="reflection/ask_grade", context=subject_context, expect=Text(max_length=100),
                 save="grade", then="expected"),
            Step("expected", ask="reflection/ask_expected", context=subject_context,
                 expect=Choice(EXPECTATIONS, labels={e: f"reflection.expected.{e}" for e in EXPECTATIONS}),
                 effect=store_subject, then=NEXT),
        )),
        Step("actions", ask="reflection/ask_actions", context=record_context, expect=Text(),
             effect=save_closing("actions"), then="change"),
        Step("change", ask="reflection/ask_change", expect=Text(), effect=save_closing("change"), then="term_goal"),
        Step("term_goal", ask="reflection/ask_term_goal", context=period_context, expect=Text(max_length=300),
             effect=save_closing("term_goal"), then="message"),
        Step("message", ask="reflection/ask_message", expect=Choice(("skip",), labels={"skip": "reflection.nothing"},
                                                                    or_text=Text()),
             effect=save_closing("message"), then="sharing"),
        Each("sharing", over=stored_subjects, then="share_message", steps=(
            Step("share_subject", ask="reflection/ask_share_subject", context=subject_context, expect=AUDIENCE_CHOICE,
                 effect=share_subject, then=NEXT),
        )),
        Step("share_message", ask="reflection/ask_share_closing", expect=AUDIENCE_CHOICE, effect=share_closing),
    ),
    finish=summarize,
)


# -- an adviser asks their advisees to reflect -------------------------------------------------------


def ask_advisees(engine: "Engine", turn: Turn, _args: str) -> None:
    """Queue the reflection for every advisee, through the nudge policy (quiet hours, pauses, the cap)."""
    students = [student["id"] for student in access.advisees(turn.tx, turn.person_id)]
    queued = policy.on_demand_in(turn.tx, engine.registry, "report_card_asked", students, turn.now) if students else 0
    turn.say("reflection/asked", students=len(students), queued=queued)


FEATURE = Feature(
    "reflection",
    flows=(REFLECTION_FLOW,),
    commands=(Command("reflect", flow="report_card", menu=4),
              Command("askreflect", run=ask_advisees, roles=ADVISERS, menu=2)),
    triggers=(Trigger("report_card", when=When.calendar, after=CalendarKind.grading_period, flow="report_card",
                      takes_day=True),
              Trigger("report_card_asked", when=When.on_demand, flow="report_card")),
    concerns=(Concern("reflection_missed", "reflection/concern_missed", collect=missed_reasons, weight=15),),
    highlights=(Highlight("reflection_finished", "reflection/highlight_finished", collect=finished_this_week),),
    person_tables=("reportreflection", "subjectreflection", "studentsubject"),
)
