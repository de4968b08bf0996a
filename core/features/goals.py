"""Weekly goals (Monday by default), and `/plan`: progress across the four categories.

    goals:  carry_over* ─► goal ─► refine? ─► category ─► due? ─► outcome ─► obstacle ─► plan ─► confidence ─► another?
             (each unfinished goal        └── SMART feedback; the student sharpens it or keeps it        │
              of earlier weeks: carry,                                                                   └ yes (up to 3) ─► goal
              done or drop)

WOOP (wish, outcome, obstacle, plan) with an if–then plan: implementation intentions,
d ≈ 0.65 across 94 tests (Gollwitzer & Sheeran 2006).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

from core.domain import records
from core.domain.models import Category, GoalStatus
from core.domain.settings import Key, Weekday
from core.domain.store import Tx
from core.engine.flow import END, Answers, Choice, Day, Flow, Number, Step, Text, Turn, plain_answers
from core.engine.registry import Command, DigestSection, Feature, Trigger
from core.render.lexicon import check_goal

if TYPE_CHECKING:
    from core.engine.pipeline import Engine

MAX_GOALS = 3
MAX_REFINES = 2
CATEGORIES = tuple(category.value for category in Category)


# -- goals ----------------------------------------------------------------------------------------


@dataclass
class GoalAnswers(Answers):
    """What the goals flow collects: the goal being set up, and the week's bookkeeping."""

    carry: list[dict] = field(default_factory=list)  # earlier weeks' unfinished goals still to settle
    count: int = 0  # this week's goals so far
    full: bool = False
    text: str | None = None
    refines: int = 0
    smart: dict = field(default_factory=dict)
    due_on: str | None = None
    category: str | None = None
    outcome: str | None = None
    obstacle: str | None = None
    plan: str | None = None
    confidence: int | None = None
    another: str | None = None


def begin_goals(turn: Turn) -> str:
    """Load last weeks' unfinished goals for review, and count this week's."""
    week, answers = turn.week_start, turn.answers
    answers.carry = [{"id": g["id"], "text": g["text"], "category": g["category"], "plan": g["plan"]}
                     for g in records.unfinished_before(turn.tx, turn.person_id, week)]
    answers.count = len(records.of_week(turn.tx, turn.person_id, week))
    if answers.carry:
        return "carry_over"
    if answers.count >= MAX_GOALS:
        answers.full = True
        turn.say("goals/week_full", goals=records.of_week(turn.tx, turn.person_id, week))
        return END
    return "goal"


def carried_goal(turn: Turn) -> dict:
    return {"goal": turn.answers.carry[0]["text"], "left": len(turn.answers.carry)}


def settle_carried(turn: Turn, choice: str) -> None:
    """Carry a goal into this week, mark it done, or drop it."""
    answers = turn.answers
    goal = answers.carry.pop(0)
    if choice == "carry" and answers.count < MAX_GOALS:
        records.insert_goal(turn.tx, turn.person_id, turn.week_start, {**goal, "carried_from_id": goal["id"]},
                            turn.now)
        answers.count += 1
        records.set_goal_status(turn.tx, goal["id"], GoalStatus.carried, turn.now)
    else:
        records.set_goal_status(turn.tx, goal["id"], GoalStatus.done if choice == "done" else GoalStatus.dropped,
                                turn.now)


def after_carry(turn: Turn) -> str:
    if turn.answers.carry:
        return "carry_over"
    return "goal" if turn.answers.count < MAX_GOALS else END


def draft_goal(turn: Turn, text: str) -> None:
    """Take the goal in the student's words and check it against SMART."""
    check = check_goal(turn.catalog.lexicon(turn.locale), text, turn.today, turn.locale)
    answers = turn.answers
    answers.text = text
    answers.smart = {"specific": check.specific, "measurable": check.measurable, "time_bound": check.time_bound}
    answers.due_on = check.due_on.isoformat() if check.due_on else None


def smart_ok(turn: Turn) -> bool:
    return all(turn.answers.smart.values())


def refine(turn: Turn, answer: str) -> None:
    """Keep the goal as it is, or take the sharper version the student wrote."""
    if answer != "keep":
        turn.answers.refines += 1
        draft_goal(turn, answer)
    else:
        turn.answers.refines = MAX_REFINES


def after_refine(turn: Turn) -> str:
    return "category" if smart_ok(turn) or turn.answers.refines >= MAX_REFINES else "refine"


def set_due(turn: Turn, due: date) -> None:
    turn.answers.due_on = due.isoformat()


def if_then(turn: Turn, action: str) -> None:
    """Phrase the plan as an implementation intention: "If <obstacle>, then I will <action>"."""
    lexicon = turn.catalog.lexicon(turn.locale)
    turn.answers.plan = turn.catalog.text("goals/if_then", turn.locale,
                                          {"obstacle": lexicon.plan_action(turn.answers.obstacle),
                                           "action": lexicon.plan_action(action)})


