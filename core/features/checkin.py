"""The mid-week check-in (SPEC §2; off unless a school turns it on): per open goal of the week, on
track / stuck / done, one tap. "Stuck" asks what is in the way and offers to ask the adviser for
help: a yes is a help request, and the student's advisers get a message at once (not urgent like a
safety alert) naming the student, the goal and the obstacle, with a button to mark it handled.

    checkin:  for each open goal: status ─on track / done─► next goal
                                    └stuck─► obstacle ─► ask_help ─yes─► a help request, the adviser told
              then: end (what the student said, in one line)

A help request is an adult-action item (as a safety alert is): it stays open, with its age, in
the adviser's digest (`open_help_requests`) until an adult marks it handled (`/handled N`); what
they did is an `adultaction` row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlmodel import Field, SQLModel

from core.domain import access, records
from core.domain.messages import Button, Outbound
from core.domain.models import DEFAULT_LOCALE, GoalStatus, Role, utcnow
from core.domain.settings import Key, Weekday
from core.domain.store import Tx, as_moment
from core.engine.flow import END, NEXT, Answers, Choice, Each, Flow, Step, Text, Turn
from core.engine.registry import ADULTS, Command, Feature, Trigger

if TYPE_CHECKING:
    from core.engine.pipeline import Engine

STATUSES = ("on_track", "stuck", "done")


class GoalCheckIn(SQLModel, table=True):
    """One answer of a mid-week check-in: how a goal stands, and what is in the way when stuck."""

    __tablename__ = "goalcheckin"
    id: int | None = Field(default=None, primary_key=True)
    goal_id: int = Field(foreign_key="goal.id", index=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    status: str  # on_track, stuck, done
    obstacle: str | None = None
    created_at: datetime = Field(default_factory=utcnow)


@dataclass
class CheckInAnswers(Answers):
    status: str | None = None  # the goal being checked: on track, stuck or done
    checkin_id: int | None = None  # its row, which the obstacle completes
    obstacle: str | None = None
    counts: dict = field(default_factory=dict)  # how many goals were on track, stuck, done


def open_goals(turn: Turn) -> list[dict]:
    """This week's goals still open, one by one."""
    return [{"id": goal["id"], "text": goal["text"]}
            for goal in records.of_week(turn.tx, turn.person_id, turn.week_start) if goal["status"] == GoalStatus.open]


def begin_checkin(turn: Turn) -> str:
    """With no open goal, say so and offer to set some."""
    turn.answers.counts = {status: 0 for status in STATUSES}
    if open_goals(turn):
        return "goals"
    turn.say("checkin/nothing", buttons=(Button("menu.goals", "/goals"),))
    return END


def checked_goal(turn: Turn) -> dict:
    return {"goal": turn.item["text"], "obstacle": turn.answers.obstacle}


def store_status(turn: Turn, status: str) -> None:
    """Keep the answer; a goal that is done is done (the week's review will not ask about it again)."""
    tx = turn.tx
    turn.answers.checkin_id = tx.insert(
        "INSERT INTO goalcheckin (goal_id, person_id, status, created_at) VALUES (?, ?, ?, ?)",
        (turn.item["id"], turn.person_id, status, tx.ts(turn.now)))
    turn.answers.counts[status] += 1
    turn.answers.obstacle = None
    if status == "done":
        records.set_goal_status(tx, turn.item["id"], GoalStatus.done, turn.now)


def after_status(turn: Turn) -> str:
    return "obstacle" if turn.answers.status == "stuck" else NEXT


def store_obstacle(turn: Turn, obstacle: str) -> None:
    turn.tx.execute("UPDATE goalcheckin SET obstacle = ? WHERE id = ?", (obstacle, turn.answers.checkin_id))


def ask_for_help(turn: Turn, answer: str) -> None:
    """A yes becomes a help request, and the student's advisers hear of it now."""
    if answer != "yes":
        turn.say("checkin/no_help")
        return
    told = request_help(turn, turn.item["id"], turn.item["text"], turn.answers.obstacle)
    turn.say("checkin/help_sent", told=told)


