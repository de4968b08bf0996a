"""Onboarding, the learner profile and the settings a student can change at any time.

    onboarding: consent ─agree─► language ─► timezone ─► strengths ─► needs ─► interests ─► aim ─► checkin_time ─► end
                       └decline─► end (nothing more is asked or stored)
    profile:    show ─pick a part─► edit that part ─► show … ─done─► end
"""

from __future__ import annotations

from datetime import date

from core.domain import records
from core.domain.messages import Button
from core.engine.flow import END, Choice, Day, Flow, Invalid, Step, Text, TimeOfDay, TimeZone, Turn
from core.domain.models import PersonStatus
from core.render.templates import LOCALES

TEXT_FIELDS = ("strengths", "needs", "interests", "aim")


def record_consent(turn: Turn, choice: str) -> None:
    """An agreement is stamped on the person; a refusal stops all messages."""
    if choice == "agree":
        records.set_person(turn.tx, turn.person_id, consent_at=turn.now, status=PersonStatus.active)
    else:
        records.set_person(turn.tx, turn.person_id, status=PersonStatus.stopped)
        turn.say("onboarding/declined")


def set_language(turn: Turn, locale: str) -> None:
    """From this answer on, every message is in the chosen language."""
    records.set_person(turn.tx, turn.person_id, locale=locale)
    turn.sender.locale = locale


def set_timezone(turn: Turn, zone: str) -> None:
    """Nudges and due days follow the student's own clock."""
    records.set_person(turn.tx, turn.person_id, timezone=zone)
    turn.sender.timezone = zone


def save_field(field: str):
    """An effect that writes one answer straight into the learner profile."""

    def effect(turn: Turn, value: str) -> None:
        records.save_profile(turn.tx, turn.person_id, turn.now, **{field: value})

    effect.__doc__ = f"Store the student's {field} in their profile."
    return effect


def language_step(then: str) -> Step:
    return Step("language", ask="profile/ask_language",
                expect=Choice(LOCALES, labels={locale: f"language.{locale}" for locale in LOCALES}),
                effect=set_language, then=then)


def timezone_step(then: str) -> Step:
    return Step("timezone", ask="profile/ask_timezone", expect=TimeZone(), effect=set_timezone, then=then)


def text_step(field: str, then: str) -> Step:
    return Step(field, ask=f"profile/ask_{field}", expect=Text(), effect=save_field(field), then=then)


def checkin_step(then: str) -> Step:
    return Step("checkin_time", ask="profile/ask_checkin_time", expect=TimeOfDay(),
                effect=save_field("checkin_time"), then=then)


def welcome_done(turn: Turn) -> None:
    """Close onboarding by offering the first weekly goals."""
    if turn.answers.get("consent") == "agree":
        turn.say("onboarding/done", name=turn.sender.given_name,
                 buttons=(Button("menu.goals", "/goals"), Button("menu.later", "/help")))


ONBOARDING = Flow(
    "onboarding",
    steps=(
        Step("consent", ask="onboarding/consent", expect=Choice(("agree", "decline")), save="consent",
             effect=record_consent, then=lambda turn: "language" if turn.answers["consent"] == "agree" else END,
             branches=("language", END)),
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


PROFILE_PARTS = (*TEXT_FIELDS, "checkin_time", "language", "timezone")


def show_profile(turn: Turn) -> dict:
    """The profile as it is now, for the student to read."""
    return {"profile": records.profile(turn.tx, turn.person_id), "locale": turn.locale,
            "timezone": turn.sender.timezone or turn.sender.school_timezone}


PROFILE = Flow(
    "profile",
    steps=(
        Step("show", ask="profile/show", context=show_profile,
             expect=Choice((*PROFILE_PARTS, "done"), labels={part: f"profile.{part}" for part in PROFILE_PARTS}),
             save="part", then=lambda turn: END if turn.answers["part"] == "done" else turn.answers["part"],
             branches=(*PROFILE_PARTS, END)),
        *(text_step(field, then="show") for field in TEXT_FIELDS),
        checkin_step(then="show"),
        language_step(then="show"),
        timezone_step(then="show"),
    ),
)

LANGUAGE = Flow("language", steps=(language_step(then=END),), finish=lambda turn: turn.say("profile/language_set"))


def pause_until(turn: Turn, until: date) -> None:
    """No nudges until the chosen day; the student can still write at any time."""
    if until <= turn.today:
        raise Invalid("errors/day_in_past")
    records.set_person(turn.tx, turn.person_id, paused_until=until)
    turn.say("commands/paused", until=until)


PAUSE = Flow("pause", steps=(Step("until", ask="commands/ask_pause", expect=Day(quick=("next monday",)),
                                  effect=pause_until),))
