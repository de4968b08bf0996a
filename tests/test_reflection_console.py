"""A scripted `companion chat`: a linked demo student with last period's goals goes through the whole
report-card reflection; the process is killed mid-reflection and, restarted, asks the same question again."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import text

from core.domain.db import make_engine
from tests.test_console import companion, env, wait_for_state  # noqa: F401  (env is a fixture)

BEFORE_KILL = ["/reflect", "B+", "2", "3 of 4", "3", "I did my homework but rushed the essays"]
AFTER_KILL = ["start essays a week early", "get a B in English", "I worked hard this term", "2", "1", "3"]


def linked_with_last_period(url: str, today: date) -> tuple[int, date, date]:
    """A demo student linked to the console account "maria" (past onboarding), a grading period that ended three
    days ago with their goals in it, and a second subject class besides the demo's one."""
    ends_on, starts_on = today - timedelta(days=3), today - timedelta(days=66)
    now = datetime.now(timezone.utc)
    engine = make_engine(url)
    with engine.begin() as db:
        person_id = db.execute(text("SELECT MIN(e.person_id) FROM enrollment e JOIN rosterclass c ON c.id = e.class_id "
                                    "WHERE e.role = 'student' AND NOT c.advisory")).scalar()
        db.execute(text("UPDATE person SET locale = 'en', consent_at = :now WHERE id = :p"), {"p": person_id, "now": now})
        db.execute(text("INSERT INTO chatidentity (platform, external_id, chat_id, person_id, failed_attempts, "
                        "unreachable, created_at) VALUES ('console', 'maria', 'maria', :p, 0, :f, :now)"),
                   {"p": person_id, "f": False, "now": now})
        db.execute(text("INSERT INTO conversation (person_id, answers, version, updated_at) VALUES (:p, '{}', 0, :now)"),
                   {"p": person_id, "now": now})
        school_id = db.execute(text("SELECT school_id FROM person WHERE id = :p"), {"p": person_id}).scalar()
        db.execute(text("INSERT INTO calendarevent (school_id, source, uid, kind, title, starts_on, ends_on, "
                        "updated_at) VALUES (:s, 'roster', 'gp-test', 'grading_period', 'Term 1', :a, :b, :now)"),
                   {"s": school_id, "a": starts_on, "b": ends_on, "now": datetime.now(timezone.utc)})
        class_id = db.execute(text("INSERT INTO rosterclass (sourced_id, school_id, title, class_type, subjects, "
                                   "advisory) VALUES ('cls-eng', :s, 'English 7', 'scheduled', 'English', :f) "
                                   "RETURNING id"), {"s": school_id, "f": False}).scalar_one()
        db.execute(text("INSERT INTO enrollment (sourced_id, class_id, person_id, role) "
                        "VALUES ('enr-eng', :c, :p, 'student')"), {"c": class_id, "p": person_id})
        week = ends_on - timedelta(days=ends_on.weekday())
        for goal, status in (("read 20 pages of my novel", "done"), ("finish my essay draft", "not_yet")):
            db.execute(text("INSERT INTO goal (person_id, week_start, text, category, plan, status, created_at, "
                            "updated_at) VALUES (:p, :w, :t, 'content_knowledge', 'If I get tired, then I will walk', "
                            ":s, :now, :now)"), {"p": person_id, "w": week, "t": goal, "s": status,
                                                  "now": datetime.now(timezone.utc)})
    engine.dispose()
    return person_id, starts_on, ends_on


def test_scripted_reflection_survives_a_kill(env, tmp_path):  # noqa: F811  (env is the fixture)
    url = env["COMPANION_DATABASE_URL"]
    subprocess.run([sys.executable, "-m", "bot.cli", "demo"], env=env, text=True, capture_output=True, check=True)
    person_id, starts_on, ends_on = linked_with_last_period(url, datetime.now(timezone.utc).date())

    first = companion("chat", "--user", "maria", env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    for line in BEFORE_KILL:
        first.stdin.write(line + "\n")
        first.stdin.flush()
    wait_for_state(url, "change", goals=2)  # the actions are stored; "what will you change?" is open
    first.send_signal(signal.SIGKILL)
    first.wait()

    second = companion("chat", "--user", "maria", env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out, _ = second.communicate("".join(line + "\n" for line in AFTER_KILL), timeout=60)
    assert second.returncode == 0
    assert out.split("\n\n")[0] == "What will you change next time?"  # the same question again
    assert "Your reflection on Term 1" in out and "get a B in English" in out

    engine = make_engine(url)
    with engine.connect() as db:
        row = db.execute(text("SELECT period_title, period_end, actions, change, term_goal, message, audience, "
                              "finished_at FROM reportreflection WHERE person_id = :p"), {"p": person_id}).one()
        subjects = db.execute(text("SELECT subject, grade, expected, audience FROM subjectreflection "
                                   "WHERE person_id = :p ORDER BY subject"), {"p": person_id}).all()
    engine.dispose()
    assert (row.period_title, str(row.period_end)) == ("Term 1", ends_on.isoformat())
    assert (row.actions, row.change, row.term_goal, row.message) == (BEFORE_KILL[-1], *AFTER_KILL[:3])
    assert row.audience == "family" and row.finished_at is not None
    assert [tuple(s) for s in subjects][0] == ("English 7", "B+", "about_right", "adviser")
    assert [tuple(s)[1:] for s in subjects][1] == ("3 of 4", "lower", "me")