def store_goal(turn: Turn, confidence: int) -> None:
    """The goal is complete: store it, and encourage a smaller step when confidence is low."""
    answers = turn.answers
    records.insert_goal(turn.tx, turn.person_id, turn.week_start, plain_answers(answers), turn.now)
    answers.count += 1
    turn.say("goals/saved", goal=answers.text, plan=answers.plan, confidence=confidence, count=answers.count,
             max=MAX_GOALS)
    turn.sender.answers = GoalAnswers(count=answers.count, loops=answers.loops)  # ready for the next goal


def another_goal(turn: Turn) -> str:
    """Another goal if the student asked for one and the week has room (also when the question was skipped)."""
    wants = turn.answers.another == "yes"
    return "goal" if wants and turn.answers.count < MAX_GOALS else END


def summarize_week(turn: Turn) -> None:
    """Close with this week's goals, so the student sees the whole plan."""
    if turn.answers.full:
        return  # the week was already full: the goals were just listed
    week_goals = records.of_week(turn.tx, turn.person_id, turn.week_start)
    if week_goals:
        turn.say("goals/summary", goals=week_goals)


def goal_context(turn: Turn) -> dict:
    return {"goal": turn.answers.text, "n": turn.answers.count + 1, "obstacle": turn.answers.obstacle}


GOALS_FLOW = Flow(
    "goals",
    answers=GoalAnswers,
    begin=begin_goals,
    starts=("carry_over", "goal", END),
    steps=(
        Step("carry_over", ask="goals/carry_over", context=carried_goal,
             expect=Choice(("carry", "done", "drop"), labels={"carry": "goal.carry", "done": "goal.done",
                                                              "drop": "goal.drop"}),
             effect=settle_carried, then=after_carry, branches=("carry_over", "goal", END)),
        Step("goal", ask="goals/ask_goal", context=goal_context, expect=Text(max_length=300),
             effect=draft_goal, then="refine"),
        Step("refine", ask="goals/smart_feedback", skip=smart_ok,
             context=lambda turn: {"goal": turn.answers.text, **turn.answers.smart},
             expect=Choice(("keep",), labels={"keep": "goal.keep"}, or_text=Text(max_length=300)),
             effect=refine, then=after_refine, branches=("refine", "category")),
        Step("category", ask="goals/ask_category", context=goal_context,
             expect=Choice(CATEGORIES, labels={c: f"category.{c}" for c in CATEGORIES}), save="category",
             then="due"),
        Step("due", ask="goals/ask_due", skip=lambda turn: bool(turn.answers.due_on),
             expect=Day(), effect=set_due, then="outcome"),
        Step("outcome", ask="goals/ask_outcome", context=goal_context, expect=Text(), save="outcome",
             then="obstacle"),
        Step("obstacle", ask="goals/ask_obstacle", expect=Text(), save="obstacle", then="plan"),
        Step("plan", ask="goals/ask_plan", context=goal_context, expect=Text(), effect=if_then,
             then="confidence"),
        Step("confidence", ask="goals/ask_confidence", expect=Number(1, 5), save="confidence",
             effect=store_goal, then="another"),
        Step("another", ask="goals/ask_another", skip=lambda turn: turn.answers.count >= MAX_GOALS,
             expect=Choice(("yes", "no")), save="another",
             then=another_goal, branches=("goal", END)),
    ),
    finish=summarize_week,
)


def show_plan(engine: "Engine", turn: Turn, _args: str) -> None:
    """Progress across the four categories, with this week's goals."""
    turn.say("goals/plan", progress=records.progress_by_category(turn.tx, turn.person_id),
             goals=records.of_week(turn.tx, turn.person_id, turn.week_start),
             profile=records.profile(turn.tx, turn.person_id))


def goals_this_week(tx: Tx, students: list[int], week: date) -> dict[int, list[dict]]:
    """Each advisee's goals this week, with how sure they feel: what an adviser looks at first."""
    found: dict[int, list[dict]] = {student: [] for student in students}
    if students:
        for row in tx.rows(f"SELECT person_id, text, confidence, status FROM goal WHERE week_start = ? "
                           f"AND status != ? AND person_id IN ({', '.join('?' * len(students))}) ORDER BY id",
                           (tx.day(week), GoalStatus.dropped, *students)):
            found[row.pop("person_id")].append(row)
    return found


FEATURE = Feature(
    "goals",
    flows=(GOALS_FLOW,),
    commands=(Command("goals", flow="goals", menu=1), Command("plan", run=show_plan, menu=3, home=True)),
    triggers=(Trigger("goals", day="goals.day", priority=0, flow="goals", holiday_shift=1),),
    settings=(Key("goals.day", Weekday(), 0, "the day students are asked for this week's goals (or off)"),),
    digest=(DigestSection("goals", collect=goals_this_week),),
    person_tables=("goal",),
)
