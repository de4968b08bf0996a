"""Rosters as SIS systems export them (issue 12): roles that cannot promote a student, who is active,
messy files, OneRoster 1.2 beside 1.1, and imports that stream.

The sets under tests/fixtures/rosters/ were written from the OneRoster 1.1 and 1.2 CSV
specifications and what SIS exports look like (BOMs, CRLF, quoted values, mixed date forms,
metadata columns, a district with a department, a student aide enrolled as a teacher):

- riverbend_1_1, riverbend_1_2: the same district, people and classes, as 1.1 and as 1.2 bulk CSV;
- orphan_department: an export whose only org is a department, its school left out;
- delta_1_2: a 1.2 delta export.

Each case checks the report's words and the rows stored; damaged copies are made from the good
sets here, one change at a time.
"""

from __future__ import annotations

import csv
import shutil
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlmodel import Session

from bot.cli import main
from core.domain.models import InviteCode
from core.domain.store import Store
from core.engine.pipeline import Engine
from core.features import REGISTRY
from core.schedule import policy as schedule
from core.school.invites import issue_invites
from core.school.privacy import tombstone_key
from core.school.roster import RosterError, TableChanges, import_roster
from tests.helpers import Chat, play

FIXTURES = Path(__file__).parent / "fixtures" / "rosters"
MARKERS = {"homeroom"}
COUNSELORS = frozenset({"ingrid.lindqvist@riverbend.example"})  # 1.1 has no counselor role; 1.2 says counselor
TABLES = ("school", "person", "personschool", "advisorygroup", "advisorymember", "rosterclass", "enrollment",
          "invitecode", "auditlog")
MONDAY = date(2026, 11, 23)


# -- helpers --------------------------------------------------------------------------------------------


@pytest.fixture(params=["1.1", "1.2"])
def version(request) -> str:
    return request.param


def copy(tmp_path: Path, name: str) -> Path:
    directory = tmp_path / name
    shutil.copytree(FIXTURES / name, directory)
    return directory


def riverbend(tmp_path: Path, version: str) -> Path:
    return copy(tmp_path, f"riverbend_{version.replace('.', '_')}")


def rows_of(directory: Path, name: str) -> list[list[str]]:
    with (directory / name).open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.reader(handle))


def write_rows(directory: Path, name: str, rows: list[list[str]]) -> None:
    with (directory / name).open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)


def edit(directory: Path, name: str, sourced_id: str, column: str, value: str) -> int:
    """Set one cell of the record with this sourcedId; returns its line."""
    rows = rows_of(directory, name)
    line = next(number for number, row in enumerate(rows, start=1) if row[0] == sourced_id)
    rows[line - 1][rows[0].index(column)] = value
    write_rows(directory, name, rows)
    return line


def drop_user(directory: Path, sourced_id: str) -> None:
    """Leave a user out of the export, as a SIS does for someone who left: every file that names them."""
    for name in ("users.csv", "roles.csv", "userProfiles.csv", "enrollments.csv"):
        if (directory / name).is_file():
            write_rows(directory, name, [row for row in rows_of(directory, name) if sourced_id not in row])


def sql(engine, statement: str, **params) -> list[tuple]:
    with engine.connect() as db:
        return [tuple(row) for row in db.execute(text(statement), params)]


def scalar(engine, statement: str, **params):
    with engine.connect() as db:
        return db.execute(text(statement), params).scalar()


def snapshot(engine) -> dict[str, list[tuple]]:
    """Every row an import may touch, to prove a refused import changed nothing."""
    return {table: sql(engine, f"SELECT * FROM {table} ORDER BY 1, 2") for table in TABLES}


