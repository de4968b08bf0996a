"""The end-of-week review (Friday by default): per goal done / partly / not yet and what helped
or got in the way, then a one-line reflection and the streak.

    status ─► notes ─► (the next goal's status) … ─► reflection ─► end
"""

from __future__ import annotations

from core.domain import records
from core.domain.messages import Button
from core.domain.models import GoalStatus
from core.domain.settings import Key, Weekday
from core.engine.flow import END, Choice, Flow, Step, Text, Turn
from core.engine.registry import Command, Feature, Trigger

STATUSES = ("done", "partly", "not_yet")


def begin_review(turn: Turn) -> str:
    """Line up this week's goals, one by one."""
    week_goals = [g for g in records.of_week(turn.tx, turn.person_id, turn.week_start)
                  if g["status"] == GoalStatus.open]
    turn.answers["review"] = [{"id": g["id"], "text": g["text"]} for g in week_goals]
    if not week_goals:
        turn.say("review/nothing", buttons=(Button("menu.goals", "/goals"),))
        return END
    return "status"


def reviewed_goal(turn: Turn) -> dict:
    return {"goal": turn.answers["review"][0]["text"], "status": turn.answers.get("status")}


def store_review(turn: Turn, notes: str) -> None:
    goal = turn.answers["review"].pop(0)
    records.insert_review(turn.tx, turn.person_id, goal["id"], turn.answers["status"], notes, turn.now)


def store_reflection(turn: Turn, text: str) -> None:
    records.insert_reflection(turn.tx, turn.person_id, turn.week_start, text, turn.now)
    turn.say("review/done", streak=records.review_streak(turn.tx, turn.person_id, turn.week_start))


REVIEW_FLOW = Flow(
    "review",
    begin=begin_review,
    starts=("status", END),
    evidence_for=lambda turn: turn.answers["review"][0] if turn.answers.get("review") else None,
    steps=(
        Step("status", ask="review/ask_status", context=reviewed_goal,
             expect=Choice(STATUSES, labels={status: f"review.{status}" for status in STATUSES}),
             save="status", then="notes"),
        Step("notes", ask="review/ask_notes", context=reviewed_goal, expect=Text(), effect=store_review,
             then=lambda turn: "status" if turn.answers["review"] else "reflection", branches=("status", "reflection")),
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
