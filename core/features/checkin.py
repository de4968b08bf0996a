"""The mid-week check-in nudge (off unless a school turns it on): a short message with buttons
to look at the week's goals or review them. It opens no flow of its own yet.
"""

from __future__ import annotations

from core.domain.settings import Key, Weekday
from core.engine.registry import Feature, Trigger

FEATURE = Feature(
    "checkin",
    triggers=(Trigger("checkin", day="checkin.day", priority=2, quiet_in_exams=True),),
    settings=(Key("checkin.day", Weekday(), None, "the day of the optional mid-week check-in (or off)"),),
)