def stored(engine) -> dict[str, list[tuple]]:
    """What the roster put in the database, by sourced ids (no surrogate ids): to compare two imports."""
    return {
        "schools": sql(engine, "SELECT sourced_id, name FROM school ORDER BY 1"),
        "people": sql(engine, "SELECT p.sourced_id, s.sourced_id, p.role, p.given_name, p.family_name, p.email, "
                              "p.grade, p.status, p.left_on FROM person p LEFT JOIN school s ON s.id = p.school_id "
                              "ORDER BY 1"),
        "person schools": sql(engine, "SELECT p.sourced_id, s.sourced_id FROM personschool x JOIN person p "
                                      "ON p.id = x.person_id JOIN school s ON s.id = x.school_id ORDER BY 1, 2"),
        "groups": sql(engine, "SELECT g.sourced_id, s.sourced_id, g.title FROM advisorygroup g JOIN school s "
                              "ON s.id = g.school_id ORDER BY 1"),
        "members": members(engine),
        "classes": sql(engine, "SELECT c.sourced_id, s.sourced_id, c.title, c.class_type, c.class_code, c.subjects, "
                               "c.grades, c.advisory FROM rosterclass c LEFT JOIN school s ON s.id = c.school_id "
                               "ORDER BY 1"),
        "enrollments": sql(engine, "SELECT e.sourced_id, c.sourced_id, p.sourced_id, e.role FROM enrollment e "
                                   "JOIN rosterclass c ON c.id = e.class_id JOIN person p ON p.id = e.person_id "
                                   "ORDER BY 1"),
    }


def members(engine, group: str | None = None) -> list[tuple]:
    rows = sql(engine, "SELECT g.sourced_id, p.sourced_id, m.role FROM advisorymember m JOIN advisorygroup g "
                       "ON g.id = m.group_id JOIN person p ON p.id = m.person_id ORDER BY 1, 2")
    return [row[1:] for row in rows if row[0] == group] if group else rows


def person(engine, sourced_id: str) -> dict | None:
    found = sql(engine, "SELECT p.role, s.sourced_id, p.email, p.left_on, p.given_name, p.family_name FROM person p "
                        "LEFT JOIN school s ON s.id = p.school_id WHERE p.sourced_id = :s", s=sourced_id)
    if not found:
        return None
    role, school, email, left_on, given_name, family_name = found[0]
    if isinstance(left_on, str):
        left_on = date.fromisoformat(left_on)
    return {"role": role, "school": school, "email": email, "left_on": left_on, "name": f"{given_name} {family_name}"}


def companion(engine, *args: str):
    return CliRunner().invoke(main, ["--database-url", engine.url.render_as_string(hide_password=False), *args])


def refused(engine, directory: Path, message: str, **options) -> None:
    """The import is refused with `message` (the start of it) and changes nothing."""
    before = snapshot(engine)
    with pytest.raises(RosterError) as raised:
        import_roster(engine, directory, MARKERS, **options)
    assert str(raised.value).startswith(message), str(raised.value)
    assert snapshot(engine) == before


# -- 1. roles that cannot promote a student ---------------------------------------------------------------


def test_a_student_enrolled_as_teacher_of_an_advisory_class_never_advises_it(engine, tmp_path, version):
    report = import_roster(engine, riverbend(tmp_path, version), MARKERS, counselor_emails=COUNSELORS)

    assert ("u-s-2003 is a student, enrolled as teacher in the advisory group cls-hr-ms-7a (enrollments.csv line 5): "
            "kept a student, not made its adviser") in report.conflicts
    assert "Role conflicts, settled by the person's own role" in "\n".join(report.lines())
    if version == "1.2":  # her secondary teacher role is listed too, and overruled by her primary one
        assert ("u-s-2003 is a student by their primary role, and also teacher at org-rb-ms in roles.csv: "
                "a student here, never an adult") in report.conflicts
    assert person(engine, "u-s-2003")["role"] == "student"
    assert members(engine, "cls-hr-ms-7a") == [("u-s-2001", "student"), ("u-s-2002", "student"),
                                               ("u-t-alvarez", "adviser")]
    assert members(engine, "cls-hr-ms-8b") == [("u-s-2003", "student"), ("u-s-2004", "student"),
                                               ("u-t-chen", "adviser")]
    # The enrollment itself is kept as the SIS wrote it; it gives her nothing here.
    assert ("enr-7a-2003-ta", "cls-hr-ms-7a", "u-s-2003", "teacher") in stored(engine)["enrollments"]


