"""Pause: no nudges until a date (a vacation); the student can still write at any time.

    until ─a day after today─► end
"""

from __future__ import annotations

from datetime import date

from core.domain import records
from core.engine.flow import Day, Flow, Invalid, Step, Turn
from core.engine.registry import Command, Feature


def pause_until(turn: Turn, until: date) -> None:
    """No nudges until the chosen day."""
    if until <= turn.today:
        raise Invalid("errors/day_in_past")
    records.set_person(turn.tx, turn.person_id, paused_until=until)
    turn.say("pause/paused", until=until)


PAUSE_FLOW = Flow("pause", steps=(Step("until", ask="pause/ask_until", expect=Day(quick=("next monday",)),
                                       effect=pause_until),))

FEATURE = Feature("pause", flows=(PAUSE_FLOW,), commands=(Command("pause", flow="pause"),))
