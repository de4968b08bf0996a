"""A demo student with a term behind them, for the plan and portfolio tests: goals over several weeks
with reviews and weekly reflections, a report-card reflection whose answers have different audiences,
a photo, a file and a link, the school's competencies and a teacher's level.

`seed_term` writes it all through the same tables the flows write; the test here checks the demo is
what the other tests assume.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from PIL import Image
from sqlalchemy import text

from core.domain import records
from core.domain.store import Store
from core.features import plan
from core.school import competencies as comp
from tests.helpers import enrol

FIXTURES = Path(__file__).parent / "fixtures" / "competencies"
TERM = (date(2026, 8, 31), date(2026, 12, 18))
HOSTILE = "<script>document.title='pwned'</script> {{ 7*7 }} **bold**"
PRIVATE_MESSAGE = "I was upset about English and did not tell anyone"  # a reflection answer kept to herself
PRIVATE_NEED = "essays and asking for help"  # the profile, which she does not share with family
PHOTO_SIZE = (48, 32)


@dataclass
class Demo:
    person_id: int
    code: str  # her invite code, to link a chat account
    goals: dict[str, int]


def photo_bytes(colour: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", PHOTO_SIZE, colour).save(buffer, "PNG")
    return buffer.getvalue()


def seed_term(engine, now: datetime, locale: str = "en", given_name: str = "Maya", weeks: int = 6,
              done_every: int = 2) -> Demo:
    """A student in grade 7 with `weeks` weeks of goals (every `done_every`-th one done) up to `now`'s week."""
    person_id, code = enrol(engine, now, given_name=given_name)
    store = Store(engine)
    week_now = now.date() - timedelta(days=now.weekday())
    with store.transaction() as tx:
        school_id = tx.one("SELECT school_id FROM person WHERE id = ?", (person_id,))[0]
        tx.execute("UPDATE person SET grade = '07', locale = ? WHERE id = ?", (locale, person_id))
        if not tx.one("SELECT 1 FROM calendarevent WHERE school_id = ? AND kind = 'term'", (school_id,)):
            tx.execute("INSERT INTO calendarevent (school_id, source, uid, kind, title, starts_on, ends_on, "
                       "updated_at) VALUES (?, 'roster', 'fall-2026', 'term', 'Fall 2026', ?, ?, ?)",
                       (school_id, tx.day(TERM[0]), tx.day(TERM[1]), tx.ts(now)))
            comp.import_competencies(tx, school_id, (FIXTURES / "good.csv").read_bytes(), now)
        records.save_profile(tx, person_id, now, strengths="drawing and building", needs=PRIVATE_NEED,
                             interests="robots and comics", aim="become an engineer")
        goals: dict[str, int] = {}
        for n in range(weeks):
            week = week_now - timedelta(weeks=weeks - 1 - n)
            goal_text = f"finish {n + 1} math worksheets" if n % 2 == 0 else f"read {10 * (n + 1)} pages"
            goal_id = records.insert_goal(tx, person_id, week, {"text": goal_text, "category": "content_knowledge",
                                                                "plan": "If I get stuck, then I will ask Ms. Rivera",
                                                                "confidence": 3 + n % 3}, now)
            goals[goal_text] = goal_id
            if week < week_now:
                status = "done" if n % done_every == 0 else "partly"
                records.insert_review(tx, person_id, goal_id, status, "practising before dinner helped", now)
                records.insert_reflection(tx, person_id, week, f"week {n + 1}: I work best early", now)
        goals[HOSTILE] = records.insert_goal(tx, person_id, week_now, {"text": HOSTILE, "category": "cognitive_skills"},
                                             now)
        reflection = tx.insert(
            "INSERT INTO reportreflection (person_id, period_title, period_start, period_end, actions, change, "
            "term_goal, message, audience, started_at, finished_at) VALUES (?, 'Quarter 1', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (person_id, tx.day(TERM[0]), tx.day(date(2026, 11, 6)), "I did my math homework every day",
             "start essays earlier", "Raise my English grade to a B", PRIVATE_MESSAGE, "me", tx.ts(now),
             tx.ts(now)))
        for subject, grade, expected, audience in (("Math", "B+", "a B", "family"), ("English", "C", "a B", "me"),
                                                   ("Science", "A", "an A", "adviser")):
            tx.execute("INSERT INTO subjectreflection (reflection_id, person_id, subject, grade, expected, audience, "
                       "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (reflection, person_id, subject, grade, expected, audience, tx.ts(now)))
        photo = photo_bytes()
        key = f"demo-photo-{person_id}-0001"
        tx.execute("INSERT INTO storedfile (key, person_id, name, mime, size, data, created_at) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (key, person_id, "robot.png", "image/png", len(photo), photo, tx.ts(now)))
        math_goal = next(goal_id for goal_text, goal_id in goals.items() if "math" in goal_text)
        for kind, ref, caption, file_key, goal_id in (
                ("photo", "tg-file-1", "my robot arm", key, math_goal),
                ("link", "https://example.org/maya/robot-video", "video of the robot", None, None),
                ("link", "javascript:alert(1)", None, None, None)):
            tx.execute("INSERT INTO artifact (person_id, goal_id, kind, ref, caption, file_key, created_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", (person_id, goal_id, kind, ref, caption, file_key, tx.ts(now)))
        competency = comp.find_competency(tx, school_id, "ELA.7.2")
        comp.record_mastery(tx, person_id, competency["id"], 2, date(2026, 11, 10), "rivera@school.test", now)
    return Demo(person_id, code, goals)


def test_the_demo_student_has_a_term_behind_them(engine, now):
    demo = seed_term(engine, now)
    with engine.connect() as db:
        counts = {table: db.execute(text(f"SELECT COUNT(*) FROM {table} WHERE person_id = :id"),
                                    {"id": demo.person_id}).scalar()
                  for table in ("goal", "goalreview", "reflection", "artifact", "subjectreflection", "mastery")}
    assert counts == {"goal": 7, "goalreview": 5, "reflection": 5, "artifact": 3, "subjectreflection": 3, "mastery": 1}
    with Store(engine).transaction() as tx:
        found = plan.read_plan(tx, demo.person_id, now.date(), comp.DEFAULT_GRADES)
    assert found.term == {"title": "Fall 2026", "start": TERM[0], "end": TERM[1]}
    assert [c["code"] for c in found.competencies] == ["ELA.7.2", "MATH.7.1", "SCI.7.3"]  # not the grade 9–12 one
