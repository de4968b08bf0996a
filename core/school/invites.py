"""Invite codes (SPEC §6): one per person not yet linked to a chat account, exported as CSV.

A code links one chat account to one roster person. The engine redeems it (once, before it
expires, a few wrong tries an hour); this module issues codes and exports them for printing
or a mail merge. Issuing again re-exports the codes still valid instead of minting new ones,
so a second print run does not invalidate the slips already handed out. An adult may re-issue one
person's code (`reissue_invite`): that code may replace the person's account on a platform.
"""

from __future__ import annotations

import csv
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable, TextIO

from sqlalchemy import Engine
from sqlmodel import Session, select

from core.domain.models import AuditLog, ChatIdentity, InviteCode, Person, PersonStatus

# No 0/O, 1/I/L: codes are read off paper and typed on a phone.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_GROUP_LENGTH = 4
CSV_COLUMNS = ("sourced_id", "given_name", "family_name", "email", "grade", "code", "expires_at", "telegram_link")


@dataclass(frozen=True)
class InviteRow:
    """One person's invite code, as printed or mail-merged."""

    sourced_id: str
    given_name: str
    family_name: str
    email: str | None
    grade: str | None
    code: str
    expires_at: datetime


def new_code() -> str:
    """A random code such as "K7QM-2XWD": 8 characters from an alphabet without look-alikes."""
    characters = "".join(secrets.choice(CODE_ALPHABET) for _ in range(2 * CODE_GROUP_LENGTH))
    return f"{characters[:CODE_GROUP_LENGTH]}-{characters[CODE_GROUP_LENGTH:]}"


def issue_invites(engine: Engine, now: datetime, valid_days: int, person_ids: list[int] | None = None,
                  roles: Iterable[str] = ("student",)) -> list[InviteRow]:
    """A valid code for every active, unlinked person of `roles`: existing ones re-exported, others new.

    Who left the roster (`left_on`: absent from a full import, tobedeleted, or disabled) gets none.
    """
    with Session(engine) as session, session.begin():
        linked = select(ChatIdentity.id).where(ChatIdentity.person_id == Person.id).exists()
        query = select(Person).where(Person.status == PersonStatus.active, Person.left_on.is_(None),
                                     Person.role.in_(list(roles)), ~linked)
        if person_ids is not None:
            query = query.where(Person.id.in_(person_ids))
        people = session.exec(query.order_by(Person.family_name, Person.given_name, Person.id)).all()
        valid = session.exec(select(InviteCode).where(
            InviteCode.person_id.in_([person.id for person in people]),
            InviteCode.used_at.is_(None), InviteCode.expires_at > now).order_by(InviteCode.expires_at)).all()
        # Ordered by expiry, so the code that lasts longest wins.
        valid_by_person = {invite.person_id: invite for invite in valid}
        needing_codes = [person for person in people if person.id not in valid_by_person]
        for person, code in zip(needing_codes, _unused_codes(session, len(needing_codes))):
            invite = InviteCode(code=code, person_id=person.id, created_at=now,
                                expires_at=now + timedelta(days=valid_days))
            session.add(invite)
            valid_by_person[person.id] = invite
        session.add(AuditLog(at=now, actor="invites", action="invites_issued", detail=json.dumps(
            {"issued": len(needing_codes), "reexported": len(people) - len(needing_codes)})))
        return [InviteRow(person.sourced_id, person.given_name, person.family_name, person.email, person.grade,
                          valid_by_person[person.id].code, valid_by_person[person.id].expires_at)
                for person in people]


def reissue_invite(engine: Engine, person_id: int, now: datetime, valid_days: int) -> InviteRow:
    """A fresh code for one person, issued by an adult, that may replace their account on a platform.

    Redeemed on a platform where the person already has an account (a lost phone, an account
    someone else took), it links the new account and unlinks the old one, which is told so.
    Every other unused code of the person stops working now.
    """
    with Session(engine) as session, session.begin():
        person = session.get(Person, person_id)
        if person is None:
            raise LookupError(f"no person {person_id}")
        for invite in session.exec(select(InviteCode).where(InviteCode.person_id == person_id,
                                                            InviteCode.used_at.is_(None),
                                                            InviteCode.expires_at > now)):
            invite.expires_at = now
            session.add(invite)
        [code] = _unused_codes(session, 1)
        invite = InviteCode(code=code, person_id=person_id, created_at=now, expires_at=now + timedelta(days=valid_days),
                            reissued=True)
        session.add(invite)
        session.add(AuditLog(at=now, actor="invites", action="invite_reissued", person_id=person_id, detail="{}"))
        return InviteRow(person.sourced_id, person.given_name, person.family_name, person.email, person.grade,
                         invite.code, invite.expires_at)


def _unused_codes(session: Session, count: int) -> list[str]:
    """`count` fresh codes that no stored invite uses (a clash would abort the whole batch)."""
    codes: set[str] = set()
    while len(codes) < count:
        candidates = {new_code() for _ in range(count - len(codes))} - codes
        taken = set(session.exec(select(InviteCode.code).where(InviteCode.code.in_(candidates))).all())
        codes |= candidates - taken
    return list(codes)


def telegram_link(bot_username: str | None, code: str) -> str:
    """A t.me deep link that opens the bot and sends the code with /start, or "" without a bot name."""
    if not bot_username:
        return ""
    return f"https://t.me/{bot_username.removeprefix('@')}?start={code}"


def write_invites_csv(rows: Iterable[InviteRow], file: TextIO, bot_username: str | None = None) -> None:
    """Write the invites as CSV for printing or a mail merge; open `file` with newline=""."""
    writer = csv.writer(file)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow((row.sourced_id, row.given_name, row.family_name, row.email or "", row.grade or "",
                         row.code, row.expires_at.isoformat(timespec="minutes"),
                         telegram_link(bot_username, row.code)))
