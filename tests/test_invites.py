"""Invite codes: one valid code per unlinked person, re-exported rather than duplicated, and the CSV."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta

import pytest
from sqlmodel import Session, func, select

from core.school.demo import build_demo, write_demo_roster
from core.school.invites import CSV_COLUMNS, issue_invites, write_invites_csv
from core.domain.models import AuditLog, ChatIdentity, InviteCode, Person, PersonStatus
from core.school.roster import TableChanges, import_roster

ENGINE_CODE_PATTERN = re.compile(r"^[A-Za-z0-9-]{6,32}$")  # what the engine accepts as a code
CODE_FORMAT = re.compile(r"^[ABCDEFGHJKMNPQRSTUVWXYZ23456789]{4}-[ABCDEFGHJKMNPQRSTUVWXYZ23456789]{4}$")


@pytest.fixture
def school(engine, tmp_path):
    """The demo school imported: 8 students, 2 advisers, 1 administrator, no invites yet."""
    write_demo_roster(tmp_path / "roster")
    import_roster(engine, tmp_path / "roster", {"homeroom"})
    return engine


def person_id(engine, sourced_id: str) -> int:
    with Session(engine) as session:
        return session.exec(select(Person.id).where(Person.sourced_id == sourced_id)).one()


def stored_codes(engine) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(InviteCode)).one()


def test_every_unlinked_student_gets_a_unique_readable_code(school, now):
    rows = issue_invites(school, now, valid_days=30)

    assert sorted(row.sourced_id for row in rows) == [f"usr-s-100{n}" for n in range(1, 9)]
    codes = [row.code for row in rows]
    assert len(set(codes)) == 8
    assert all(CODE_FORMAT.match(code) and ENGINE_CODE_PATTERN.match(code) for code in codes)
    assert all(row.expires_at == now + timedelta(days=30) for row in rows)
    assert stored_codes(school) == 8
    with Session(school) as session:
        audit = session.exec(select(AuditLog).where(AuditLog.action == "invites_issued")).one()
    assert json.loads(audit.detail) == {"issued": 8, "reexported": 0}


def test_issuing_again_re_exports_the_valid_codes(school, now):
    first = issue_invites(school, now, valid_days=30)

    second = issue_invites(school, now + timedelta(days=3), valid_days=30)

    assert {(row.sourced_id, row.code, row.expires_at) for row in second} == {
        (row.sourced_id, row.code, row.expires_at) for row in first}
    assert stored_codes(school) == 8


def test_expired_codes_are_replaced(school, now):
    first = {row.sourced_id: row.code for row in issue_invites(school, now, valid_days=30)}

    later = now + timedelta(days=31)
    second = issue_invites(school, later, valid_days=30)

    assert all(row.code != first[row.sourced_id] for row in second)
    assert all(row.expires_at == later + timedelta(days=30) for row in second)
    assert stored_codes(school) == 16


def test_linked_and_inactive_people_get_no_code(school, now):
    with Session(school) as session:
        session.add(ChatIdentity(platform="telegram", external_id="42", chat_id="42",
                                 person_id=person_id(school, "usr-s-1001")))
        stopped = session.get(Person, person_id(school, "usr-s-1002"))
        stopped.status = PersonStatus.stopped
        session.add(stopped)
        session.commit()

    rows = issue_invites(school, now, valid_days=30)

    assert {row.sourced_id for row in rows} == {f"usr-s-100{n}" for n in range(3, 9)}


def test_a_used_code_is_not_re_exported(school, now):
    sofia = person_id(school, "usr-s-1001")
    [first] = issue_invites(school, now, valid_days=30, person_ids=[sofia])
    with Session(school) as session:
        invite = session.get(InviteCode, first.code)
        invite.used_at = now
        session.add(invite)
        session.commit()

    [second] = issue_invites(school, now, valid_days=30, person_ids=[sofia])

    assert second.code != first.code


def test_people_and_roles_can_be_chosen(school, now):
    sofia = person_id(school, "usr-s-1001")

    assert [row.sourced_id for row in issue_invites(school, now, 30, person_ids=[sofia])] == ["usr-s-1001"]
    advisers = issue_invites(school, now, 30, roles=("adviser",))
    assert {row.sourced_id for row in advisers} == {"usr-t-whitfield", "usr-t-okafor"}


@pytest.mark.parametrize(("bot_username", "link_prefix"), [
    ("@maple_grove_bot", "https://t.me/maple_grove_bot?start="),
    (None, ""),
], ids=["telegram", "no-bot"])
def test_the_csv_has_one_printable_row_per_invite(school, now, bot_username, link_prefix):
    rows = issue_invites(school, now, valid_days=30)
    file = io.StringIO(newline="")

    write_invites_csv(rows, file, bot_username=bot_username)

    records = list(csv.DictReader(io.StringIO(file.getvalue(), newline="")))
    assert tuple(records[0]) == CSV_COLUMNS == ("sourced_id", "given_name", "family_name", "email", "grade",
                                               "code", "expires_at", "telegram_link")
    sofia = next(record for record in records if record["sourced_id"] == "usr-s-1001")
    assert (sofia["given_name"], sofia["family_name"], sofia["email"], sofia["grade"]) == (
        "Sofía", "Hernández", "sofia.hernandez@maplegrove.example", "07")
    assert sofia["expires_at"] == "2026-12-23T14:00+00:00"
    assert sofia["telegram_link"] == (link_prefix + sofia["code"] if link_prefix else "")
    assert len(records) == 8


def test_the_demo_runs_the_real_import_and_issues_invites(engine, tmp_path, now):
    demo = build_demo(engine, tmp_path / "demo", now)

    assert demo["report"].people == TableChanges(created=11)
    assert demo["report"].advisory_groups == TableChanges(created=2)
    assert len(demo["invites"]) == 8
    with Session(engine) as session:
        school_ids = session.exec(select(Person.school_id).distinct()).all()
    assert len(school_ids) == 1 and school_ids[0] is not None
    again = build_demo(engine, tmp_path / "demo", now)
    assert again["report"].people == TableChanges(unchanged=11)
    assert {row.code for row in again["invites"]} == {row.code for row in demo["invites"]}
