"""`companion chat`, scripted: a demo student goes from `/project` through an adviser's approval (a
second `companion chat --user`) to a first check-in with a link as evidence, and the rows are stored."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from core.domain.db import make_engine

# The first onboarding answer (consent or language: "1" either way), then straight to /project: the
# onboarding waits below and is answered later (other issues' tests script it).
STUDENT = ["1", "/project", "robots", "How can I build a robot that waters our class plants?",
           "our plants die over the weekend", "my class"]
ADVISER = ["/projects", "1"]  # the list of advisees' projects, then its "Approve Ethan" button
AHEAD = [date.today() + timedelta(days=days) for days in (7, 9, 14)]  # the demo school has no calendar: any day is fine
FIRST_CHECKIN = ["/cancel", "/open genius_pitch",  # the onboarding set aside, the approved pitch goes on
                 "1",  # "Let's go": plan the milestones
                 "Buy the parts", f"{AHEAD[0]:%b %d}", "Build the frame", f"{AHEAD[1]:%b %d}", "Code the sensor",
                 f"{AHEAD[2]:%b %d}", "2",  # "That's the plan"
                 "/project checkin", "I bought the parts", "build the frame", "1", "https://example.org/parts-photo",
                 "1"]  # the first milestone is done


def chat(user: str, lines: list[str], env: dict) -> str:
    done = subprocess.run([sys.executable, "-m", "bot.cli", "chat", "--user", user], env=env, text=True,
                          input="".join(line + "\n" for line in lines), capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "COMPANION_DATABASE_URL": f"sqlite:///{tmp_path / 'school.db'}",
            "PYTHONPATH": str(Path(__file__).resolve().parents[1])}


def test_a_demo_student_from_project_through_approval_to_a_first_check_in(env):
    subprocess.run([sys.executable, "-m", "bot.cli", "demo"], env=env, text=True, capture_output=True, check=True)
    invites = subprocess.run([sys.executable, "-m", "bot.cli", "invites", "--role", "adviser"], env=env, text=True,
                             capture_output=True, check=True).stdout
    adviser_code = next(line.split(",")[5] for line in invites.splitlines() if "whitfield" in line)
    engine = make_engine(env["COMPANION_DATABASE_URL"])
    with engine.connect() as db:
        student_code = db.execute(text("SELECT i.code FROM invitecode i JOIN person p ON p.id = i.person_id "
                                       "WHERE p.given_name = 'Ethan'")).scalar()

    assert "I sent your pitch to your adviser" in chat("ethan", [student_code, *STUDENT], env)
    assert "Approved. Ethan can plan their milestones now." in chat("dana", [adviser_code, *ADVISER], env)
    out = chat("ethan", FIRST_CHECKIN, env)
    assert "approved your pitch" in out and "Check-in saved. Evidence kept: 1." in out

    with engine.connect() as db:
        project = db.execute(text("SELECT id, stage, approval, passion FROM geniusproject")).one()
        milestones = db.execute(text("SELECT text, done_on FROM geniusmilestone ORDER BY position")).all()
        checkin = db.execute(text("SELECT progress, next_step, blocker FROM geniuscheckin")).one()
        evidence = db.execute(text("SELECT a.kind, a.ref, e.project_id, e.milestone_id IS NOT NULL FROM geniusevidence e "
                                   "JOIN artifact a ON a.id = e.artifact_id")).one()
        decision = db.execute(text("SELECT p.given_name, a.action FROM adultaction a JOIN person p ON p.id = a.actor_id "
                                   "WHERE a.subject = 'geniusproject'")).one()
    engine.dispose()
    assert tuple(project[1:]) == ("project", "approved", "robots")
    assert [m.text for m in milestones] == ["Buy the parts", "Build the frame", "Code the sensor"]
    assert milestones[0].done_on is not None and milestones[1].done_on is None
    assert tuple(checkin) == ("I bought the parts", "build the frame", None)
    assert tuple(evidence) == ("link", "https://example.org/parts-photo", project[0], True)
    assert tuple(decision) == ("Dana", "approved")
