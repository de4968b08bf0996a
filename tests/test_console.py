"""`companion chat` as a newcomer scripts it: a demo student goes from invite code to three goals,
and a killed process resumes at the same question with nothing lost."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from core.domain.db import make_engine

ONBOARDING = ["@agree", "@en", "@keep", "drawing", "essays", "robots", "engineer", "4pm", "@/goals"]
GOAL_ONE = ["read 20 pages of my novel by Thursday", "@content_knowledge", "I enjoy the story",
            "I get distracted", "put my phone in the kitchen", "@4", "@yes"]
GOAL_TWO_START = ["finish 3 algebra units by Wednesday", "@content_knowledge", "I feel ready for the quiz",
                  "I feel tired"]
GOAL_TWO_END = ["take a five minute walk first", "@3", "@yes"]
GOAL_THREE = ["practice piano 20 minutes on 4 days by Sunday", "@habits_of_success", "I play the song well",
              "I put it off", "set a timer after dinner", "@5"]


def companion(*args: str, env: dict, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bot.cli", *args], env=env, text=True, **kwargs)


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "COMPANION_DATABASE_URL": f"sqlite:///{tmp_path / 'school.db'}",
            "PYTHONPATH": str(Path(__file__).resolve().parents[1])}


def wait_for_state(url: str, state: str, goals: int, timeout: float = 30) -> None:
    """Poll the database until the conversation waits at `state` with `goals` goals stored."""
    engine = make_engine(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as db:
            if db.execute(text("SELECT COUNT(*) FROM conversation WHERE state = :s AND "
                               "(SELECT COUNT(*) FROM goal) = :g"), {"s": state, "g": goals}).scalar():
                engine.dispose()
                return
        time.sleep(0.05)
    raise AssertionError(f"never reached {state}")


def test_scripted_chat_from_invite_code_to_three_goals_survives_a_kill(env, tmp_path):
    demo = subprocess.run([sys.executable, "-m", "bot.cli", "demo"], env=env, text=True, capture_output=True,
                          check=True)
    code = re.search(r"^\s+([A-Z0-9]{4}-[A-Z0-9]{4})\s", demo.stdout, re.MULTILINE).group(1)

    first = companion("chat", "--user", "maria", env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    for line in [code, *ONBOARDING, *GOAL_ONE, *GOAL_TWO_START]:
        first.stdin.write(translate(line) + "\n")
        first.stdin.flush()
    wait_for_state(env["COMPANION_DATABASE_URL"], "plan", goals=1)  # goal two waits for its if–then plan
    first.send_signal(signal.SIGKILL)
    first.wait()

    second = companion("chat", "--user", "maria", env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out, _ = second.communicate("".join(translate(line) + "\n" for line in GOAL_TWO_END + GOAL_THREE), timeout=60)
    assert second.returncode == 0
    # The restarted chat opens with the question the killed one left open.
    assert out.split("\n\n")[0] == "Make a plan for that moment: if I feel tired, then what will you do?"

    engine = make_engine(env["COMPANION_DATABASE_URL"])
    with engine.connect() as db:
        goals = db.execute(text("SELECT text, plan, confidence FROM goal ORDER BY id")).all()
    engine.dispose()
    assert [g.text for g in goals] == [GOAL_ONE[0], GOAL_TWO_START[0], GOAL_THREE[0]]
    assert [g.plan for g in goals] == ["If I get distracted, then I will put my phone in the kitchen",
                                       "If I feel tired, then I will take a five minute walk first",
                                       "If I put it off, then I will set a timer after dinner"]
    assert [g.confidence for g in goals] == [4, 3, 5]


BUTTON_NUMBERS = {"@agree": "1", "@en": "1", "@keep": "1", "@/goals": "1", "@yes": "1", "@content_knowledge": "1",
                  "@habits_of_success": "3", "@3": "3", "@4": "4", "@5": "5"}


def translate(line: str) -> str:
    """A tap on the console is the number printed beside the button."""
    return BUTTON_NUMBERS.get(line, line)