def test_a_crisis_message_from_a_classmate_reaches_the_real_adviser_only(engine, tmp_path, now):
    """Before issue 12 the student aide became an adviser of Advisory 7A and received Sofía's alert."""
    import_roster(engine, riverbend(tmp_path, "1.1"), MARKERS)
    codes = {row.sourced_id: row.code for row in issue_invites(engine, now, 30, roles=("student", "adviser"))}
    conversation = Engine(Store(engine), REGISTRY, clock=lambda: now)
    adviser, aide = Chat(conversation, "alvarez"), Chat(conversation, "amara")
    adviser.say(codes["u-t-alvarez"])
    adviser.deliver()
    play(aide, [(codes["u-s-2003"], ["link/welcome", "onboarding/consent"])])
    sofia = Chat(conversation, "sofia")
    play(sofia, [(codes["u-s-2001"], ["link/welcome", "onboarding/consent"]), ("@agree", ["profile/ask_language"])])

    replies = sofia.say("I want to kill myself")

    assert [template for template, _, _ in replies] == ["safety/support"]
    (template, alert, _), = adviser.deliver()
    assert template == "safety/alert" and "Sofía" in alert and "I want to kill myself" in alert
    assert aide.deliver() == []  # the classmate enrolled as "teacher" hears nothing of it
    assert scalar(engine, "SELECT COUNT(*) FROM outbox WHERE template = 'safety/alert'") == 1


@pytest.mark.parametrize(("role", "here"), [
    ("counselor", "counselor"), ("principal", "admin"), ("siteAdministrator", "admin"),
    ("districtAdministrator", "admin"), ("teacher", "adviser"), ("systemAdministrator", None), ("aide", None),
])
def test_oneroster_1_2_roles_map_onto_the_products(engine, tmp_path, role, here):
    directory = riverbend(tmp_path, "1.2")
    edit(directory, "roles.csv", "rol-u-a-okonkwo-0", "role", role)

    report = import_roster(engine, directory, MARKERS)

    if here is None:
        assert person(engine, "u-a-okonkwo") is None
        assert report.skipped_users[role] == (2 if role == "aide" else 1)  # Tom Baker is an aide already
    else:
        assert person(engine, "u-a-okonkwo")["role"] == here


def test_a_student_named_a_counselor_by_email_stays_a_student_and_is_listed(engine, tmp_path):
    report = import_roster(engine, riverbend(tmp_path, "1.1"), MARKERS,
                           counselor_emails=COUNSELORS | {"sofia.nunez@students.riverbend.example"})

    assert person(engine, "u-s-2001")["role"] == "student" and person(engine, "u-c-lindqvist")["role"] == "counselor"
    assert "u-s-2001 is a student: not made a counselor, though the counselor e-mails name them" in report.conflicts


def test_district_staff_cover_every_school_below_and_a_department_belongs_to_its_school(engine, tmp_path, version):
    report = import_roster(engine, riverbend(tmp_path, version), MARKERS)

    assert person(engine, "u-a-holloway") | {"left_on": None} == {
        "role": "admin", "school": "org-rb-ms", "email": "margaret.holloway@riverbend.example", "left_on": None,
        "name": "Margaret Holloway"}
    assert stored(engine)["person schools"] == [("u-a-holloway", "org-rb-hs")]
    assert report.several_schools == 1
    assert "Covering several schools (district staff, or staff of several schools): 1" in report.lines()
    assert person(engine, "u-s-2004")["school"] == "org-rb-ms"  # in the special education department
    assert report.no_school == [] and not any("in no school" in warning for warning in report.warnings)


