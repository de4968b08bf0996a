"""Safety first: crisis, self-harm, abuse and basic-needs words, in every locale, in everything a
student writes (a message, an answer, a form), inside or outside a flow.

The student gets a supportive reply with resources at once; their advisers and their school's
counselors get an urgent alert, queued in the same transaction; every alert is logged. An
account not linked yet still gets the support and the resources (there is nobody to alert).
Adults' own messages are not screened: the check reads what students write.
"""

from __future__ import annotations

from core.domain import access
from core.domain.messages import Inbound, Outbound
from core.domain.models import DEFAULT_LOCALE, Role
from core.engine.flow import Turn


def written(inbound: Inbound) -> str:
    """Everything the person typed in this event: the message, a caption, a form's text fields."""
    parts = [inbound.text or ""]
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


def support_unlinked(turn: Turn, found: list[str], resources: str | None, platform: str) -> None:
    """Nobody to alert yet, but the words still get support and the resources at once."""
    turn.say("safety/support", concerns=found, resources=resources, alerted=False)
    turn.tx.audit(platform, "safety_unlinked", None, {"concerns": found, "identity": turn.sender.identity_id},
                  turn.now)


def escalate(turn: Turn, found: list[str], text: str, resources: str | None) -> None:
    """Support the student at once and alert their advisers and counselors: never wait for a digest."""
    tx, person_id = turn.tx, turn.person_id
    for concern in found:
        tx.execute("INSERT INTO safetyalert (person_id, category, text, created_at) VALUES (?, ?, ?, ?)",
                   (person_id, concern, text, tx.ts(turn.now)))
    turn.say("safety/support", concerns=found, resources=resources, alerted=True)
    for adult_id, platform, chat_id, locale in access.alert_recipients(tx, person_id):
        tx.enqueue(adult_id, platform, chat_id, locale or DEFAULT_LOCALE,
                   Outbound("safety/alert", {"student": turn.sender.given_name, "concerns": found, "text": text}),
                   turn.now)
    tx.audit("engine", "safety_alert", person_id, {"concerns": found}, turn.now)
