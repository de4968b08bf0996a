"""Alerts nobody answered go further (SPEC §2): every window until someone says "I'm on it".

    safetyalert, unacknowledged, escalate_at ≤ now ──► the school's escalation contacts: its
        administrators in chat and the addresses in safety.escalation_emails (the e-mail channel)
        ──► escalate_at = now + the school's window, escalations + 1, logged

A batch is claimed with `FOR UPDATE SKIP LOCKED` on PostgreSQL and written in one transaction
with its outbox rows, so two workers never send the same round twice. A safety escalation takes
no part of the nudge policy: no quiet hours, no holidays, no cap.
"""

from __future__ import annotations

from datetime import datetime

from core.domain import access
from core.domain.models import DEFAULT_LOCALE
from core.domain.store import Store
from core.engine import safety
from core.engine.registry import Registry

EMAIL = "email"  # the e-mail channel's platform (bot/email.py)


def escalate_due(store: Store, registry: Registry, now: datetime, emails: bool, limit: int = 100) -> int:
    """Send every alert whose window passed unanswered to the escalation contacts; returns how many went."""
    lock = " FOR UPDATE OF a SKIP LOCKED" if store.postgres else ""
    with store.transaction() as tx:
        tx.begin(immediate=True)
        due = tx.all("SELECT a.id, a.person_id, a.category, a.text, a.escalations, p.school_id, p.given_name, "
                     "p.family_name FROM safetyalert a JOIN person p ON p.id = a.person_id "
                     "WHERE a.acknowledged_at IS NULL AND a.closed_at IS NULL AND a.escalate_at <= ? "
                     f"ORDER BY a.escalate_at LIMIT {int(limit)}" + lock, (tx.ts(now),))
        for alert_id, _student, category, text, rounds, school_id, given, family in due:
            values = registry.settings.for_school(tx, school_id)
            message = safety.alert_message(given, family, category.split(","), text, alert_id, rounds + 1)
            contacts = access.escalation_contacts(tx, school_id)
            for adult_id, platform, chat_id, locale in contacts:
                tx.enqueue(adult_id, platform, chat_id, locale or DEFAULT_LOCALE, message, now)
            addresses = values[safety.EMAILS] if emails else []
            for address in addresses:
                tx.enqueue(None, EMAIL, address, DEFAULT_LOCALE, message, now)
            tx.execute("UPDATE safetyalert SET escalations = escalations + 1, escalate_at = ? WHERE id = ?",
                       (tx.ts(now + values[safety.WINDOW]), alert_id))
            safety.record_action(tx, None, alert_id, "escalated", None, now, round=rounds + 1, chats=len(contacts),
                                 emails=len(addresses))
    return len(due)