def test_staff_of_a_district_department_cover_the_districts_schools(engine, tmp_path, version):
    directory = riverbend(tmp_path, version)
    orgs = rows_of(directory, "orgs.csv")
    write_rows(directory, "orgs.csv", orgs + [["org-rb-do", "", "", "District Office: Student Services", "department",
                                               "RUSD-SS", "org-rb-district"]])
    if version == "1.1":
        edit(directory, "users.csv", "u-a-okonkwo", "orgSourcedIds", "org-rb-do")
    else:
        edit(directory, "roles.csv", "rol-u-a-okonkwo-0", "orgSourcedId", "org-rb-do")

    report = import_roster(engine, directory, MARKERS)

    assert person(engine, "u-a-okonkwo")["school"] == "org-rb-ms"
    assert stored(engine)["person schools"] == [("u-a-holloway", "org-rb-hs"), ("u-a-okonkwo", "org-rb-hs")]
    assert report.several_schools == 2 and report.no_school == []


def test_an_orphan_department_is_imported_in_no_school_reported_and_no_command_crashes(engine, tmp_path):
    directory = copy(tmp_path, "orphan_department")

    imported = companion(engine, "roster", "import", str(directory))

    assert imported.exit_code == 0, imported.output
    lines = imported.output.splitlines()
    assert ("In no school (3): lk-s-1, lk-s-2, lk-t-1; their org is in no school of orgs.csv: they are imported, "
            "and get no nudges until the roster places them") in lines
    assert ("  org org-lk-science (department) is in no school: its parent \"org-lk-hs\" is not in orgs.csv; "
            "its people are in no school") in lines
    assert '  orgs.csv line 2, column parentSourcedId: "org-lk-hs" is not in orgs.csv' in lines
    assert sql(engine, "SELECT sourced_id, school_id, role FROM person ORDER BY 1") == [
        ("lk-s-1", None, "student"), ("lk-s-2", None, "student"), ("lk-t-1", None, "adviser")]
    assert scalar(engine, "SELECT COUNT(*) FROM school") == 0
    shown = companion(engine, "schedule", "show", "lk-s-1")
    assert shown.exit_code == 0, shown.output
    assert "in no school: the roster places them in none" in shown.output
    planned = companion(engine, "schedule", "plan")
    assert planned.exit_code == 0, planned.output
    assert scalar(engine, "SELECT COUNT(*) FROM nudge") == 0
    invited = companion(engine, "invites")
    assert invited.exit_code == 0 and "lk-s-2" in invited.output


# -- 2. who is active -----------------------------------------------------------------------------------


def leave(directory: Path, how: str, sourced_id: str) -> None:
    if how == "absent":
        drop_user(directory, sourced_id)
    else:
        edit(directory, "users.csv", sourced_id, *(("status", "tobedeleted") if how == "tobedeleted"
                                                   else ("enabledUser", "false")))


