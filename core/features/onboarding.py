"""Onboarding: consent, then language, time zone and the learner profile, once, after linking.

    consent ─agree─► language ─► timezone ─► strengths ─► needs ─► interests ─► aim ─► checkin_time ─► end
            └decline─► end (nothing more is asked or stored)
"""

from __future__ import annotations

from dataclasses import dataclass

from core.domain import records
from core.domain.messages import Button
from core.domain.models import PersonStatus
from core.engine.flow import END, Answers, Choice, Flow, Step, Turn
from core.engine.registry import Feature
from core.features.profile import checkin_step, language_step, text_step, timezone_step


@dataclass
class Consent(Answers):
    consent: str | None = None  # agree or decline


def record_consent(turn: Turn, choice: str) -> None:
    """An agreement is stamped on the person; a refusal stops all messages."""
    if choice == "agree":
        records.set_person(turn.tx, turn.person_id, consent_at=turn.now, status=PersonStatus.active)
    else:
        records.set_person(turn.tx, turn.person_id, status=PersonStatus.stopped)
        turn.say("onboarding/declined")


def welcome_done(turn: Turn) -> None:
    """Close onboarding by offering the first weekly goals."""
    if turn.answers.consent == "agree":
        turn.say("onboarding/done", name=turn.sender.given_name,
                 buttons=(Button("menu.goals", "/goals"), Button("menu.later", "/help")))


ONBOARDING_FLOW = Flow(
    "onboarding",
    answers=Consent,
    steps=(
        Step("consent", ask="onboarding/consent", expect=Choice(("agree", "decline")), save="consent",
             effect=record_consent, then=lambda turn: "language" if turn.answers.consent == "agree" else END,
             branches={"language": "agree", END: "decline"}),
        language_step(then="timezone"),
        timezone_step(then="strengths"),
        text_step("strengths", then="needs"),
        text_step("needs", then="interests"),
        text_step("interests", then="aim"),
        text_step("aim", then="checkin_time"),
        checkin_step(then=END),
    ),
    finish=welcome_done,
)

FEATURE = Feature("onboarding", flows=(ONBOARDING_FLOW,))
