"""Onboarding: the language, consent in that language, then time zone and the learner profile,
once, after linking.

    language_first? ─► consent ─agree─► language? ─► timezone ─► timezone_check? ─► strengths ─► needs ─►
    (the chat app reports        └decline─► end        interests ─► aim ─► checkin_time ─► end
     a language other than the   (nothing more is
     school's: confirmed with    asked or stored)
     one tap, before consent)

The language is asked once: first when the chat app suggests another than the school's, else
after the consent. A typed time zone is confirmed by the local time there now.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.domain import records
from core.domain.messages import Button
from core.domain.models import DEFAULT_LOCALE, PersonStatus
from core.engine.flow import END, Choice, Flow, Pick, Step, Turn
from core.engine.registry import Feature
from core.render.templates import LOCALES
from core.features.profile import ProfilePart, checkin_step, language_choice, set_language, text_step, timezone_steps


@dataclass
class Consent(ProfilePart):
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


def guess_first(turn: Turn) -> tuple[Button, ...]:
    """The languages as buttons, the chat app's guess first: one tap confirms it."""
    ordered = sorted(LOCALES, key=lambda locale: locale != turn.locale)
    return tuple(Button(f"language.{locale}", locale) for locale in ordered)


def language_unsettled(turn: Turn) -> bool:
    """Is the language still to be confirmed first? Only when the chat app reports a language other than
    the school's: the consent is then asked in the student's own language (else it follows the consent)."""
    guess = turn.platform_locale
    return bool(guess) and not turn.sender.locale and guess != (turn.sender.school_locale or DEFAULT_LOCALE)


ONBOARDING_FLOW = Flow(
    "onboarding",
    answers=Consent,
    steps=(
        Step("language_first", ask="onboarding/ask_language",
             skip=lambda turn: not language_unsettled(turn), expect=Pick(guess_first, suggests_first=True), effect=set_language,
             then="consent"),
        Step("consent", ask="onboarding/consent", expect=Choice(("agree", "decline")), save="consent",
             effect=record_consent, then=lambda turn: "language" if turn.answers.consent == "agree" else END,
             branches={"language": "agree", END: "decline"}),
        Step("language", ask="profile/ask_language", skip=lambda turn: bool(turn.sender.locale),  # chosen first
             expect=language_choice(), effect=set_language, then="timezone"),
        *timezone_steps(then="strengths"),
        text_step("strengths", then="needs"),
        text_step("needs", then="interests"),
        text_step("interests", then="aim"),
        text_step("aim", then="checkin_time"),
        checkin_step(then=END),
    ),
    finish=welcome_done,
)

FEATURE = Feature("onboarding", flows=(ONBOARDING_FLOW,))
