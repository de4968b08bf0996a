"""A student's data under their control: /mydata, /delete, `companion forget`, the tombstone, retention.

The strongest check reads the whole database (every table, every column) and the file store after
`companion forget`, looking for the student's name, e-mail, words and file bytes.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect, select, text
from sqlmodel import SQLModel

from bot.cli import main
from core.config import Settings
from core.domain.files import file_store, platform_key
from core.domain.messages import Attachment, Inbound
from core.domain.store import Store
from core.engine.pipeline import Engine
from core.engine.registry import Feature
from core.features import REGISTRY
from core.school import privacy
from core.school.demo import write_demo_roster
from core.school.roster import import_roster
from tests.helpers import Chat, enrol, play
from tests.test_roster import MARKERS, edit, line_of

GIVEN, FAMILY = "Zéphyrine", "Quillfeather"
CANARY = "marmalade"  # in everything she writes and sends
PHOTO = b"\xff\xd8 PHOTO marmalade bytes \xff\xd9"
CRISIS = f"I want to kill myself, {CANARY} lighthouse"


@pytest.fixture(params=["database", "folder"])
def location(request, tmp_path) -> str:
    """COMPANION_FILE_STORE: empty for the database, or a folder."""
    return "" if request.param == "database" else str(tmp_path / "files")


def conversation(engine, now, location: str = "", registry=REGISTRY) -> Engine:
    settings = Settings().model_copy(update={"file_store": location})
    return Engine(Store(engine), registry, settings, clock=lambda: now)


def companion(engine, *args: str, location: str = "", monkeypatch=None):
    if monkeypatch is not None:
        monkeypatch.setenv("COMPANION_FILE_STORE", location)
    return CliRunner().invoke(main, ["--database-url", engine.url.render_as_string(hide_password=False), *args])


def sql(engine, statement: str, **params):
    with engine.begin() as db:
        return db.execute(text(statement), params)


def scalar(engine, statement: str, **params):
    with engine.connect() as db:
        return db.execute(text(statement), params).scalar()


def rename(engine, person_id: int, given: str, family: str) -> str:
    """Give a test person a distinctive name and e-mail; returns the e-mail."""
    email = f"{given.lower()}.{family.lower()}@school.test"
    sql(engine, "UPDATE person SET given_name = :g, family_name = :f, email = :e WHERE id = :id",
        g=given, f=family, e=email, id=person_id)
    return email


def onboard(chat: Chat, code: str, words: str = CANARY) -> None:
    play(chat, [(code, ["link/welcome", "onboarding/consent"]), ("@agree", ["profile/ask_language"]),
                ("@en", ["profile/ask_timezone"]), ("@keep", ["profile/ask_strengths"]),
                (f"I am good at {words} drawing", ["profile/ask_needs"])])


def rows_everywhere(engine, person_id: int, words: str, at: datetime) -> None:
    """Rows in every table a feature or the scheduler writes, each holding her words."""
    with engine.begin() as db:
        goal = db.execute(text(
            "INSERT INTO goal (person_id, week_start, text, category, outcome, obstacle, plan, status, created_at, "
            "updated_at) VALUES (:p, :w, :t, 'habits_of_success', :t, :t, :t, 'open', :at, :at) RETURNING id"),
            dict(p=person_id, w=date(2026, 11, 23), t=f"read about {words} daily", at=at)).scalar()
        db.execute(text("INSERT INTO goalreview (goal_id, person_id, status, notes, created_at) "
                        "VALUES (:g, :p, 'done', :t, :at)"), dict(g=goal, p=person_id, t=f"{words} helped", at=at))
        db.execute(text("INSERT INTO reflection (person_id, kind, week_start, text, created_at) "
                        "VALUES (:p, 'week', :w, :t, :at)"),
                   dict(p=person_id, w=date(2026, 11, 23), t=f"my week of {words}", at=at))
        db.execute(text("INSERT INTO helprequest (person_id, goal_id, text, status, created_at) "
                        "VALUES (:p, :g, :t, 'open', :at)"), dict(p=person_id, g=goal, t=f"help with {words}", at=at))
        db.execute(text("INSERT INTO planfocus (person_id, category, title, set_by, created_at) "
                        "VALUES (:p, 'habits_of_success', :t, 'student', :at)"),
                   dict(p=person_id, t=f"{words} focus", at=at))
        nudge = db.execute(text(
            "INSERT INTO nudge (person_id, kind, occasion, due_at, expires_at, status, created_at) "
            "VALUES (:p, 'goals', :o, :at, :at, 'sent', :at) RETURNING id"),
            dict(p=person_id, o=date(2026, 11, 23), at=at)).scalar()
        db.execute(text("INSERT INTO flag (person_id, kind, nudge_id, detail, created_at) "
                        "VALUES (:p, 'silent', :n, :d, :at)"),
                   dict(p=person_id, n=nudge, d=json.dumps({"note": words}), at=at))
        db.execute(text("INSERT INTO chosentime (person_id, kind, weekday, at, updated_at) "
                        "VALUES (:p, 'digest', 2, '16:00', :at)"), dict(p=person_id, at=at))


def needles(*words: str) -> set[str]:
    """Each word as it may be stored: as typed, or escaped inside JSON."""
    return {form.casefold() for word in words for form in (word, json.dumps(word)[1:-1])}


def leftovers(engine, found_in: set[str], folder: str = "") -> list[tuple[str, str]]:
    """Every (table or file, needle) where a needle still appears: every table, every column, every file."""
    hits = []
    tables = inspect(engine).get_table_names()
    with engine.connect() as db:
        for table in tables:
            for row in db.execute(text(f"SELECT * FROM {table}")):
                for value in row:
                    if value is None:
                        continue
                    if isinstance(value, (bytes, bytearray, memoryview)):
                        value = bytes(value).decode("utf-8", errors="replace")
                    seen = str(value).casefold()
                    hits.extend((table, needle) for needle in found_in if needle in seen)
    if folder and Path(folder).exists():
        for path in Path(folder).rglob("*"):
            if path.is_file():
                seen = path.read_bytes().decode("utf-8", errors="replace").casefold()
                hits.extend((str(path), needle) for needle in found_in if needle in seen)
    return hits


def about(engine, person_id: int) -> dict[str, list[dict]]:
    """The database's own answer to "what is stored about this person": every table that refers to a
    person (by the models' foreign keys), the person row, and the audit log; read with the ORM's types."""
    wanted = {"person": ("id",), "auditlog": ("person_id",)}
    for table in SQLModel.metadata.tables.values():
        for column in table.columns:
            if column.name in ("person_id", "student_id") and any(
                    key.column.table.name == "person" for key in column.foreign_keys):
                wanted[table.name] = (column.name,)
    found = {}
    with engine.connect() as db:
        for name, (column,) in wanted.items():
            table = SQLModel.metadata.tables[name]
            rows = db.execute(select(table).where(table.c[column] == person_id).order_by(*table.primary_key)).all()
            found[name] = [{key: plain(value) for key, value in row._mapping.items()
                            if not isinstance(value, (bytes, memoryview))} for row in rows]
    return found


def plain(value):
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def sent_document(engine, chat_id: str) -> str:
    """The file key of the newest document queued for a chat."""
    with engine.connect() as db:
        parts = db.execute(text("SELECT parts FROM outbox WHERE chat_id = :c AND parts IS NOT NULL ORDER BY id DESC"),
                           {"c": chat_id}).scalar()
    return json.loads(parts)["document"]["file"]["key"]


class School:
    """An adviser, the student with data everywhere, and a classmate whose data must stay."""

    def __init__(self, engine, now, location: str):
        self.engine, self.now, self.location = engine, now, location
        self.talk = conversation(engine, now, location)
        self.adviser_id, adviser_code = enrol(engine, now, given_name="Rivera", role="adviser")
        self.adviser = Chat(self.talk, "acct-adviser")
        self.adviser.say(adviser_code)
        self.student_id, code = enrol(engine, now, adviser_id=self.adviser_id)
        self.email = rename(engine, self.student_id, GIVEN, FAMILY)
        self.sourced_id = scalar(engine, "SELECT sourced_id FROM person WHERE id = :id", id=self.student_id)
        self.chat = Chat(self.talk, "acct-7")
        onboard(self.chat, code)
        self.classmate_id, classmate_code = enrol(engine, now, given_name="Olwen", adviser_id=self.adviser_id)
        self.classmate = Chat(self.talk, "acct-8")
        onboard(self.classmate, classmate_code, "juniper")
        self.files = file_store(location, engine)
        photo = self.files.put(PHOTO, "poster.jpg", key=platform_key("console", "photo-7"))
        self.talk.handle(Inbound("console", "photo-event", "acct-7", "acct-7",
                                 attachment=Attachment("photo", "photo-7", f"my {CANARY} poster", photo)))
        self.chat.deliver()
        self.photo_key = photo.key
        rows_everywhere(engine, self.student_id, CANARY, now)
        rows_everywhere(engine, self.classmate_id, "juniper", now)
        # Crisis words: support for her, and an alert queued for her adviser carrying her name and words.
        self.chat.say(CRISIS)
        assert scalar(engine, "SELECT COUNT(*) FROM safetyalert WHERE person_id = :p", p=self.student_id) >= 1
        sql(engine, "INSERT INTO adultaction (actor_id, student_id, subject, action, note, at) "
                    "VALUES (:a, :s, 'alert', 'closed', :n, :at)",
            a=self.adviser_id, s=self.student_id, n=f"called home about {CANARY}", at=now)
        self.adviser.say("/students")  # the adviser's list names her (delivered: sent)
        if inspect(engine).has_table("inbox"):  # an event of hers that failed to be handled keeps her words
            for account, words in (("acct-7", CANARY), ("acct-8", "juniper")):
                sql(engine, "INSERT INTO inbox (platform, bot, event_id, sender, payload, status, attempts, "
                            "received_at) VALUES ('console', '', :e, :s, :p, 'failed', 5, :at)",
                    e=f"stuck-{account}", s=account, p=json.dumps({"text": f"{words} stuck"}), at=now)


def test_forget_leaves_nothing_about_the_student_anywhere(engine, now, location, monkeypatch):
    school = School(engine, now, location)
    school.chat.say("/mydata")  # an export of everything, kept in the file store, queued to her
    export_key = sent_document(engine, "acct-7")
    classmate_before = about(engine, school.classmate_id)
    mine = needles(GIVEN, FAMILY, school.email, CANARY)
    alerts_logged = scalar(engine, "SELECT COUNT(*) FROM auditlog WHERE action = 'safety_alert'")
    assert leftovers(engine, mine, location)  # the test would see her data if it were left
    to_adviser = "SELECT COUNT(*) FROM outbox WHERE person_id = :a"
    about_her = scalar(engine, to_adviser + " AND context LIKE :w", a=school.adviser_id, w=f"%{CANARY}%")
    assert about_her >= 1  # the alert queued for her adviser carries her words
    adviser_rows = scalar(engine, to_adviser, a=school.adviser_id)

    result = companion(engine, "forget", school.sourced_id, "--yes", location=location, monkeypatch=monkeypatch)

    assert result.exit_code == 0, result.output
    assert "forgotten" in result.output
    assert leftovers(engine, mine, location) == []
    assert not school.files.exists(school.photo_key) and not school.files.exists(export_key)
    for table in ("person", "chatidentity", "conversation", "invitecode", "outbox", "safetyalert", "goal"):
        assert scalar(engine, f"SELECT COUNT(*) FROM {table} WHERE "
                              f"{'id' if table == 'person' else 'person_id'} = :p", p=school.student_id) == 0
    # The audit entry says it happened, with the tombstone and counts, no content; earlier entries (the alert) stay.
    detail = json.loads(scalar(engine, "SELECT detail FROM auditlog WHERE action = 'forgotten'"))
    assert detail["tombstone"] == privacy.tombstone_key(school.sourced_id) and detail["rows"]["goal"] == 1
    assert scalar(engine, "SELECT COUNT(*) FROM auditlog WHERE action = 'safety_alert'") == alerts_logged
    assert scalar(engine, "SELECT COUNT(*) FROM auditlog WHERE person_id = :p", p=school.student_id) == 0
    assert scalar(engine, "SELECT COUNT(*) FROM tombstone WHERE key = :k",
                  k=privacy.tombstone_key(school.sourced_id)) == 1
    # The adviser's other messages stay; those about her are gone. Her classmate's data is all still there.
    assert scalar(engine, to_adviser, a=school.adviser_id) == adviser_rows - about_her
    assert scalar(engine, to_adviser + " AND template = 'commands/adult_menu'", a=school.adviser_id) == 1
    assert about(engine, school.classmate_id) == classmate_before
    assert leftovers(engine, needles("juniper", "Olwen"))
    if inspect(engine).has_table("inbox"):
        assert scalar(engine, "SELECT COUNT(*) FROM inbox WHERE sender = 'acct-8'") == 1


def test_mydata_sends_a_file_holding_every_tables_rows_about_the_student(engine, now, location):
    school = School(engine, now, location)
    expected = about(engine, school.student_id)

    replies = school.chat.say("/mydata")

    assert [template for template, _, _ in replies][:1] == ["mydata/sent"]
    data = json.loads(school.files.read(sent_document(engine, "acct-7")))
    assert data["format"] == privacy.FORMAT and data["person_id"] == school.student_id
    assert set(data["tables"]) == set(expected)  # every table that refers to a person is in it
    for table, rows in expected.items():
        assert data["tables"][table] == rows, table
    assert {table for table in expected if expected[table]} >= {
        "person", "chatidentity", "conversation", "learnerprofile", "goal", "goalreview", "reflection", "artifact",
        "helprequest", "planfocus", "safetyalert", "adultaction", "nudge", "flag", "chosentime", "invitecode",
        "outbox", "advisorymember", "auditlog"}
    assert any(file["key"] == school.photo_key for file in data["files"])
    assert data["tables"]["learnerprofile"][0]["strengths"] == f"I am good at {CANARY} drawing"
    page = data["portfolio"]  # the portfolio page is in the export too (issue 15), whole: photos embedded
    assert page["name"].endswith(".html") and CANARY in page["html"] and "data:image/" in page["html"]


def test_companion_export_writes_the_same_json_as_mydata(engine, now, tmp_path, monkeypatch):
    school = School(engine, now, "")
    out = tmp_path / "export.json"

    result = companion(engine, "export", school.email, "--out", str(out), monkeypatch=monkeypatch)

    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    expected = about(engine, school.student_id)
    expected["auditlog"] = expected["auditlog"][:-1]  # the export's own audit entry came after it
    assert data["tables"] == expected
    assert data["portfolio"]["name"].endswith(".html") and CANARY in data["portfolio"]["html"]


def test_delete_records_a_request_that_companion_forget_carries_out(engine, now, monkeypatch):
    school = School(engine, now, "")

    play(school.chat, [("/delete", ["mydata/ask_delete"]), ("@keep", ["mydata/kept"])])
    assert scalar(engine, "SELECT COUNT(*) FROM deleterequest") == 0
    play(school.chat, [("/delete", ["mydata/ask_delete"]), ("@delete", ["mydata/delete_recorded"])])
    play(school.chat, [("/borrar", ["mydata/ask_delete"]), ("@delete", ["mydata/delete_waiting"])])
    assert scalar(engine, "SELECT person_id FROM deleterequest") == school.student_id
    status = companion(engine, "status", monkeypatch=monkeypatch)
    assert f"Delete requests waiting for `companion forget`: 1 ({school.sourced_id})" in status.output

    done = companion(engine, "forget", school.sourced_id, "--yes", monkeypatch=monkeypatch)

    assert done.exit_code == 0, done.output
    assert "their delete request is done" in done.output
    assert scalar(engine, "SELECT COUNT(*) FROM deleterequest") == 0
    detail = json.loads(scalar(engine, "SELECT detail FROM auditlog WHERE action = 'forgotten'"))
    assert detail["reason"] == "request" and detail["requested"] is True
    assert "Delete requests waiting for `companion forget`: 0" in companion(engine, "status").output


def test_forget_asks_before_deleting_and_names_who(engine, now, monkeypatch):
    school = School(engine, now, "")

    refused = CliRunner().invoke(main, ["--database-url", engine.url.render_as_string(hide_password=False),
                                        "forget", GIVEN], input="n\n")

    assert refused.exit_code == 1 and f"{GIVEN} {FAMILY}" in refused.output
    assert scalar(engine, "SELECT COUNT(*) FROM person WHERE id = :p", p=school.student_id) == 1
    assert companion(engine, "forget", "nobody-at-all", "--yes").exit_code == 1


@pytest.fixture
def roster(tmp_path) -> Path:
    directory = tmp_path / "roster"
    write_demo_roster(directory)
    return directory


def demo_student(engine, sourced_id: str) -> int:
    return scalar(engine, "SELECT id FROM person WHERE sourced_id = :s", s=sourced_id)


@pytest.mark.parametrize("leaves", ["absent", "tobedeleted", "disabled"])
def test_the_roster_import_starts_the_retention_clock_when_a_person_leaves(engine, roster, leaves):
    import_roster(engine, roster, MARKERS, today=date(2026, 6, 30))
    line = line_of(roster, "users.csv", "usr-s-1008")
    original = {name: (roster / name).read_text() for name in ("users.csv", "enrollments.csv")}
    if leaves == "absent":
        for name, content in original.items():
            (roster / name).write_text("".join(row for row in content.splitlines(keepends=True)
                                               if "usr-s-1008" not in row))
    else:
        edit(roster, "users.csv", line, *(("status", "tobedeleted") if leaves == "tobedeleted"
                                           else ("enabledUser", "false")))

    report = import_roster(engine, roster, MARKERS, today=date(2026, 7, 1))

    assert report.withdrawn == ["usr-s-1008"] and report.left == ["usr-s-1008"]
    assert scalar(engine, "SELECT left_on FROM person WHERE sourced_id = 'usr-s-1008'") in (date(2026, 7, 1),
                                                                                          "2026-07-01")
    again = import_roster(engine, roster, MARKERS, today=date(2026, 7, 9))
    assert again.left == []  # the clock started on the first day they were gone
    for name, content in original.items():
        (roster / name).write_text(content)
    back = import_roster(engine, roster, MARKERS, today=date(2026, 8, 1))
    assert back.returned == ["usr-s-1008"]
    assert scalar(engine, "SELECT left_on FROM person WHERE sourced_id = 'usr-s-1008'") is None


def test_a_forgotten_student_on_a_reimported_roster_is_reported_and_not_recreated(engine, roster, now, monkeypatch):
    import_roster(engine, roster, MARKERS)
    forgotten = companion(engine, "forget", "usr-s-1008", "--yes", monkeypatch=monkeypatch)
    assert forgotten.exit_code == 0, forgotten.output

    again = companion(engine, "roster", "import", str(roster))

    assert again.exit_code == 0, again.output
    assert "NOT created again (1): usr-s-1008" in again.output and "--readmit" in again.output
    assert demo_student(engine, "usr-s-1008") is None
    assert scalar(engine, "SELECT COUNT(*) FROM advisorymember m JOIN person p ON p.id = m.person_id "
                          "WHERE p.sourced_id = 'usr-s-1008'") == 0
    assert leftovers(engine, needles("Ethan", "Brooks", "ethan.brooks")) == []

    readmitted = companion(engine, "roster", "import", str(roster), "--readmit", "usr-s-1008")

    assert readmitted.exit_code == 0, readmitted.output
    assert "Readmitted after being forgotten (1): usr-s-1008" in readmitted.output
    assert demo_student(engine, "usr-s-1008") is not None
    assert scalar(engine, "SELECT COUNT(*) FROM tombstone") == 0
    assert "NOT created" not in companion(engine, "roster", "import", str(roster)).output


def test_the_retention_sweep_forgets_who_left_past_the_school_setting_and_no_one_else(engine, now):
    left_long_ago, _ = enrol(engine, now, given_name="Ingrid")
    left_recently, _ = enrol(engine, now, given_name="Leopold")
    staying, _ = enrol(engine, now, given_name="Marisol")
    adult, _ = enrol(engine, now, given_name="Hollis", role="adviser")
    for person_id, days in ((left_long_ago, 366), (left_recently, 364), (adult, 900)):
        sql(engine, "UPDATE person SET left_on = :d WHERE id = :id", d=now.date() - timedelta(days=days), id=person_id)
    # Old and new event ids and messages: only the old handled and sent ones go.
    old, new = now - timedelta(days=31), now - timedelta(days=29)
    with engine.begin() as db:
        for event_id, at in (("old", old), ("new", new)):
            db.execute(text("INSERT INTO inboundevent (platform, event_id, received_at) VALUES ('telegram', :e, :at)"),
                       {"e": event_id, "at": at})
        for status, at in (("sent", old), ("sent", new), ("pending", old), ("failed", old)):
            db.execute(text("INSERT INTO outbox (person_id, platform, chat_id, template, locale, context, buttons, "
                            "priority, status, attempts, sent_at, created_at) VALUES (:p, 'telegram', '1', 'x', 'en', "
                            "'{}', '[]', 0, :s, 0, :at, :at)"), {"p": staying, "s": status, "at": at})

    done = privacy.retention_sweep(engine, REGISTRY, now)

    assert done == {"forgotten": 1, "failed": 0, "events_pruned": 1, "messages_pruned": 1, "exports_pruned": 0}
    people = {row[0] for row in sql(engine, "SELECT id FROM person")}
    assert left_long_ago not in people and {left_recently, staying, adult} <= people
    assert scalar(engine, "SELECT COUNT(*) FROM inboundevent") == 1
    assert scalar(engine, "SELECT COUNT(*) FROM outbox") == 3
    assert json.loads(scalar(engine, "SELECT detail FROM auditlog WHERE action = 'forgotten'"))["reason"] == "retention"
    assert "Last retention run: " in "\n".join(privacy.status(engine, now))

    # Two days later the second has passed 365 days too; a school that keeps data longer keeps it.
    with Store(engine).transaction() as tx:
        REGISTRY.settings.set(tx, 1, "retention_days", "400", now)
    assert privacy.retention_sweep(engine, REGISTRY, now + timedelta(days=2))["forgotten"] == 0
    with Store(engine).transaction() as tx:
        REGISTRY.settings.set(tx, 1, "retention_days", "365", now)
    assert privacy.retention_sweep(engine, REGISTRY, now + timedelta(days=2))["forgotten"] == 1
    assert scalar(engine, "SELECT COUNT(*) FROM person WHERE id = :p", p=left_recently) == 0


def test_every_table_that_refers_to_a_person_is_exported_and_forgotten(engine):
    """A table the models describe with a person's id is declared: in SHARED_TABLES or a feature's person_tables."""
    with Store(engine).transaction() as tx:
        declared = {(holder.table, holder.column) for holder in privacy.holders(tx, REGISTRY)}
    for table in SQLModel.metadata.tables.values():
        for column in table.columns:
            if column.name in ("person_id", "student_id") and any(
                    key.column.table.name == "person" for key in column.foreign_keys):
                assert (table.name, column.name) in declared


def test_a_later_features_table_is_forgotten_once_declared_and_stops_forget_until_then(engine, now):
    sql(engine, "CREATE TABLE scribble (id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL REFERENCES person (id), "
                "note TEXT)")
    student, _ = enrol(engine, now)
    sql(engine, "INSERT INTO scribble (id, person_id, note) VALUES (1, :p, 'a private scribble')", p=student)

    with pytest.raises(Exception):
        privacy.forget(engine, REGISTRY, student, now)  # the database refuses: scribble still names her
    assert scalar(engine, "SELECT COUNT(*) FROM person WHERE id = :p", p=student) == 1  # nothing was deleted

    scribbles = REGISTRY.extended(Feature("scribble", person_tables=("scribble",), prompts=None))
    with Store(engine).transaction() as tx:
        assert privacy.export(tx, scribbles, student, now)["tables"]["scribble"] == [
            {"id": 1, "person_id": student, "note": "a private scribble"}]
    done = privacy.forget(engine, scribbles, student, now)
    assert done.rows["scribble"] == 1
    assert scalar(engine, "SELECT COUNT(*) FROM scribble") == 0


def test_status_shows_the_outbox_alerts_and_the_last_runs(engine, now, monkeypatch):
    school = School(engine, now, "")
    privacy.retention_sweep(engine, REGISTRY, now)

    shown = companion(engine, "status", monkeypatch=monkeypatch)

    assert shown.exit_code == 0, shown.output
    assert "Outbox: " in shown.output and "waiting to be sent" in shown.output
    assert "Safety alerts" in shown.output and "Last retention run:" in shown.output
    assert GIVEN not in shown.output and CANARY not in shown.output  # counts, never content
    assert school.student_id


def test_an_unsent_alert_about_a_namesake_stays(engine, now):
    talk = conversation(engine, now)
    adviser_id, adviser_code = enrol(engine, now, given_name="Rivera", role="adviser")
    Chat(talk, "acct-adviser").say(adviser_code)
    chats = {}
    for family in ("Alder", "Birch"):
        person_id, code = enrol(engine, now, adviser_id=adviser_id)
        rename(engine, person_id, "Wren", family)
        chats[family] = (person_id, Chat(talk, f"acct-{family}"))
        chats[family][1].say(code)
        chats[family][1].say(f"I want to kill myself, {family.lower()} words")
    alerts = "SELECT COUNT(*) FROM outbox WHERE person_id = :a AND status = 'pending' AND context LIKE :w"
    assert scalar(engine, alerts, a=adviser_id, w="%birch words%") == 1

    privacy.forget(engine, REGISTRY, chats["Alder"][0], now)

    assert scalar(engine, alerts, a=adviser_id, w="%alder words%") == 0
    assert scalar(engine, alerts, a=adviser_id, w="%birch words%") == 1  # the other Wren's alert still goes out


def test_an_export_sent_more_than_30_days_ago_is_pruned_with_its_file(engine, now, location):
    talk = conversation(engine, now, location)
    _, code = enrol(engine, now)
    chat = Chat(talk, "acct-9")
    chat.say(code)
    chat.say("/mydata")  # delivered: marked sent
    key = sent_document(engine, "acct-9")
    files = file_store(location, engine)
    assert files.exists(key)

    assert privacy.prune(engine, now + timedelta(days=29), location)["exports_pruned"] == 0
    pruned = privacy.prune(engine, now + timedelta(days=31), location)

    assert pruned["exports_pruned"] == 1 and pruned["messages_pruned"] >= 1
    assert not files.exists(key)