@pytest.mark.parametrize("how", ["absent", "tobedeleted", "disabled"])
def test_who_leaves_becomes_inactive_that_day_and_who_comes_back_is_active_again(engine, tmp_path, now, version, how):
    directory = riverbend(tmp_path, version)
    original = {path.name: path.read_bytes() for path in directory.iterdir()}
    import_roster(engine, directory, MARKERS, today=date(2026, 11, 20), now=now - timedelta(days=3))
    first = {row.sourced_id: row.code for row in issue_invites(engine, now - timedelta(days=3), 30)}
    schedule.plan_week(engine, REGISTRY, MONDAY, now)
    leave(directory, how, "u-s-2002")

    report = import_roster(engine, directory, MARKERS, today=date(2026, 11, 23), now=now)

    assert report.withdrawn == ["u-s-2002"] and report.left == ["u-s-2002"]
    assert ("Left with this import, inactive from today: no invites, no nudges; their data deleted after the "
            "retention period (1): u-s-2002") in report.lines()
    assert person(engine, "u-s-2002")["left_on"] == date(2026, 11, 23)
    assert ("cls-hr-ms-7a", "u-s-2002", "student") not in members(engine)
    assert [row for row in stored(engine)["enrollments"] if row[2] == "u-s-2002"] == []
    # No invites: their unused code stops working, and none is issued again.
    with Session(engine) as session:
        assert session.get(InviteCode, first["u-s-2002"]).expires_at == now
    assert "u-s-2002" not in {row.sourced_id for row in issue_invites(engine, now, 30)}
    # No nudges: the week planned before they left is skipped when due, and no new week is planned.
    moment = datetime(2026, 11, 23, 20, 30, tzinfo=timezone.utc)
    list(schedule.sweep_until_idle(Store(engine), Engine(Store(engine), REGISTRY, clock=lambda: moment), moment, "w"))
    assert sql(engine, "SELECT n.status, n.reason FROM nudge n JOIN person p ON p.id = n.person_id "
                       "WHERE p.sourced_id = 'u-s-2002' AND n.kind = 'goals'") == [("skipped", "left the roster")]
    person_id = scalar(engine, "SELECT id FROM person WHERE sourced_id = 'u-s-2002'")
    assert schedule.plan_week(engine, REGISTRY, MONDAY + timedelta(weeks=1), now) > 0
    assert scalar(engine, "SELECT COUNT(*) FROM nudge WHERE person_id = :p AND occasion > :d", p=person_id,
                  d=MONDAY) == 0
    again = import_roster(engine, directory, MARKERS, today=date(2026, 11, 30))
    assert again.left == [] and person(engine, "u-s-2002")["left_on"] == date(2026, 11, 23)  # the clock ran from day 1

    for name, content in original.items():
        (directory / name).write_bytes(content)
    back = import_roster(engine, directory, MARKERS, today=date(2026, 12, 7))

    assert back.returned == ["u-s-2002"] and "Back on the roster, active again (1): u-s-2002" in back.lines()
    assert person(engine, "u-s-2002")["left_on"] is None
    assert ("u-s-2002", "student") in members(engine, "cls-hr-ms-7a")
    assert "u-s-2002" in {row.sourced_id for row in issue_invites(engine, now, 30)}


def test_a_forgotten_person_who_comes_back_is_reported_and_not_created(engine, tmp_path):
    with Store(engine).transaction() as tx:  # what `companion forget` leaves behind
        tx.execute("INSERT INTO tombstone (key, forgotten_at) VALUES (?, ?)",
                   (tombstone_key("u-s-2004"), tx.ts(datetime(2026, 6, 1, tzinfo=timezone.utc))))

    report = import_roster(engine, riverbend(tmp_path, "1.2"), MARKERS)

    assert report.forgotten == ["u-s-2004"] and person(engine, "u-s-2004") is None
    assert any(line.startswith("Forgotten earlier at the school's request, NOT created again (1): u-s-2004")
               for line in report.lines())
    assert report.left_out["of forgotten people"] == 2
    assert [row for row in stored(engine)["enrollments"] if row[2] == "u-s-2004"] == []


# -- 3. lenient where exports are messy, strict where it matters ----------------------------------------


@pytest.mark.parametrize("placeholder", ["N/A", "none", "-", "sofia.nunez at school", "sofia@@example"])
def test_a_placeholder_email_is_imported_as_none_with_a_warning(engine, tmp_path, version, placeholder):
    directory = riverbend(tmp_path, version)
    line = edit(directory, "users.csv", "u-s-2001", "email", placeholder)

    report = import_roster(engine, directory, MARKERS)

    assert report.people.created == 12
    assert (f'users.csv line {line}, column email: "{placeholder}" is not an e-mail address: imported without one'
            in report.warnings)
    assert person(engine, "u-s-2001")["email"] is None
    assert person(engine, "u-s-2002")["email"] == "liam.oconnor@students.riverbend.example"