def request_help(turn: Turn, goal_id: int, goal: str, obstacle: str) -> int:
    """Record a help request and message the student's advisers; returns how many were told in chat."""
    tx = turn.tx
    request_id = tx.insert("INSERT INTO helprequest (person_id, goal_id, text, status, created_at) "
                           "VALUES (?, ?, ?, 'open', ?)", (turn.person_id, goal_id, obstacle, tx.ts(turn.now)))
    family_name = tx.one("SELECT family_name FROM person WHERE id = ?", (turn.person_id,))[0]
    message = Outbound("checkin/help_request", {"student": f"{turn.sender.given_name} {family_name or ''}".strip(),
                                                "goal": goal, "obstacle": obstacle},
                       (Button("checkin.handled", f"/handled {request_id}"),))
    advisers = [adult for adult in access.alert_recipients(tx, turn.person_id) if adult[4] == Role.adviser]
    turn.others.extend((adult_id, platform, chat_id, locale or DEFAULT_LOCALE, message)
                       for adult_id, platform, chat_id, locale, _role in advisers)
    tx.audit("engine", "help_request", turn.person_id, {"request": request_id, "advisers": len(advisers)}, turn.now)
    return len(advisers)


def summarize(turn: Turn) -> None:
    counts = turn.answers.counts or {}
    if any(counts.values()):
        turn.say("checkin/done", **counts)


CHECKIN_FLOW = Flow(
    "checkin",
    answers=CheckInAnswers,
    begin=begin_checkin,
    starts=("goals", END),
    steps=(
        Each("goals", over=open_goals, steps=(
            Step("status", ask="checkin/ask_status", context=checked_goal,
                 expect=Choice(STATUSES, labels={status: f"checkin.{status}" for status in STATUSES}),
                 save="status", effect=store_status, then=after_status, branches=("obstacle", NEXT)),
            Step("obstacle", ask="checkin/ask_obstacle", context=checked_goal, expect=Text(), save="obstacle",
                 effect=store_obstacle, then="ask_help"),
            Step("ask_help", ask="checkin/ask_help", context=checked_goal, expect=Choice(("yes", "no")),
                 effect=ask_for_help, then=NEXT),
        )),
    ),
    finish=summarize,
)


# -- the adults' side ------------------------------------------------------------------------------


def open_help_requests(tx: Tx, students: list[int], now: datetime | None = None) -> dict[int, list[dict]]:
    """Each student's help requests nobody has marked handled: id, goal, obstacle, asked_at (and its age in
    days when `now` is given), oldest first. What the adviser's digest lists."""
    found: dict[int, list[dict]] = {student: [] for student in students}
    if not students:
        return found
    for row in tx.rows(
            "SELECT h.person_id, h.id, h.text AS obstacle, h.created_at, g.text AS goal FROM helprequest h "
            f"LEFT JOIN goal g ON g.id = h.goal_id WHERE h.status = 'open' AND h.person_id IN "
            f"({', '.join('?' * len(students))}) ORDER BY h.created_at, h.id", tuple(students)):
        asked_at = as_moment(row.pop("created_at"))
        row["asked_at"] = asked_at
        if now is not None:
            row["age_days"] = (now - asked_at).days
        found[row.pop("person_id")].append(row)
    return found


def mark_handled(engine: "Engine", turn: Turn, args: str) -> None:
    """An adult marks a help request handled: it leaves the open views, and the student hears who saw it."""
    tx = turn.tx
    row = tx.one("SELECT person_id, status FROM helprequest WHERE id = ?", (int(args),)) if args.isdigit() else None
    if row is None or not access.may_see(tx, turn.person_id, row[0], access.View.alerts):
        turn.say("checkin/no_such_request")
        return
    student_id, status = row
    if status == "open":
        tx.execute("UPDATE helprequest SET status = 'handled', resolved_at = ? WHERE id = ?",
                   (tx.ts(turn.now), int(args)))
        student = tx.sender_of_person(student_id)
        if student is not None and student.chat_id:
            turn.others.append((student_id, student.platform, student.chat_id,
                                student.locale or student.school_locale or DEFAULT_LOCALE,
                                Outbound("checkin/help_seen", {"adviser": turn.sender.given_name})))
    tx.execute("INSERT INTO adultaction (actor_id, student_id, subject, subject_id, action, note, at) "
               "VALUES (?, ?, 'helprequest', ?, 'handled', NULL, ?)", (turn.person_id, student_id, int(args),
                                                                        tx.ts(turn.now)))
    tx.audit("engine", "help_handled", student_id, {"request": int(args), "by": turn.person_id}, turn.now)
    turn.say("checkin/handled", first=status == "open")


FEATURE = Feature(
    "checkin",
    flows=(CHECKIN_FLOW,),
    commands=(Command("checkin", flow="checkin"),
              Command("handled", run=mark_handled, roles=ADULTS, listed=False)),
    triggers=(Trigger("checkin", day="checkin.day", flow="checkin", quiet_in_exams=True),),
    settings=(Key("checkin.day", Weekday(), None, "the day of the optional mid-week check-in (or off)"),),
    person_tables=("goalcheckin",),
)
