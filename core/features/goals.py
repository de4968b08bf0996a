"""Weekly goals (Monday by default): this week's goals to edit, delete or mark done, then new ones.

    goals:  carry_over* ─► week? ─► goal ─► refine? ─► (replace_or_add) ─► confirm ─► category ─► due? ─►
             (unfinished     │  (edit, done,  │vague: two examples,     └ SMART feedback: an answer that holds only
              goals of       │   delete; back │ asked again)              a day, a number or a place is merged into
              earlier weeks) │   to the list) │                           the goal; a new goal: replace or add
                             └─ edit ─► week  │
          outcome ─► obstacle ─► plan ─► confidence ─► smaller? ─► another? ─yes (up to 3)─► goal
                                 (the if–then plan in good   (low: "make it smaller"
                                  grammar is shown; "my own    or "keep it")
                                  words" keeps the student's)

WOOP (wish, outcome, obstacle, plan) with an if–then plan: implementation intentions,
d ≈ 0.65 across 94 tests (Gollwitzer & Sheeran 2006).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from core.domain import dates, records
from core.domain.messages import Button
from core.domain.models import Category, GoalStatus
from core.domain.settings import Key, Weekday
from core.domain.store import Tx
from core.engine.flow import END, Answers, Choice, Day, Flow, Invalid, Number, Pick, Step, Text, Turn, plain_answers
from core.engine.registry import Command, DigestSection, Feature, Trigger
from core.render.lexicon import check_goal

MAX_GOALS = 3
MAX_REFINES = 2
LOW_CONFIDENCE = 2
CATEGORIES = tuple(category.value for category in Category)
# What is left of a SMART follow-up answer once its day and amounts are taken out, when it only
# added to the goal: nothing, or a short place ("at the library", "en la biblioteca").
PLACE = re.compile(r"^(?:at|in|on|en|a|al|con|with|from|desde)\b")
MAX_ADDITION_WORDS = 4
# Words around a day or an amount that add nothing of their own ("by", "para el", "a day", "esta semana").
FILLER = frozenset(("by", "on", "before", "until", "till", "due", "for", "the", "a", "an", "this", "next", "per",
                    "each", "every", "day", "week", "para", "el", "la", "los", "las", "antes", "de", "del", "hasta",
                    "este", "esta", "cada", "por", "dia", "semana", "al"))


# -- goals ----------------------------------------------------------------------------------------


@dataclass
class GoalAnswers(Answers):
    """What the goals flow collects: the goal being set up, and the week's bookkeeping."""

    carry: list[dict] = field(default_factory=list)  # earlier weeks' unfinished goals still to settle
    count: int = 0  # this week's goals so far
    week: str | None = None  # what the student did with this week's list (edit:ID, done:ID, delete:ID, new, close)
    editing: int | None = None  # the goal being reworded
    text: str | None = None
    refines: int = 0
    smart: dict = field(default_factory=dict)
    pending: str | None = None  # the goal as the last SMART answer would make it, shown for confirmation
    offered: str | None = None  # a new goal written at the SMART step, before "replace or add?"
    confirmed: str | None = None
    due_on: str | None = None
    category: str | None = None
    outcome: str | None = None
    obstacle: str | None = None
    plan: str | None = None
    own_plan: str | None = None  # the student's own words for the plan, if they keep them
    confidence: int | None = None
    saved_id: int | None = None  # the goal just stored (a low-confidence goal may be made smaller)
    smaller: str | None = None
    another: str | None = None


def begin_goals(turn: Turn) -> str:
    """Load last weeks' unfinished goals for review, and count this week's."""
    week, answers = turn.week_start, turn.answers
    answers.carry = [{"id": g["id"], "text": g["text"], "category": g["category"], "plan": g["plan"]}
                     for g in records.unfinished_before(turn.tx, turn.person_id, week)]
    answers.count = len(records.of_week(turn.tx, turn.person_id, week))
    if answers.carry:
        return "carry_over"
    return "week" if answers.count else "goal"


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
    return "week" if turn.answers.count else "goal"


# -- this week's list: edit, done, delete, or a new one ----------------------------------------------


def week_goals(turn: Turn) -> list[dict]:
    return records.of_week(turn.tx, turn.person_id, turn.week_start)


def week_context(turn: Turn) -> dict:
    return {"goals": week_goals(turn), "full": turn.answers.count >= MAX_GOALS}


