"""Linking a chat account to a person on the roster: a single-use, expiring invite code, or (on
Slack, where the workspace vouches for it) the roster e-mail. Wrong codes are rate-limited per
chat account, so codes cannot be guessed.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from core.domain.store import Sender, Tx, as_moment

INVITE_CODE = re.compile(r"^[A-Za-z0-9-]{6,32}$")
ATTEMPT_WINDOW = timedelta(hours=1)


def invite_code(text: str | None) -> str | None:
    """The code in "/start CODE" (a Telegram deep link) or a message that is only the code."""
    words = (text or "").split()
    if words and words[0].lower().startswith("/start"):
        words = words[1:]
    if len(words) == 1 and INVITE_CODE.match(words[0]):
        return words[0].upper()
    return None


def too_many_attempts(tx: Tx, sender: Sender, now: datetime, per_hour: int) -> bool:
    """At most `per_hour` wrong codes an hour per chat account."""
    failed, started = tx.one("SELECT failed_attempts, window_started_at FROM chatidentity WHERE id = ?",
                             (sender.identity_id,))
    started = as_moment(started)
    if started is None or now - started > ATTEMPT_WINDOW:
        tx.execute("UPDATE chatidentity SET failed_attempts = 0, window_started_at = ? WHERE id = ?",
                   (tx.ts(now), sender.identity_id))
        return False
    return failed >= per_hour


def redeem(tx: Tx, code: str, sender: Sender, now: datetime) -> int | None:
    """Use a code once, before it expires; returns the person it belongs to (None counts as a wrong code)."""
    cursor = tx.execute(
        "UPDATE invitecode SET used_at = ?, used_by = ? WHERE code = ? AND used_at IS NULL AND expires_at > ?",
        (tx.ts(now), sender.identity_id, code, tx.ts(now)))
    if cursor.rowcount != 1:
        tx.execute("UPDATE chatidentity SET failed_attempts = failed_attempts + 1 WHERE id = ?",
                   (sender.identity_id,))
        return None
    return tx.one("SELECT person_id FROM invitecode WHERE code = ?", (code,))[0]


def person_by_email(tx: Tx, email: str, platform: str) -> int | None:
    """The roster person with this e-mail who has no account on `platform` yet."""
    row = tx.one(
        "SELECT p.id FROM person p WHERE lower(p.email) = lower(?) AND NOT EXISTS "
        "(SELECT 1 FROM chatidentity i WHERE i.person_id = p.id AND i.platform = ?)",
        (email, platform))
    return row[0] if row else None


def link(tx: Tx, sender: Sender, person_id: int, platform: str, now: datetime) -> None:
    """Tie the chat account to the person, with a fresh conversation row and an audit entry."""
    tx.execute("UPDATE chatidentity SET person_id = ?, failed_attempts = 0 WHERE id = ?",
               (person_id, sender.identity_id))
    tx.create_conversation(person_id, now)
    tx.audit(platform, "linked", person_id, {"identity": sender.identity_id}, now)