def recode(directory: Path, name: str, encoding: str, replace: tuple[str, str] = ("", "")) -> None:
    content = (directory / name).read_text(encoding="utf-8-sig").replace(*replace)
    (directory / name).write_bytes(content.encode(encoding))


@pytest.mark.parametrize(("encoding", "said", "name"), [
    ("latin-1", "Latin-1", "Liam O'Connor"),
    ("cp1252", "Windows-1252", "Liam O’Connor"),  # a curly apostrophe: 0x92, which only Windows-1252 has
])
def test_latin1_and_windows_1252_exports_are_read_and_the_report_says_so(engine, tmp_path, encoding, said, name):
    directory = riverbend(tmp_path, "1.1")
    recode(directory, "users.csv", encoding, ("O'Connor", "O’Connor") if encoding == "cp1252" else ("", ""))

    report = import_roster(engine, directory, MARKERS)

    assert (f"users.csv is not UTF-8: read as {said} (detected by charset-normalizer); export UTF-8 to be sure of "
            "every name") in report.lines()
    assert person(engine, "u-t-alvarez")["name"] == "Elena Álvarez"
    assert person(engine, "u-s-2001")["name"] == "Sofía Núñez" and person(engine, "u-s-3001")["name"] == "Chloé Martin"
    assert person(engine, "u-s-2002")["name"] == name


def test_text_in_another_encoding_is_refused_naming_its_line(engine, tmp_path):
    directory = riverbend(tmp_path, "1.1")
    rows = rows_of(directory, "users.csv")
    for row in rows[1:]:
        row[rows[0].index("givenName")], row[rows[0].index("familyName")] = "Иван", "Петров"
    write_rows(directory, "users.csv", rows)
    recode(directory, "users.csv", "cp1251")

    refused(engine, directory, "users.csv line 2: the file is not UTF-8 text (the byte 0xC8 is not UTF-8), nor "
                               "Windows-1252 or Latin-1 text (it looks like cp1")  # 1251, or its Ukrainian cousin


def test_a_file_mixing_utf8_and_latin1_lines_is_refused_naming_the_first_bad_line(engine, tmp_path):
    directory = riverbend(tmp_path, "1.1")
    raw = (directory / "users.csv").read_bytes()
    lines = raw.split(b"\r\n")
    bad = next(number for number, line in enumerate(lines, start=1) if b"u-s-3001" in line)
    lines[bad - 1] = lines[bad - 1].decode("utf-8").encode("latin-1")  # one record pasted from another system
    (directory / "users.csv").write_bytes(b"\r\n".join(lines))

    refused(engine, directory, f"users.csv line {bad}: the file is not UTF-8 text (the byte 0xE9 is not UTF-8), "
                               "while line 2 is UTF-8: the file mixes encodings; save or export it as UTF-8")


@pytest.mark.parametrize(("character", "shown"), [("\x00", "U+0000"), ("\x1b", "U+001B"), ("\x85", "U+0085")])
def test_a_nul_or_control_character_is_refused_with_line_and_column(engine, tmp_path, version, character, shown):
    directory = riverbend(tmp_path, version)
    import_roster(engine, directory, MARKERS)
    line = edit(directory, "users.csv", "u-s-2002", "givenName", f"Li{character}am")

    refused(engine, directory, f"users.csv line {line}, column givenName: a control character ({shown}) is in the "
                               "value; a roster holds text only: remove it and export again")