def week_buttons(turn: Turn) -> tuple[Button, ...]:
    """Edit, done and delete for each open goal, then a new goal (while the week has room), then "that's all"."""
    buttons: list[Button] = []
    for n, goal in enumerate(week_goals(turn), 1):
        buttons.append(Button("goal.edit", f"edit:{goal['id']}", {"n": n}))
        if goal["status"] == GoalStatus.open:
            buttons.append(Button("goal.mark_done", f"done:{goal['id']}", {"n": n}))
        buttons.append(Button("goal.delete", f"delete:{goal['id']}", {"n": n}))
    if turn.answers.count < MAX_GOALS:
        buttons.append(Button("goal.new", "new"))
    buttons.append(Button("goal.close", "close"))
    return tuple(buttons)


def act_on_week(turn: Turn, choice: str) -> None:
    """Mark a goal done or delete it (it stays in the records as dropped), or pick one to reword."""
    action, _, goal_id = choice.partition(":")
    answers = turn.answers
    answers.week = action
    if not goal_id:
        return
    goal = next((g for g in week_goals(turn) if g["id"] == int(goal_id)), None)
    if goal is None:
        return
    if action == "edit":
        answers.editing = goal["id"]
    elif action == "done":
        records.set_goal_status(turn.tx, goal["id"], GoalStatus.done, turn.now)
        turn.say("goals/marked_done", goal=goal["text"])
    elif action == "delete":
        records.set_goal_status(turn.tx, goal["id"], GoalStatus.dropped, turn.now)
        answers.count -= 1
        turn.say("goals/deleted", goal=goal["text"])


def after_week(turn: Turn) -> str:
    action = turn.answers.week
    if action == "edit":
        return "edit"
    if action == "new":
        return "goal"
    if action == "close":
        return END
    return "week" if turn.answers.count else "goal"


def edited_goal(turn: Turn) -> dict:
    goal = next((g for g in week_goals(turn) if g["id"] == turn.answers.editing), None)
    return {"goal": goal["text"] if goal else ""}


def reword(turn: Turn, text: str) -> None:
    """The goal in new words; a day named in them becomes its due day."""
    due = dates.find_day(text, turn.today, turn.locale, turn.catalog.lexicon(turn.locale).day_words)
    turn.tx.execute("UPDATE goal SET text = ?, due_on = COALESCE(?, due_on), updated_at = ? "
                    "WHERE id = ? AND person_id = ?",
                    (text, turn.tx.day(due) if due else None, turn.tx.ts(turn.now), turn.answers.editing,
                     turn.person_id))
    turn.say("goals/edited", goal=text)
    turn.answers.editing = None


# -- a new goal: vague ones get examples, SMART feedback edits it ------------------------------------


def examples_context(turn: Turn) -> dict:
    """What two example goals are drawn from: the student's profile and last week's goals."""
    earlier = records.goals(turn.tx, turn.person_id, "week_start < ?", (turn.tx.day(turn.week_start),))
    return {"profile": records.profile(turn.tx, turn.person_id), "last": earlier[-1]["text"] if earlier else None}


def draft_goal(turn: Turn, text: str) -> None:
    """Take the goal in the student's words and check it against SMART; a vague one is asked again."""
    if turn.catalog.lexicon(turn.locale).is_vague(text):
        raise Invalid("goals/too_vague", **examples_context(turn))
    set_goal_text(turn, text)


def set_goal_text(turn: Turn, text: str) -> None:
    check = check_goal(turn.catalog.lexicon(turn.locale), text, turn.today, turn.locale)
    answers = turn.answers
    answers.text = text
    answers.smart = {"specific": check.specific, "measurable": check.measurable, "time_bound": check.time_bound}
    answers.due_on = check.due_on.isoformat() if check.due_on else None


def smart_ok(turn: Turn) -> bool:
    return all(turn.answers.smart.values())


def merged(turn: Turn, goal: str, addition: str) -> str:
    """The goal with what a SMART answer added: "read more" + "thursday" → "read more by thursday"."""
    addition = addition.strip().rstrip(" .!")
    folded = dates.fold(addition)
    if dates.read_day(addition, turn.today, turn.locale) and not dates.LEAD_WORDS.match(folded):
        leads = turn.catalog.lexicon(turn.locale).tables.get("dates", {})
        lead = leads.get("weekday_lead" if dates.NAMED_DAY.match(folded) else "day_lead", "")
        return f"{goal.rstrip(' .!')} {lead} {addition}"
    joiner = " " if PLACE.match(folded) or dates.LEAD_WORDS.match(folded) else ", "
    return f"{goal.rstrip(' .!')}{joiner}{addition}"


