"""Linking a chat account to a person on the roster: a single-use, expiring invite code, or (on
Slack, where the workspace vouches for it) the roster e-mail. Wrong codes are rate-limited per
chat account, so codes cannot be guessed. Linking uses up every code of the person, and neither a
code nor an e-mail links a second account of the same platform to a person who has one there:
only a code an adult re-issued does, and the old account is unlinked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from core.domain.store import Sender, Tx, as_moment

INVITE_CODE = re.compile(r"^[A-Za-z0-9-]{6,32}$")
ATTEMPT_WINDOW = timedelta(hours=1)


def invite_code(text: str | None) -> str | None:
    """The code in "/start CODE" (a Telegram deep link) or a message that is only the code.

    Typed on a phone a code may come in any case and split by a space ("k7qm 2xwd"): two or three
    words that join into a code count as one when they hold a digit or are the code's groups of four.
    """
    words = (text or "").split()
    if words and words[0].lower().startswith("/start"):
        words = words[1:]
    if len(words) == 1 and INVITE_CODE.match(words[0]):
        return words[0].upper()
    joined = "".join(words)
    if 1 < len(words) <= 3 and INVITE_CODE.match(joined) and (
            any(ch.isdigit() for ch in joined) or all(len(word) == 4 for word in words)):
        return joined.upper()
    return None


def canonical_code(code: str) -> str:
    """A code as compared: no dashes or spaces, and look-alikes folded (O → 0, I and L → 1)."""
    return re.sub(r"[\s-]", "", code.upper()).translate(LOOK_ALIKES)


# The same folding in SQL, so the stored code is compared the way the typed one was folded.
CANONICAL_SQL = "REPLACE(REPLACE(REPLACE(REPLACE(UPPER(code), '-', ''), 'O', '0'), 'I', '1'), 'L', '1')"
LOOK_ALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})


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


class Refused(Enum):
    """Why a valid-looking code or e-mail does not link this account."""

    taken = "taken"  # the person already has an account on this platform, and the code was not re-issued


@dataclass(frozen=True)
class Redeemed:
    """A code used: whose it is, and whether an adult re-issued it (it may replace the old account)."""

    person_id: int
    reissued: bool = False


def redeem(tx: Tx, code: str, sender: Sender, platform: str, now: datetime) -> Redeemed | Refused | None:
    """Use a code once, before it expires; None (a wrong code) or Refused count as a failed attempt.

    A code never links a second account of the same platform to a person who already has one
    there, unless an adult re-issued it (`companion invites --reissue`): an account cannot be
    taken over with a code that leaked or was kept after its student linked.
    """
    found = tx.one(f"SELECT person_id, reissued, code FROM invitecode WHERE {CANONICAL_SQL} = ? AND used_at IS NULL "
                   f"AND expires_at > ?", (canonical_code(code), tx.ts(now)))
    code = found[2] if found is not None else code  # as stored
    refused: Refused | None = None
    if found is not None and not found[1] and accounts_on(tx, found[0], platform, sender.identity_id):
        refused = Refused.taken
    elif found is not None:
        cursor = tx.execute("UPDATE invitecode SET used_at = ?, used_by = ? WHERE code = ? AND used_at IS NULL",
                            (tx.ts(now), sender.identity_id, code))
        if cursor.rowcount == 1:
            return Redeemed(found[0], bool(found[1]))
    tx.execute("UPDATE chatidentity SET failed_attempts = failed_attempts + 1 WHERE id = ?",
               (sender.identity_id,))
    return refused


def accounts_on(tx: Tx, person_id: int, platform: str, besides: int | None = None) -> list[tuple[int, str]]:
    """The person's chat accounts on `platform` other than `besides`: [(identity id, chat id)]."""
    return tx.all("SELECT id, chat_id FROM chatidentity WHERE person_id = ? AND platform = ? AND id <> ? ORDER BY id",
                  (person_id, platform, besides if besides is not None else -1))


def person_by_email(tx: Tx, email: str, platform: str) -> int | None:
    """The roster person with this e-mail who has no account on `platform` yet (an e-mail never takes one over)."""
    row = tx.one(
        "SELECT p.id FROM person p WHERE lower(p.email) = lower(?) AND NOT EXISTS "
        "(SELECT 1 FROM chatidentity i WHERE i.person_id = p.id AND i.platform = ?)",
        (email, platform))
    return row[0] if row else None


def unlink(tx: Tx, identity_ids: list[int], person_id: int, platform: str, now: datetime) -> None:
    """Untie old accounts from the person (a re-issued code replaced them), with an audit entry each."""
    for identity_id in identity_ids:
        tx.execute("UPDATE chatidentity SET person_id = NULL WHERE id = ? AND person_id = ?", (identity_id, person_id))
        tx.audit(platform, "unlinked", person_id, {"identity": identity_id}, now)


def link(tx: Tx, sender: Sender, person_id: int, platform: str, now: datetime) -> None:
    """Tie the chat account to the person, with a fresh conversation row and an audit entry.

    Every code of the person still unused is used up with it: a code kept after linking (by e-mail,
    or on another platform) cannot link anyone else later.
    """
    tx.execute("UPDATE chatidentity SET person_id = ?, failed_attempts = 0 WHERE id = ?",
               (person_id, sender.identity_id))
    tx.execute("UPDATE invitecode SET used_at = ?, used_by = ? WHERE person_id = ? AND used_at IS NULL",
               (tx.ts(now), sender.identity_id, person_id))
    tx.create_conversation(person_id, now)
    tx.audit(platform, "linked", person_id, {"identity": sender.identity_id}, now)