def test_an_error_names_the_first_line_of_a_record_that_spans_lines(engine, tmp_path):
    directory = riverbend(tmp_path, "1.1")
    rows = rows_of(directory, "classes.csv")
    header = rows[0]
    spanning = dict(zip(header, rows[-1])) | {"sourcedId": "cls-x", "title": "Science\r\nLab\r\n(block)",
                                              "schoolSourcedId": "org-nope"}
    rows.append([spanning[column] for column in header])
    write_rows(directory, "classes.csv", rows)
    first_line = len(rows)  # the header is line 1, and every record before it is one line

    refused(engine, directory, f'classes.csv line {first_line}, column schoolSourcedId: "org-nope" is not in orgs.csv')

    # The same record without the error, and an error in the record after it: that record's own first line.
    spanning["schoolSourcedId"] = "org-rb-ms"
    after = dict(spanning) | {"sourcedId": "cls-y", "title": "Art", "classType": ""}
    rows[-1] = [spanning[column] for column in header]
    rows.append([after[column] for column in header] + ["extra"])
    write_rows(directory, "classes.csv", rows)
    refused(engine, directory, f"classes.csv line {first_line + 3}: 13 values for 12 columns")


def test_every_class_and_enrollment_is_kept_and_counted(engine, tmp_path, version):
    directory = riverbend(tmp_path, version)

    report = import_roster(engine, directory, MARKERS)

    assert report.classes == TableChanges(created=6) and report.enrollments == TableChanges(created=19)
    assert ("Classes: 6 created, 0 updated, 0 unchanged, 0 removed (3 advisory groups, 3 subject classes on the "
            "roster)") in report.lines()
    assert "Enrollments: 19 created, 0 updated, 0 unchanged, 0 removed" in report.lines()
    assert "Enrollments not kept: 1 of people not imported (no role here, or inactive)" in report.lines()
    assert stored(engine)["classes"][:4] == [
        ("cls-hr-hs-10", "org-rb-hs", "Advisory 10", "homeroom", "ADV10", None, "10,11,12", True),
        ("cls-hr-ms-7a", "org-rb-ms", "Advisory 7A", "homeroom", "ADV7A", None, "07", True),
        ("cls-hr-ms-8b", "org-rb-ms", "Advisory 8B", "homeroom", "ADV8B", None, "08", True),
        ("cls-hs-bio", "org-rb-hs", "Biology", "scheduled", "BIO-1", "Science,Biology", "10,11", False)]
    # A student's subjects: the classes they are enrolled in that are not advisory groups.
    assert sql(engine, "SELECT c.title, c.subjects FROM enrollment e JOIN rosterclass c ON c.id = e.class_id "
                       "JOIN person p ON p.id = e.person_id WHERE p.sourced_id = 'u-s-2004' AND e.role = 'student' "
                       "AND NOT c.advisory") == [("ELA 8", "English Language Arts")]

    again = import_roster(engine, directory, MARKERS)
    assert again.classes == TableChanges(unchanged=6) and again.enrollments == TableChanges(unchanged=19)
    drop = [row for row in rows_of(directory, "enrollments.csv") if row[0] != "enr-math7-2002"]
    write_rows(directory, "enrollments.csv", drop)
    edit(directory, "classes.csv", "cls-hs-bio", "status", "tobedeleted")
    changed = import_roster(engine, directory, MARKERS)
    assert changed.classes == TableChanges(unchanged=5, removed=1)
    assert changed.enrollments == TableChanges(unchanged=15, removed=4)  # one dropped, three of Biology
    assert changed.left_out["in a class marked tobedeleted"] == 3


def test_a_repeated_enrollment_id_is_refused_after_people_were_written_and_nothing_stays(engine, tmp_path):
    directory = riverbend(tmp_path, "1.1")
    import_roster(engine, directory, MARKERS)
    edit(directory, "users.csv", "u-s-2001", "familyName", "Núñez-Ortega")  # written before enrollments are read
    rows = rows_of(directory, "enrollments.csv")
    rows.append(rows[3])
    write_rows(directory, "enrollments.csv", rows)

    refused(engine, directory, f'enrollments.csv line {len(rows)}, column sourcedId: "{rows[3][0]}" is also on line 4')
    assert person(engine, "u-s-2001")["name"] == "Sofía Núñez"


# -- 4. OneRoster 1.2 beside 1.1 ---------------------------------------------------------------------------