def only_adds(turn: Turn, answer: str) -> bool:
    """Does the answer hold only what SMART feedback asked for: a day, a number or amount, a place?"""
    folded = dates.numbers_as_digits(dates.fold(answer), turn.locale)
    if dates.read_day(folded, turn.today, turn.locale):
        return True
    rest = re.sub(r"\d+", " ", dates.DAY_WORD_ANYWHERE.sub(" ", dates.without_amounts(folded)))
    words = [word for word in rest.split() if word not in FILLER]
    if not words:
        return bool(folded.split())
    return len(words) <= MAX_ADDITION_WORDS and bool(PLACE.match(" ".join(words)))


def refine(turn: Turn, answer: str) -> None:
    """Keep the goal as it is, merge what the answer adds, or (a new goal) ask whether it replaces it."""
    answers = turn.answers
    answers.pending = answers.offered = None
    if answer == "keep":
        answers.refines = MAX_REFINES
    elif only_adds(turn, answer):
        answers.pending = merged(turn, answers.text, answer)
    else:
        answers.offered = answer


def after_refine(turn: Turn) -> str:
    answers = turn.answers
    if answers.offered:
        return "replace_or_add"
    if answers.pending:
        return "confirm"
    return "category" if smart_ok(turn) or answers.refines >= MAX_REFINES else "refine"


def replace_or_add(turn: Turn, choice: str) -> None:
    answers = turn.answers
    answers.pending = answers.offered if choice == "replace" else merged(turn, answers.text, answers.offered)
    answers.offered = None


def confirm_goal(turn: Turn, choice: str) -> None:
    """The goal as the answer made it, confirmed: checked again; "change" writes it anew."""
    answers = turn.answers
    if choice == "yes":
        answers.refines += 1
        set_goal_text(turn, answers.pending)
    answers.pending = None


def after_confirm(turn: Turn) -> str:
    """Confirmed: on to the category (the feedback was heard once; it is not asked again)."""
    return "category" if turn.answers.confirmed == "yes" else "goal"


def set_due(turn: Turn, due: date) -> None:
    turn.answers.due_on = due.isoformat()


# -- the if–then plan ------------------------------------------------------------------------------


def if_then(turn: Turn, action: str) -> None:
    """Phrase the plan as an implementation intention: "If <obstacle>, then I will <action>"."""
    parts = turn.catalog.lexicon(turn.locale).if_then(turn.answers.obstacle, action)
    turn.answers.plan = turn.catalog.text("goals/if_then", turn.locale, {"obstacle": parts.obstacle,
                                                                          "action": parts.action,
                                                                          "ready_verb": parts.ready_verb})
    turn.answers.own_plan = action.strip()


def plan_context(turn: Turn) -> dict:
    """The plan as it will be saved, and whether it is already in the student's own words."""
    answers = turn.answers
    return {"plan": answers.plan, "own": answers.plan == answers.own_plan}


# -- saving ------------------------------------------------------------------------------------------


def store_goal(turn: Turn, confidence: int | str) -> None:
    """The goal is complete: store it; a low confidence is offered a smaller step next.
    ("mine": the plan keeps the student's own words, and the question is asked again.)"""
    answers = turn.answers
    if confidence == "mine":
        answers.plan, answers.confidence = answers.own_plan, None
        return
    answers.confidence = confidence
    goal_id = records.insert_goal(turn.tx, turn.person_id, turn.week_start, plain_answers(answers), turn.now)
    answers.count += 1
    turn.say("goals/saved", goal=answers.text, plan=answers.plan, confidence=confidence, count=answers.count,
             max=MAX_GOALS, due_on=answers.due_on)
    # ready for the next goal
    turn.sender.answers = GoalAnswers(count=answers.count, loops=answers.loops, saved_id=goal_id,
                                      confidence=confidence)


def after_confidence(turn: Turn) -> str:
    confidence = turn.answers.confidence
    if confidence is None:
        return "confidence"
    return "smaller" if confidence <= LOW_CONFIDENCE else "another"


def make_smaller(turn: Turn, text: str) -> None:
    """The goal just saved, in smaller words."""
    turn.answers.editing = turn.answers.saved_id
    reword(turn, text)


def another_goal(turn: Turn) -> str:
    """Another goal if the student asked for one and the week has room (also when the question was skipped)."""
    wants = turn.answers.another == "yes"
    return "goal" if wants and turn.answers.count < MAX_GOALS else END


def summarize_week(turn: Turn) -> None:
    """Close with this week's goals, so the student sees the whole plan."""
    if turn.answers.week == "close":
        return  # the student just saw the list
    week_goals_now = records.of_week(turn.tx, turn.person_id, turn.week_start)
    if week_goals_now:
        turn.say("goals/summary", goals=week_goals_now)


