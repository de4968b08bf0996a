"""Accounts that cannot be taken over: a code or an e-mail links one account per platform to a person;
only a code an adult re-issued replaces an account, and the old one is told."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from bot.cli import main
from core.domain.messages import Inbound
from core.domain.store import Store
from core.engine.pipeline import Engine
from core.features import REGISTRY
from core.school.invites import reissue_invite
from tests.helpers import Chat, enrol, play


@pytest.fixture
def conversation(engine, now):
    return Engine(Store(engine), REGISTRY, clock=lambda: now)


def scalar(engine, statement: str, **params):
    with engine.connect() as db:
        return db.execute(text(statement), params).scalar()


def linked_to(engine, platform: str, external_id: str):
    return scalar(engine, "SELECT person_id FROM chatidentity WHERE platform = :p AND external_id = :e",
                  p=platform, e=external_id)


def email_of(engine, person_id: int) -> str:
    return scalar(engine, "SELECT email FROM person WHERE id = :id", id=person_id)


def slack(conversation, user: str, text_: str, email: str | None = None, event: str | None = None) -> list[str]:
    """A Slack direct message (Slack tells the app the sender's e-mail); returns the templates of the replies."""
    chat = Chat(conversation, user, platform="slack")
    tapped = text_.startswith("@")
    conversation.handle(Inbound("slack", event or f"{user}-{text_}", user, user, text=None if tapped else text_,
                                payload=text_[1:] if tapped else None, email=email))
    return [template for template, _, _ in chat.deliver()]


def test_linking_by_email_uses_up_the_code_so_a_second_slack_account_cannot_take_it(conversation, engine, now):
    student, code = enrol(engine, now)
    email = email_of(engine, student)
    assert slack(conversation, "U-OWNER", "hi", email=email) == ["link/welcome", "onboarding/consent"]
    assert scalar(engine, "SELECT used_at IS NOT NULL FROM invitecode WHERE code = :c", c=code)

    replies = slack(conversation, "U-THIEF", code, email="someone.else@elsewhere.test")

    assert replies == ["link/bad_code"]
    assert linked_to(engine, "slack", "U-THIEF") is None and linked_to(engine, "slack", "U-OWNER") == student
    assert scalar(engine, "SELECT failed_attempts FROM chatidentity WHERE external_id = 'U-THIEF'") == 1


def test_a_used_code_sent_by_a_second_slack_account_is_refused(conversation, engine, now):
    student, code = enrol(engine, now)
    assert slack(conversation, "U-OWNER", code) == ["link/welcome", "onboarding/consent"]
    slack(conversation, "U-OWNER", "@agree")

    assert slack(conversation, "U-THIEF", code) == ["link/bad_code"]
    assert linked_to(engine, "slack", "U-THIEF") is None
    # The owner's conversation is untouched by the attempt.
    assert scalar(engine, "SELECT state FROM conversation WHERE person_id = :p", p=student) == "language"


def test_a_live_code_of_a_student_already_on_slack_does_not_link_a_second_slack_account(conversation, engine, now):
    """A code kept from before this rule (or issued by mistake) still cannot take over the account."""
    student, code = enrol(engine, now)
    assert slack(conversation, "U-OWNER", code) == ["link/welcome", "onboarding/consent"]
    with engine.begin() as db:
        db.execute(text("INSERT INTO invitecode (code, person_id, created_at, expires_at, reissued) "
                        "VALUES ('LEFT-OVER1', :p, :now, :later, :no)"),
                   {"p": student, "now": now, "later": now + timedelta(days=30), "no": False})

    assert slack(conversation, "U-THIEF", "LEFT-OVER1") == ["link/already_linked"]
    assert linked_to(engine, "slack", "U-THIEF") is None
    assert scalar(engine, "SELECT used_at FROM invitecode WHERE code = 'LEFT-OVER1'") is None
    assert scalar(engine, "SELECT failed_attempts FROM chatidentity WHERE external_id = 'U-THIEF'") == 1


def test_an_email_never_links_a_second_slack_account(conversation, engine, now):
    student, _ = enrol(engine, now)
    email = email_of(engine, student)
    slack(conversation, "U-OWNER", "hi", email=email)

    assert slack(conversation, "U-OTHER", "hi", email=email) == ["link/need_code"]
    assert linked_to(engine, "slack", "U-OTHER") is None


def test_linking_with_a_code_uses_up_every_other_code_of_the_person(conversation, engine, now):
    student, code = enrol(engine, now)
    with engine.begin() as db:
        db.execute(text("INSERT INTO invitecode (code, person_id, created_at, expires_at, reissued) "
                        "VALUES ('SECOND-ONE', :p, :now, :later, :no)"),
                   {"p": student, "now": now, "later": now + timedelta(days=30), "no": False})
    play(Chat(conversation, "tg-owner", platform="telegram"), [(code, ["link/welcome", "onboarding/consent"])])

    assert scalar(engine, "SELECT COUNT(*) FROM invitecode WHERE person_id = :p AND used_at IS NULL", p=student) == 0
    assert slack(conversation, "U-THIEF", "SECOND-ONE") == ["link/bad_code"]


def test_a_reissued_code_replaces_the_old_account_which_is_told(conversation, engine, now):
    student, code = enrol(engine, now)
    email = email_of(engine, student)
    slack(conversation, "U-LOST", "hi", email=email)
    slack(conversation, "U-LOST", "@agree")
    lost_chat = Chat(conversation, "U-LOST", platform="slack")

    result = CliRunner().invoke(main, ["--database-url", engine.url.render_as_string(hide_password=False),
                                       "invites", "--reissue", email])

    assert result.exit_code == 0, result.output
    new_code = result.output.splitlines()[1].split(",")[5]
    assert new_code != code
    replies = slack(conversation, "U-NEW", new_code)
    assert replies[0] == "link/welcome"
    assert linked_to(engine, "slack", "U-NEW") == student and linked_to(engine, "slack", "U-LOST") is None
    [(template, told, _)] = lost_chat.deliver()
    assert template == "link/unlinked" and "no longer linked" in told
    assert [t for t, _, _ in lost_chat.say("hello?")] == ["link/need_code"]
    # The new account goes on with the same conversation row; the audit log says who was unlinked.
    assert scalar(engine, "SELECT COUNT(*) FROM conversation WHERE person_id = :p", p=student) == 1
    assert scalar(engine, "SELECT COUNT(*) FROM auditlog WHERE action = 'unlinked' AND person_id = :p", p=student) == 1
    assert scalar(engine, "SELECT COUNT(*) FROM auditlog WHERE action = 'invite_reissued' AND person_id = :p",
                  p=student) == 1
    # The reissued code is used; it works once.
    assert slack(conversation, "U-THIRD", new_code) == ["link/bad_code"]


def test_a_reissue_stops_the_old_unused_codes_and_only_replaces_an_account_of_the_same_platform(
        conversation, engine, now):
    student, code = enrol(engine, now)
    slack(conversation, "U-OWNER", "hi", email=email_of(engine, student))
    other, old_code = enrol(engine, now, given_name="Bo")

    fresh = reissue_invite(engine, other, now, valid_days=7)

    assert slack(conversation, "U-BO", old_code) == ["link/bad_code"]  # the old slip no longer works
    again = reissue_invite(engine, student, now, valid_days=7)
    telegram = Chat(conversation, "tg-owner", platform="telegram")
    assert [t for t, _, _ in telegram.say(again.code)][:1] == ["link/welcome"]
    assert linked_to(engine, "telegram", "tg-owner") == student
    assert linked_to(engine, "slack", "U-OWNER") == student  # a Telegram code leaves the Slack account alone
    assert fresh.code != old_code and fresh.expires_at == now + timedelta(days=7)


def test_reissue_names_one_person(engine, now):
    enrol(engine, now, given_name="Sam")
    enrol(engine, now, given_name="Sam")
    runner = CliRunner()
    url = engine.url.render_as_string(hide_password=False)

    ambiguous = runner.invoke(main, ["--database-url", url, "invites", "--reissue", "Sam"])
    missing = runner.invoke(main, ["--database-url", url, "invites", "--reissue", "nobody-here"])

    assert ambiguous.exit_code == 1 and "2 people match" in ambiguous.output
    assert missing.exit_code == 1 and "nobody matches" in missing.output
