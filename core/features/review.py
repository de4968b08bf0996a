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
    records.insert_reflection(turn.tx, turn.person_id, turn.week_start, text, turn.now)
    turn.say("review/done", streak=records.review_streak(turn.tx, turn.person_id, turn.week_start))


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