def goal_context(turn: Turn) -> dict:
    return {"goal": turn.answers.text, "n": turn.answers.count + 1, "obstacle": turn.answers.obstacle}


def obstacle_context(turn: Turn) -> dict:
    """The obstacle as the plan's "if" will say it."""
    parts = turn.catalog.lexicon(turn.locale).if_then(turn.answers.obstacle or "", "")
    return {**goal_context(turn), "obstacle": parts.obstacle}


GOALS_FLOW = Flow(
    "goals",
    answers=GoalAnswers,
    begin=begin_goals,
    starts=("carry_over", "week", "goal"),
    steps=(
        Step("carry_over", ask="goals/carry_over", context=carried_goal,
             expect=Choice(("carry", "done", "drop"), labels={"carry": "goal.carry", "done": "goal.done",
                                                              "drop": "goal.drop"}),
             effect=settle_carried, then=after_carry, branches=("carry_over", "week", "goal")),
        Step("week", ask="goals/this_week", context=week_context, expect=Pick(week_buttons), effect=act_on_week,
             then=after_week, branches={"edit": "edit", "goal": "new", "week": "done/delete", END: "that's all"}),
        Step("edit", ask="goals/ask_edit", context=edited_goal, expect=Text(max_length=300), effect=reword,
             then="week"),
        Step("goal", ask="goals/ask_goal", context=goal_context, expect=Text(max_length=300),
             effect=draft_goal, then="refine"),
        Step("refine", ask="goals/smart_feedback", skip=smart_ok,
             context=lambda turn: {"goal": turn.answers.text, **turn.answers.smart},
             expect=Choice(("keep",), labels={"keep": "goal.keep"}, or_text=Text(max_length=300)),
             effect=refine, then=after_refine, branches=("replace_or_add", "confirm", "refine", "category")),
        Step("replace_or_add", ask="goals/replace_or_add",
             context=lambda turn: {"goal": turn.answers.text, "new": turn.answers.offered},
             expect=Choice(("replace", "add"), labels={"replace": "goal.replace", "add": "goal.add"}),
             effect=replace_or_add, then="confirm"),
        Step("confirm", ask="goals/confirm_goal", context=lambda turn: {"goal": turn.answers.pending},
             expect=Choice(("yes", "change"), labels={"change": "goal.change"}), save="confirmed",
             effect=confirm_goal, then=after_confirm, branches=("goal", "category")),
        Step("category", ask="goals/ask_category", context=goal_context,
             expect=Choice(CATEGORIES, labels={c: f"category.{c}" for c in CATEGORIES}), save="category",
             then="due"),
        Step("due", ask="goals/ask_due", skip=lambda turn: bool(turn.answers.due_on),
             expect=Day(), effect=set_due, then="outcome"),
        Step("outcome", ask="goals/ask_outcome", context=goal_context, expect=Text(), save="outcome",
             then="obstacle"),
        Step("obstacle", ask="goals/ask_obstacle", expect=Text(), save="obstacle", then="plan"),
        Step("plan", ask="goals/ask_plan", context=obstacle_context, expect=Text(), effect=if_then,
             then="confidence"),
        # The plan is shown with this question: "my own words" keeps the student's wording, and asks again.
        Step("confidence", ask="goals/ask_confidence", context=plan_context,
             expect=Choice(("mine",), labels={"mine": "goal.own_words"}, or_text=Number(1, 5)),
             effect=store_goal, then=after_confidence,
             branches={"confidence": "my own words", "smaller": "1 or 2", "another": "3 to 5"}),
        Step("smaller", ask="goals/ask_smaller", expect=Choice(("smaller", "keep"), labels={
             "smaller": "goal.smaller", "keep": "goal.keep"}), save="smaller",
             then=lambda turn: "smaller_goal" if turn.answers.smaller == "smaller" else "another",
             branches={"smaller_goal": "make it smaller", "another": "keep it"}),
        Step("smaller_goal", ask="goals/ask_smaller_goal", expect=Text(max_length=300), effect=make_smaller,
             then="another"),
        Step("another", ask="goals/ask_another", skip=lambda turn: turn.answers.count >= MAX_GOALS,
             expect=Choice(("yes", "no")), save="another",
             then=another_goal, branches=("goal", END)),
    ),
    finish=summarize_week,
)


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
    commands=(Command("goals", flow="goals", menu=1),),
    triggers=(Trigger("goals", day="goals.day", priority=0, flow="goals", holiday_shift=1),),
    settings=(Key("goals.day", Weekday(), 0, "the day students are asked for this week's goals (or off)"),),
    digest=(DigestSection("goals", collect=goals_this_week),),
    person_tables=("goal",),
)
