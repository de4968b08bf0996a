"""Advisers: `/students` lists their advisees (and only theirs), with what each feature's digest
section says about them this week.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.domain import access
from core.engine.flow import Turn
from core.engine.registry import ADULTS, Command, Feature

if TYPE_CHECKING:
    from core.engine.pipeline import Engine


def list_students(engine: "Engine", turn: Turn, _args: str) -> None:
    """An adviser's advisees, with every feature's section about each of them this week."""
    students = access.advisees(turn.tx, turn.person_id)
    ids = [student["id"] for student in students]
    for section in engine.registry.digest_sections():
        found = section.collect(turn.tx, ids, turn.week_start)
        for student in students:
            student[section.name] = found.get(student["id"])
    turn.say("adviser/students", students=students)


FEATURE = Feature("adviser", commands=(Command("students", run=list_students, roles=ADULTS, menu=1, home=True),))
