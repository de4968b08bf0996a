"""The learner profile, the student's own: `/profile` shows it and lets them change any part;
`/language` changes the language; a channel's form (Slack's modal) saves it in one go.

    profile:  show ─pick a part─► edit that part ─► show … ─done─► end (with a way on: /goals)
              (the time zone is confirmed by showing the local time there now)
    language: language ─► end
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.domain import dates, records
from core.domain.messages import Button
from core.domain.store import Tx
from core.engine.flow import END, Answers, Choice, Flow, Step, Text, TimeOfDay, TimeZone, Turn
from core.engine import places, stack
from core.engine.registry import EVERYONE, Command, Feature, Form
from core.render.templates import LOCALES, format_day

if TYPE_CHECKING:
    from core.engine.pipeline import Engine

TEXT_FIELDS = ("strengths", "needs", "interests", "aim")


def set_language(turn: Turn, locale: str) -> None:
    """From this answer on, every message is in the chosen language."""
    records.set_person(turn.tx, turn.person_id, locale=locale)
    turn.sender.locale = locale


def set_timezone(turn: Turn, zone: str) -> None:
    """Nudges and due days follow the student's own clock."""
    records.set_person(turn.tx, turn.person_id, timezone=zone)
    turn.sender.timezone = zone


def zone_check(turn: Turn) -> dict:
    """The zone just chosen with the time there now, so a wrong guess shows at a glance."""
    zone = turn.sender.timezone or turn.sender.school_timezone
    local = turn.now.astimezone(turn.zone)
    return {"zone": zone, "place": places.zone_label(zone), "time": local.strftime("%H:%M"),
            "day": format_day(local.date(), turn.locale)}


def save_field(field: str):
    """An effect that writes one answer straight into the learner profile."""

    def effect(turn: Turn, value: str) -> None:
        records.save_profile(turn.tx, turn.person_id, turn.now, **{field: value})

    effect.__doc__ = f"Store the student's {field} in their profile."
    return effect


def language_choice() -> Choice:
    return Choice(LOCALES, labels={locale: f"language.{locale}" for locale in LOCALES})


def language_step(then: str) -> Step:
    return Step("language", ask="profile/ask_language", expect=language_choice(), effect=set_language, then=then)


def timezone_steps(then: str) -> tuple[Step, Step]:
    """The time zone, then its confirmation by the local time now ("right" or "change it")."""
    return (Step("timezone", ask="profile/ask_timezone", expect=TimeZone(), save="zone_ok", effect=set_timezone,
                 then="timezone_check"),
            Step("timezone_check", ask="profile/timezone_check", context=zone_check,
                 skip=lambda turn: turn.answers.zone_ok == turn.sender.school_timezone,  # the school's, tapped
                 expect=Choice(("yes", "change"), labels={"change": "timezone.change"}), save="zone_ok",
                 then=lambda turn: "timezone" if turn.answers.zone_ok == "change" else then,
                 branches={then: "yes", "timezone": "change"}))


def text_step(field: str, then: str) -> Step:
    return Step(field, ask=f"profile/ask_{field}", expect=Text(), effect=save_field(field), then=then)


def checkin_step(then: str) -> Step:
    return Step("checkin_time", ask="profile/ask_checkin_time", expect=TimeOfDay(),
                effect=save_field("checkin_time"), then=then)


PROFILE_PARTS = (*TEXT_FIELDS, "checkin_time", "language", "timezone")


def show_profile(turn: Turn) -> dict:
    """The profile as it is now, for the student to read."""
    return {"profile": records.profile(turn.tx, turn.person_id), "locale": turn.locale,
            "timezone": turn.sender.timezone or turn.sender.school_timezone}


@dataclass
class ProfilePart(Answers):
    part: str | None = None  # the part of the profile the student chose to change
    zone_ok: str | None = None  # the zone given, then "yes" (confirmed) or "change"


PROFILE_FLOW = Flow(
    "profile",
    answers=ProfilePart,
    steps=(
        Step("show", ask="profile/show", context=show_profile,
             expect=Choice((*PROFILE_PARTS, "done"), labels={part: f"profile.{part}" for part in PROFILE_PARTS}),
             save="part", then=lambda turn: END if turn.answers.part == "done" else turn.answers.part,
             branches=(*PROFILE_PARTS, END)),
        *(text_step(field, then="show") for field in TEXT_FIELDS),
        checkin_step(then="show"),
        language_step(then="show"),
        *timezone_steps(then="show"),
    ),
    finish=lambda turn: None if stack.below(turn.sender) else turn.say("profile/closed",  # else: the flow below resumes
                                                                       buttons=(Button("menu.goals", "/goals"),)),
)

LANGUAGE_FLOW = Flow("language", steps=(language_step(then=END),), finish=lambda turn: turn.say("profile/language_set"))


def form_errors(values: dict) -> dict[str, str]:
    """What the profile form cannot accept, as field → error template (checked before the form closes)."""
    checkin = (values.get("checkin_time") or "").strip()
    return {"checkin_time": "errors/need_time"} if checkin and dates.parse_time(checkin) is None else {}


def form_values(tx: Tx, person_id: int) -> dict:
    """The profile as the form shows it."""
    return records.profile(tx, person_id)


def save_form(engine: "Engine", turn: Turn, values: dict) -> None:
    """Save the whole form, with an audit row; a blank field clears it."""
    changes = {field: (value or "").strip() or None for field, value in values.items()}
    if changes.get("checkin_time"):
        changes["checkin_time"] = dates.parse_time(changes["checkin_time"]).strftime("%H:%M")
    records.save_profile(turn.tx, turn.person_id, turn.now, **changes)
    turn.tx.audit(turn.platform, "profile_saved", turn.person_id, {"fields": sorted(changes)},
                  turn.now)
    turn.say("profile/saved", profile=records.profile(turn.tx, turn.person_id))


FEATURE = Feature(
    "profile",
    flows=(PROFILE_FLOW, LANGUAGE_FLOW),
    commands=(Command("profile", flow="profile", menu=4), Command("language", flow="language",
                                                                  roles=EVERYONE)),
    forms=(Form("profile", values=form_values, errors=form_errors, save=save_form),),
    person_tables=("learnerprofile",),
)
