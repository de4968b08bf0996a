"""The flow stack, one dialog table per rule (core/engine/stack.py), and the defects the old single
"suspended" slot had. Each table runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import text

from core.domain.messages import Inbound
from core.domain.store import Store
from core.engine.pipeline import Engine
from core.features import REGISTRY
from tests.helpers import Chat, enrol, play

ONBOARDED = [("@agree", ["profile/ask_language"]), ("@en", ["profile/ask_timezone"]),
             ("@keep", ["profile/ask_strengths"]), ("drawing", ["profile/ask_needs"]),
             ("essays", ["profile/ask_interests"]), ("robots", ["profile/ask_aim"]),
             ("engineer", ["profile/ask_checkin_time"]), ("4pm", ["onboarding/done"])]
GOAL_STARTED = [("/goals", ["goals/ask_goal"]), ("read 20 pages by Thursday", ["goals/ask_category"])]


@pytest.fixture
def conversation(engine, now):
    return Engine(Store(engine), REGISTRY, clock=lambda: now)


@pytest.fixture
def chat(conversation, engine, now) -> Chat:
    """A student past onboarding, halfway through setting a goal."""
    _, code = enrol(engine, now)
    chat = Chat(conversation, "ana")
    chat.say(code)
    play(chat, ONBOARDED + GOAL_STARTED)
    return chat


def stack_of(engine, user: str = "ana") -> tuple[str | None, dict]:
    """The open flow and the rest of the stack, as stored."""
    with engine.connect() as db:
        flow, stack = db.execute(text("SELECT c.flow, c.stack FROM conversation c JOIN chatidentity i "
                                      "ON i.person_id = c.person_id WHERE i.external_id = :user"), {"user": user}).one()
    return flow, json.loads(stack) if stack else {}


def names(frames: list[dict]) -> list[str]:
    return [frame["flow"] for frame in frames]


def test_a_flow_started_inside_another_is_pushed(chat, engine):
    play(chat, [("/profile", ["profile/show"])])
    flow, stack = stack_of(engine)
    assert flow == "profile" and names(stack["below"]) == ["goals"]
    assert stack["below"][0]["answers"]["text"] == "read 20 pages by Thursday"  # it waits with its answers


def test_when_the_top_flow_finishes_the_one_below_asks_again(chat, engine):
    play(chat, [("/profile", ["profile/show"]),
                ("@done", ["commands/resuming", "goals/ask_category"]),
                ("@habits_of_success", ["goals/ask_outcome"])])
    assert stack_of(engine)[0] == "goals"


def test_cancel_sets_the_top_aside_and_nothing_below_resumes(chat, engine):
    play(chat, [("/profile", ["profile/show"]),
                ("/cancel", ["commands/left"]),
                ("hi", ["commands/menu"])])  # not the goal's question: nothing resumed by itself
    flow, stack = stack_of(engine)
    assert flow is None and names(stack["aside"]) == ["goals", "profile"]  # profile is the newest


@pytest.mark.parametrize("says, answered", [("/stop", ["commands/stopped_now"]),
                                            ("I want to kill myself", ["safety/support"])])
def test_stop_or_a_crisis_sets_every_flow_aside_and_asks_nothing(chat, engine, says, answered):
    play(chat, [("/profile", ["profile/show"]), (says, answered)])
    flow, stack = stack_of(engine)
    assert flow is None and stack["below"] == [] and names(stack["aside"]) == ["goals", "profile"]


def test_resume_lists_what_was_set_aside_newest_first_and_the_student_picks(chat, engine):
    play(chat, [("/profile", ["profile/show"]), ("/cancel", ["commands/left"])])
    (template, _, buttons), = chat.say("/resume")
    assert template == "commands/resume_pick"
    assert buttons == (("My profile", "/resume 0"), ("This week's goals", "/resume 1"))
    play(chat, [("@/resume 1", ["commands/resuming", "goals/ask_category"]),
                ("@cognitive_skills", ["goals/ask_outcome"])])
    flow, stack = stack_of(engine)
    assert flow == "goals" and names(stack["aside"]) == ["profile"]


def test_a_nudge_while_a_flow_is_open_is_queued_and_offered_once_idle(chat, conversation, engine):
    play(chat, [("/profile", ["profile/show"])])
    conversation.handle(Inbound("console", "nudge:1", "ana", "ana", opens="review"), priority=1)
    assert chat.deliver() == []  # nothing interrupts the open question
    assert stack_of(engine)[1]["queued"] == ["review"]
    play(chat, [("@done", ["commands/resuming", "goals/ask_category"])])  # goals still waits below
    play(chat, [("/cancel", ["commands/left", "commands/queued"])])
    (_, _, buttons), = [reply for reply in chat.say("hello") if reply[0] == "commands/queued"]
    assert buttons == (("Review of my week", "/open review"),)
    play(chat, [("@/open review", ["review/nothing"])])  # no goals this week yet: the review says so
    assert stack_of(engine)[1]["queued"] == []


def test_a_nudge_when_idle_opens_its_flow_at_once(conversation, engine, now):
    _, code = enrol(engine, now)
    chat = Chat(conversation, "ana")
    chat.say(code)
    play(chat, ONBOARDED)
    conversation.handle(Inbound("console", "nudge:1", "ana", "ana", opens="goals"), priority=1)
    assert [template for template, _, _ in chat.deliver()] == ["goals/ask_goal"]


def test_set_aside_flows_are_kept_a_week(chat, engine, now):
    play(chat, [("/cancel", ["commands/left"])])
    chat.engine = Engine(Store(engine), REGISTRY, clock=lambda: now + timedelta(days=6))
    assert [t for t, _, _ in chat.say("/resume")] == ["commands/resume_pick"]
    chat.engine = Engine(Store(engine), REGISTRY, clock=lambda: now + timedelta(days=8))
    assert [t for t, _, _ in chat.say("/resume")] == ["commands/menu"]


# -- the defects of the single suspended slot, each reproduced before this stack -----------------------


def test_goals_then_profile_then_pause_keeps_the_goals_answers(chat, engine):
    play(chat, [("/profile", ["profile/show"]),
                ("/pause", ["pause/ask_until"]),
                ("Dec 7", ["pause/paused", "commands/resuming", "profile/show"]),
                ("@done", ["commands/resuming", "goals/ask_category"]),
                ("@content_knowledge", ["goals/ask_outcome"]),
                ("enjoy it", ["goals/ask_obstacle"]), ("my phone", ["goals/ask_plan"]),
                ("put it away", ["goals/ask_confidence"]), ("@4", ["goals/saved", "goals/ask_another"])])
    with engine.connect() as db:
        goals = db.execute(text("SELECT text FROM goal")).scalars().all()
    assert goals == ["read 20 pages by Thursday"]


def test_a_review_cancelled_then_done_again_does_not_come_back(chat, engine):
    play(chat, [("@content_knowledge", ["goals/ask_outcome"]), ("enjoy it", ["goals/ask_obstacle"]),
                ("my phone", ["goals/ask_plan"]), ("put it away", ["goals/ask_confidence"]),
                ("@4", ["goals/saved", "goals/ask_another"]), ("@no", ["goals/summary"]),
                ("/review", ["review/ask_status"]),
                ("/cancel", ["commands/left"]),
                ("/review", ["review/ask_status"]),  # a new run replaces the one set aside
                ("@done", ["review/ask_notes"]),
                ("worked at lunch", ["review/ask_reflection"]),
                ("good week", ["review/done"]),
                ("hello", ["commands/menu"])])  # nothing comes back to ask the same goal again
    assert stack_of(engine)[1]["aside"] == []
    with engine.connect() as db:
        assert db.execute(text("SELECT status FROM goal")).scalar() == "done"
        assert db.execute(text("SELECT COUNT(*) FROM goalreview")).scalar() == 1