def test_a_1_1_and_a_1_2_bulk_set_of_the_same_people_store_the_same_rows(engine, tmp_path):
    first = import_roster(engine, riverbend(tmp_path, "1.1"), MARKERS, counselor_emails=COUNSELORS)
    as_1_1 = stored(engine)

    second = import_roster(engine, riverbend(tmp_path, "1.2"), MARKERS, counselor_emails=COUNSELORS)

    assert stored(engine) == as_1_1
    assert (first.version, second.version) == ("1.1", "1.2")
    assert "Read as OneRoster 1.2 bulk CSV (manifest.csv: oneroster.version 1.2)" in second.lines()
    assert "userProfiles.csv: 13 profiles read (credentials for other applications: not kept)" in second.lines()
    for table in ("schools", "people", "advisory_groups", "advisory_members", "classes", "enrollments"):
        assert getattr(second, table).created == getattr(second, table).updated == 0, table
        assert getattr(second, table).removed == 0, table
    assert second.changes == []
    assert as_1_1["people"][:6] == [
        ("u-a-holloway", "org-rb-ms", "admin", "Margaret", "Holloway", "margaret.holloway@riverbend.example", None,
         "active", None),
        ("u-a-okonkwo", "org-rb-ms", "admin", "Chidi", "Okonkwo", "chidi.okonkwo@riverbend.example", None, "active",
         None),
        ("u-c-lindqvist", "org-rb-ms", "counselor", "Ingrid", "Lindqvist", "ingrid.lindqvist@riverbend.example", None,
         "active", None),
        ("u-s-2001", "org-rb-ms", "student", "Sofía", "Núñez", "sofia.nunez@students.riverbend.example", "07",
         "active", None),
        ("u-s-2002", "org-rb-ms", "student", "Liam", "O'Connor", "liam.oconnor@students.riverbend.example", "07",
         "active", None),
        ("u-s-2003", "org-rb-ms", "student", "Amara", "Okafor", "amara.okafor@students.riverbend.example", "08",
         "active", None)]


def test_a_1_2_delta_export_is_refused_with_the_reason(engine, tmp_path):
    import_roster(engine, riverbend(tmp_path, "1.2"), MARKERS)

    refused(engine, copy(tmp_path, "delta_1_2"),
            'manifest.csv line 11, column value: "delta" exports are not supported: file.enrollments, file.users '
            "and file.roles are delta exports, which list only what changed since the last export; read as the whole "
            'roster it would make everyone it leaves out leave the school. Export the whole roster ("bulk" mode)')


def test_the_manifest_decides_the_version(engine, tmp_path):
    directory = riverbend(tmp_path, "1.2")
    manifest = rows_of(directory, "manifest.csv")
    edit(directory, "manifest.csv", "oneroster.version", "value", "1.1")
    refused(engine, directory, "users.csv line 1, column orgSourcedIds: the column is missing (the export has a "
                               "roles.csv: is it OneRoster 1.2? its manifest says 1.1)")
    edit(directory, "manifest.csv", "oneroster.version", "value", "1.0")
    refused(engine, directory, 'manifest.csv line 3, column value: OneRoster "1.0" is not read here; export '
                               "OneRoster 1.1 or 1.2 bulk CSV")
    (directory / "manifest.csv").unlink()
    report = import_roster(engine, directory, MARKERS)
    assert "No manifest.csv: read as OneRoster 1.2 bulk CSV (roles.csv is there)" in report.lines()
    assert report.people.created == 12 and manifest[2] == ["oneroster.version", "1.2"]


def test_a_1_2_role_of_a_user_who_is_not_in_users_csv_is_refused(engine, tmp_path):
    directory = riverbend(tmp_path, "1.2")
    line = edit(directory, "roles.csv", "rol-u-s-3002-0", "userSourcedId", "u-s-9999")

    refused(engine, directory, f'roles.csv line {line}, column userSourcedId: "u-s-9999" is not in users.csv')
