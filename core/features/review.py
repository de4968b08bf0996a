"""The end-of-week review (Friday by default): per goal done / partly / not yet and what helped
or got in the way, then a one-line reflection and the streak.

    for each open goal of the week: status ─► notes ─┐   then: reflection ─► end
                                      ▲──────────────┘
"""

from __future__ import annotations

from dataclasses import dataclass

from core.domain import records
from core.domain.messages import Button
from core.domain.models import GoalStatus
from core.domain.settings import Key, Weekday
from core.engine.flow import END, NEXT, Answers, Choice, Each, Flow, Step, Text, Turn
from core.engine.registry import Command, Feature, Trigger

STATUSES = ("done", "partly", "not_yet")


@dataclass
class ReviewAnswers(Answers):
    status: str | None = None  # the goal under review: done, partly or not yet


def goals_to_review(turn: Turn) -> list[dict]:
    """This week's goals still open, one by one."""
    return [{"id": g["id"], "text": g["text"]} for g in records.of_week(turn.tx, turn.person_id, turn.week_start)
            if g["status"] == GoalStatus.open]


def begin_review(turn: Turn) -> str:
    """With nothing to review, say so and offer to set goals."""
    if goals_to_review(turn):
        return "goals"
    turn.say("review/nothing", buttons=(Button("menu.goals", "/goals"),))
    return END


def reviewed_goal(turn: Turn) -> dict:
    return {"goal": turn.item["text"], "status": turn.answers.status}


def store_review(turn: Turn, notes: str) -> None:
    records.insert_review(turn.tx, turn.person_id, turn.item["id"], turn.answers.status, notes, turn.now)


def store_reflection(turn: Turn, text: str) -> None:
    """Close the review with what the answers said, the streak and the evidence sent this week."""
    records.insert_reflection(turn.tx, turn.person_id, turn.week_start, text, turn.now)
    turn.say("review/done", streak=records.review_streak(turn.tx, turn.person_id, turn.week_start),
             reviewed=reviewed_this_week(turn), evidence=evidence_this_week(turn))


def reviewed_this_week(turn: Turn) -> list[dict]:
    """Each goal of the week with its latest review status, as the student just answered."""
    latest: dict[int, dict] = {}
    for goal_id, text, status in turn.tx.all(
            "SELECT g.id, g.text, r.status FROM goalreview r JOIN goal g ON g.id = r.goal_id "
            "WHERE r.person_id = ? AND g.week_start = ? ORDER BY r.id", (turn.person_id, turn.tx.day(turn.week_start))):
        latest[goal_id] = {"goal": text, "status": status}
    return list(latest.values())


def evidence_this_week(turn: Turn) -> list[dict]:
    """The links, photos and files sent as evidence of this week's goals, each by its name."""
    rows = turn.tx.all(
        "SELECT a.kind, a.ref, a.caption, f.name, g.text FROM artifact a JOIN goal g ON g.id = a.goal_id "
        "LEFT JOIN storedfile f ON f.key = a.file_key WHERE a.person_id = ? AND g.week_start = ? ORDER BY a.id",
        (turn.person_id, turn.tx.day(turn.week_start)))
    return [{"kind": kind, "name": caption or file_name or (ref if kind == "link" else None), "goal": goal}
            for kind, ref, caption, file_name, goal in rows]


def goal_under_review(turn: Turn) -> dict | None:
    """A photo or file sent during the review is evidence of the goal being reviewed."""
    return turn.item if turn.sender.state in ("status", "notes") else None


REVIEW_FLOW = Flow(
    "review",
    answers=ReviewAnswers,
    begin=begin_review,
    starts=("goals", END),
    evidence_for=goal_under_review,
    steps=(
        Each("goals", over=goals_to_review, then="reflection", steps=(
            Step("status", ask="review/ask_status", context=reviewed_goal,
                 expect=Choice(STATUSES, labels={status: f"review.{status}" for status in STATUSES}),
                 save="status", then="notes"),
            Step("notes", ask="review/ask_notes", context=reviewed_goal, expect=Text(), effect=store_review,
                 then=NEXT),
        )),
        Step("reflection", ask="review/ask_reflection", expect=Text(), effect=store_reflection),
    ),
)


FEATURE = Feature(
    "review",
    flows=(REVIEW_FLOW,),
    commands=(Command("review", flow="review", menu=2),),
    triggers=(Trigger("review", day="review.day", priority=1, flow="review", holiday_shift=-1),),
    settings=(Key("review.day", Weekday(), 4, "the day students are asked to review their week (or off)"),),
    person_tables=("goalreview", "reflection"),
)
