"""Safety first: words that may mean a student is in danger, in every locale, in everything a student
writes (a message, an answer, a form), inside or outside a flow, at any hour, paused or stopped.

The student gets a supportive reply at once, with the resources that fit what they wrote (a
crisis line, an abuse hotline, the counselor, emergency services, 211 — or the school's own,
`safety_resources.<category>`), before any alert leaves. Their advisers and their school's
counselors get an urgent alert with an "I'm on it" button; an alert nobody acknowledges within the
school's window goes to the escalation contacts (administrators in chat, e-mail addresses), again
each window, until someone does (`core/schedule/escalation.py`). An alert for a student whose
advisers cannot be reached goes to the escalation contacts at once, and to the adviser when they
link. The student is told only what is true. Every alert and every step is logged; what an adult
did is an `adultaction` row. An account not linked yet still gets the support and the resources.
Adults' own messages are not screened: the check reads what students write.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from core.domain import access
from core.domain.messages import Button, Inbound, Outbound
from core.domain.models import DEFAULT_LOCALE, Role
from core.domain.settings import Duration, Key, Template, Values, Words
from core.domain.store import Tx
from core.engine.flow import Answers, Flow, Invalid, Step, Text, Turn
from core.engine.registry import ADULTS, Command, DigestSection, Feature

if TYPE_CHECKING:
    from core.engine.pipeline import Engine

# What the detector raises; each gets resources that fit it (prompts/<locale>/safety/resources.j2).
CATEGORIES = ("suicidal_ideation", "self_harm", "plan_means", "abuse_neglect", "violence_threats", "bullying",
              "basic_needs")
WINDOW = "safety.escalation_window"
EMAILS = "safety.escalation_emails"
SETTINGS = (
    Key(WINDOW, Duration(), timedelta(minutes=15),
        "an alert nobody acknowledges within this goes to the escalation contacts, again each window"),
    Key(EMAILS, Words(), [], "e-mail addresses that get every escalated alert (needs COMPANION_SMTP_URL)"),
    *(Key(f"safety_resources.{category}", Template(), "",
          f"what a student who writes about {category.replace('_', ' ')} is told to call (empty: the built-in text)")
      for category in CATEGORIES),
)


COMMAND_WORD = re.compile(r"^/[a-zA-Z_]+(?:@\S+)?")  # "/plan" is a command, not the student's words


def written(inbound: Inbound) -> str:
    """Everything the person typed in this event: the message (after a command's name), a caption, a form."""
    text = inbound.text or ""
    if text.startswith("/"):
        text = COMMAND_WORD.sub("", text, count=1)
    if not inbound.form and not (inbound.attachment and inbound.attachment.caption):
        return text  # a message, the usual case
    parts = [text]
    if inbound.attachment and inbound.attachment.caption:
        parts.append(inbound.attachment.caption)
    if inbound.form:
        parts.extend(value for value in inbound.form.values.values() if isinstance(value, str))
    return "\n".join(part for part in parts if part)


def concerns(turn: Turn, inbound: Inbound) -> list[str]:
    """What the student's words touch (none for adults, who are not screened)."""
    if turn.sender.role not in (None, Role.student):
        return []
    text = written(inbound)
    return turn.catalog.safety.concerns(text) if text else []


def _resources(values: Values, found: list[str]) -> dict[str, str]:
    """The school's own resources for the concerns found (the template says the built-in ones)."""
    return {category: values[f"safety_resources.{category}"] for category in found
            if values.keys.get(f"safety_resources.{category}") and values[f"safety_resources.{category}"]}


def support_unlinked(turn: Turn, found: list[str], values: Values, platform: str) -> None:
    """Nobody to alert yet, but the words still get support and the resources at once."""
    turn.say("safety/support", concerns=found, resources=_resources(values, found), told=None)
    turn.tx.audit(platform, "safety_unlinked", None, {"concerns": found, "identity": turn.sender.identity_id},
                  turn.now)


@dataclass(frozen=True)
class Alert:
    """The alert a message raised, for the adults: queued after the student's own support."""

    id: int
    student_id: int
    messages: tuple[tuple[int, str, str, str, Outbound], ...]  # (adult, platform, chat, locale, message)


def escalate(turn: Turn, found: list[str], text: str, values: Values, emails_on: bool) -> Alert:
    """Record the alert, tell the student what is true, and address it to the adults who can act now."""
    tx, student_id = turn.tx, turn.person_id
    adults = access.alert_recipients(tx, student_id)
    school_id, family_name = tx.one("SELECT school_id, family_name FROM person WHERE id = ?", (student_id,))
    reachable_now = [adult for adult in adults if adult[4] in (Role.adviser, Role.counselor)]
    advisers = any(adult[4] == Role.adviser for adult in adults)
    window: timedelta = values[WINDOW]
    # Nobody who knows the student can be reached in chat: the escalation contacts get it at once.
    escalate_at = turn.now + window if advisers else turn.now
    alert_id = tx.insert("INSERT INTO safetyalert (person_id, category, text, created_at, escalate_at, escalations) "
                         "VALUES (?, ?, ?, ?, ?, 0)",
                         (student_id, ",".join(found), text, tx.ts(turn.now), tx.ts(escalate_at)))
    escalation_reachable = bool(access.escalation_contacts(tx, school_id)) or (emails_on and bool(values[EMAILS]))
    told = ("adviser" if advisers else "counselor" if reachable_now else "school" if escalation_reachable else None)
    turn.say("safety/support", concerns=found, resources=_resources(values, found), told=told)
    message = alert_message(turn.sender.given_name, family_name, found, text, alert_id)
    tx.audit("engine", "safety_alert", student_id,
             {"alert": alert_id, "concerns": found, "adults": len(reachable_now), "told": told}, turn.now)
    return Alert(alert_id, student_id, tuple((adult_id, platform, chat_id, locale or DEFAULT_LOCALE, message)
                                              for adult_id, platform, chat_id, locale, _role in reachable_now))


def alert_message(given_name: str, family_name: str | None, found: list[str], text: str, alert_id: int,
                  escalated: int = 0) -> Outbound:
    """The alert as an adult reads it: the student's full name, the concern, their words, "I'm on it"."""
    return Outbound("safety/alert", {"student": f"{given_name} {family_name or ''}".strip(), "concerns": found,
                                     "text": text, "escalated": escalated},
                    (Button("safety.on_it", f"/onit {alert_id}"),))


def open_alerts_of(tx: Tx, adult_id: int) -> list[dict]:
    """The unacknowledged alerts about an adult's advisees: what an adviser gets when they link late."""
    return list(tx.rows(
        "SELECT a.id, a.category, a.text, p.given_name, p.family_name FROM safetyalert a JOIN person p "
        f"ON p.id = a.person_id WHERE a.acknowledged_at IS NULL AND a.person_id IN ({access.ADVISEES}) "
        "ORDER BY a.id", (adult_id,)))


# -- what adults do about an alert -----------------------------------------------------------------


def _alert_id(turn: Turn, args: str) -> int:
    """The alert a command names, if this adult may act on it."""
    if not args.strip().isdigit() or not access.may_act_on_alert(turn.tx, turn.person_id, int(args)):
        raise Invalid("safety/no_such_alert")
    return int(args)


def on_it(engine: "Engine", turn: Turn, args: str) -> None:
    """An adult takes an alert: escalation stops, the others can see who has it."""
    try:
        alert_id = _alert_id(turn, args)
    except Invalid as refusal:
        turn.say(refusal.template)
        return
    tx = turn.tx
    taken = tx.one("SELECT acknowledged_by FROM safetyalert WHERE id = ?", (alert_id,))[0]
    if taken is None:
        tx.execute("UPDATE safetyalert SET acknowledged_at = ?, acknowledged_by = ?, escalate_at = NULL WHERE id = ?",
                   (tx.ts(turn.now), turn.person_id, alert_id))
    record_action(tx, turn.person_id, alert_id, "on_it", None, turn.now)
    turn.say("safety/acknowledged", first=taken is None, buttons=(Button("safety.resolve", f"/resolved {alert_id}"),))


@dataclass
class Resolution(Answers):
    alert: int | None = None


def resolve(engine: "Engine", turn: Turn, args: str) -> None:
    """Record what was done about an alert: asks for a line, then closes it."""
    try:
        alert_id = _alert_id(turn, args)
    except Invalid as refusal:
        turn.say(refusal.template)
        return
    engine.start_flow(turn, "alert_resolved")
    turn.answers.alert = alert_id


def close_alert(turn: Turn, note: str) -> None:
    """Record what was done: the alert leaves the adults' open views."""
    tx, alert_id = turn.tx, turn.answers.alert
    tx.execute("UPDATE safetyalert SET closed_at = ?, escalate_at = NULL, acknowledged_at = COALESCE(acknowledged_at, ?), "
               "acknowledged_by = COALESCE(acknowledged_by, ?) WHERE id = ?",
               (tx.ts(turn.now), tx.ts(turn.now), turn.person_id, alert_id))
    record_action(tx, turn.person_id, alert_id, "resolved", note, turn.now)
    turn.say("safety/resolved")


def record_action(tx: Tx, actor_id: int | None, alert_id: int, action: str, note: str | None, now,
                  **detail: object) -> None:
    """One action on an alert (an adult's, or the system's with no actor), with an audit entry without the note."""
    student_id = tx.one("SELECT person_id FROM safetyalert WHERE id = ?", (alert_id,))[0]
    tx.execute("INSERT INTO adultaction (actor_id, student_id, subject, subject_id, action, note, at) "
               "VALUES (?, ?, 'safetyalert', ?, ?, ?, ?)", (actor_id, student_id, alert_id, action, note, tx.ts(now)))
    tx.audit("engine", f"safety_{action}", student_id, {"alert": alert_id, "by": actor_id, **detail}, now)


def open_alerts(tx: Tx, students: list[int], _week) -> dict[int, list[dict]]:
    """Each advisee's alerts nobody has closed yet, with who is on it: they stay in view until then."""
    found: dict[int, list[dict]] = {student: [] for student in students}
    if students:
        for row in tx.rows("SELECT a.person_id, a.id, a.category, a.created_at, a.acknowledged_by FROM safetyalert a "
                           f"WHERE a.closed_at IS NULL AND a.person_id IN ({', '.join('?' * len(students))}) "
                           "ORDER BY a.id", tuple(students)):
            found[row.pop("person_id")].append(row)
    return found


RESOLVE = Flow("alert_resolved", answers=Resolution, steps=(
    Step("note", ask="safety/ask_what_was_done", expect=Text(), effect=close_alert),
))

SAFETY = Feature(
    "safety",
    flows=(RESOLVE,),
    commands=(Command("onit", run=on_it, roles=ADULTS, listed=False),
              Command("resolved", run=resolve, roles=ADULTS, listed=False)),
    settings=SETTINGS,
    digest=(DigestSection("alerts", collect=open_alerts),),
    person_tables=("safetyalert", "adultaction"),
    prompts=None,  # its sentences are the engine's `safety` prompt group
)
