"""Roster import from a OneRoster 1.1 CSV export (SPEC §6): orgs, users, classes, enrollments.

The files are read with the standard library's `csv` module: it is the well-kept, well-tested
CSV parser here (quoting, embedded commas and line breaks, BOMs via `utf-8-sig`), it reports the
physical line of every record, and it adds no dependency; nothing else is needed for four flat files.

An import has two phases. First every file is read and checked, with no database access, so a bad
file names its file, line and column and imports nothing. Then the whole roster is written in ONE
transaction, comparing against the rows already stored (loaded in bulk, matched on `sourced_id`),
so a re-import updates instead of duplicating and reports exactly what it changed.

The export is taken as a full snapshot (OneRoster "bulk"): for the schools it lists, advisory
groups and memberships that are no longer in it are removed. People are never deleted here,
because deleting a student's data is `companion forget`'s job; people who left are reported.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy import Engine, insert
from sqlmodel import Session, select

from core.domain.models import AdvisoryGroup, AdvisoryMember, AuditLog, Person, Role, School

ORGS_FILE = "orgs.csv"
USERS_FILE = "users.csv"
CLASSES_FILE = "classes.csv"
ENROLLMENTS_FILE = "enrollments.csv"
MANIFEST_FILE = "manifest.csv"

# Only the columns this import reads must be present; other OneRoster columns may be left out.
REQUIRED_COLUMNS = {
    ORGS_FILE: ("sourcedId", "name", "type"),
    USERS_FILE: ("sourcedId", "orgSourcedIds", "role", "givenName", "familyName"),
    CLASSES_FILE: ("sourcedId", "title", "classType", "schoolSourcedId"),
    ENROLLMENTS_FILE: ("sourcedId", "classSourcedId", "userSourcedId", "role"),
    MANIFEST_FILE: ("propertyName", "value"),
}
STATUSES = {"", "active", "tobedeleted"}  # an empty status is allowed in bulk exports
USER_ROLES = {"administrator", "aide", "guardian", "parent", "proctor", "relative", "student", "teacher"}
ENROLLMENT_ROLES = {"administrator", "aide", "proctor", "student", "teacher"}
PERSON_ROLES = {"student": Role.student.value, "teacher": Role.adviser.value, "administrator": Role.admin.value}
MEMBER_ROLES = {"student": "student", "teacher": "adviser"}
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class RosterError(Exception):
    """A roster file that cannot be imported; the message names the file, line and column."""


@dataclass
class TableChanges:
    """What an import did to one table."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0


@dataclass
class ImportReport:
    """Counts per table, users not imported by role, people who left, and each update or removal."""

    schools: TableChanges = field(default_factory=TableChanges)
    people: TableChanges = field(default_factory=TableChanges)
    advisory_groups: TableChanges = field(default_factory=TableChanges)
    advisory_members: TableChanges = field(default_factory=TableChanges)
    skipped_users: dict[str, int] = field(default_factory=dict)  # OneRoster role → users not imported
    withdrawn: list[str] = field(default_factory=list)  # sourced ids of people no longer on the roster
    changes: list[str] = field(default_factory=list)  # one line per update or removal, no personal data

    def counts(self) -> dict:
        """The counts as plain data, for the audit log."""
        tables = {name: asdict(getattr(self, name))
                  for name in ("schools", "people", "advisory_groups", "advisory_members")}
        return {**tables, "skipped_users": dict(self.skipped_users), "withdrawn": len(self.withdrawn)}

    def lines(self) -> list[str]:
        """A human-readable summary for the command line."""
        lines = [f"{label}: {changes.created} created, {changes.updated} updated, "
                 f"{changes.unchanged} unchanged, {changes.removed} removed"
                 for label, changes in (("Schools", self.schools), ("People", self.people),
                                        ("Advisory groups", self.advisory_groups),
                                        ("Advisory members", self.advisory_members))]
        if self.skipped_users:
            skipped = ", ".join(f"{count} {role}" for role, count in sorted(self.skipped_users.items()))
            lines.append(f"Not imported (no role here for them): {skipped}")
        if self.withdrawn:
            lines.append(f"No longer on the roster, kept with their data ({len(self.withdrawn)}): "
                         f"{', '.join(self.withdrawn)}; `companion forget` deletes a student's data")
        lines.extend(f"  {change}" for change in self.changes)
        return lines


@dataclass(frozen=True)
class _Row:
    """One record of a roster file, with where it came from for error messages."""

    file_name: str
    line: int
    values: dict[str, str]

    def __getitem__(self, column: str) -> str:
        return self.values.get(column, "")

    def error(self, column: str, message: str) -> RosterError:
        """An error pointing at one cell of this record."""
        return RosterError(f"{self.file_name} line {self.line}, column {column}: {message}")

    @property
    def active(self) -> bool:
        return self["status"].lower() != "tobedeleted"

    def required(self, column: str) -> str:
        """The cell's value, which must not be empty."""
        if not self[column]:
            raise self.error(column, "a value is required")
        return self[column]

    def reference(self, column: str, known: dict, file_name: str) -> str:
        """A sourcedId that must name a record of `file_name`."""
        value = self.required(column)
        if value not in known:
            raise self.error(column, f'"{value}" is not in {file_name}')
        return value


@dataclass(frozen=True)
class _Org:
    sourced_id: str
    active: bool
    name: str
    is_school: bool


@dataclass(frozen=True)
class _User:
    sourced_id: str
    active: bool
    role: str  # the OneRoster role, lower-cased
    org_ids: tuple[str, ...]
    given_name: str
    family_name: str
    email: str | None
    grade: str | None


@dataclass(frozen=True)
class _Class:
    sourced_id: str
    active: bool
    title: str
    school_org_id: str
    is_advisory: bool


@dataclass(frozen=True)
class _Enrollment:
    active: bool
    class_id: str
    user_id: str
    role: str


@dataclass(frozen=True)
class _Roster:
    orgs: dict[str, _Org]
    users: dict[str, _User]
    classes: dict[str, _Class]
    enrollments: list[_Enrollment]


def import_roster(engine: Engine, directory: Path, advisory_markers: set[str], *,
                  school_timezone: str | None = None, school_locale: str | None = None,
                  counselor_emails: frozenset[str] = frozenset()) -> ImportReport:
    """Check the OneRoster files in `directory`, then create, update and remove rows in one transaction.

    OneRoster 1.1 has no counselor role: staff whose e-mail is in `counselor_emails` become counselors,
    who receive every safety alert of their school.
    """
    roster = _read_roster(Path(directory), advisory_markers)
    school_defaults = {key: value for key, value in (("timezone", school_timezone), ("locale", school_locale))
                       if value is not None}
    report = ImportReport()
    with Session(engine) as session, session.begin():
        school_ids, covered_school_ids = _apply_schools(session, roster, school_defaults, report)
        person_ids = _apply_people(session, roster, school_ids, covered_school_ids,
                                   {email.lower() for email in counselor_emails}, report)
        groups, covered_group_ids = _apply_groups(session, roster, school_ids, covered_school_ids, report)
        _apply_members(session, roster, person_ids, groups, covered_group_ids, report)
        session.add(AuditLog(actor="roster", action="roster_import", detail=json.dumps(report.counts())))
    return report


def _read_roster(directory: Path, advisory_markers: set[str]) -> _Roster:
    """Read and check the four files; raises RosterError at the first problem."""
    _refuse_delta_exports(directory)
    markers = {marker.lower() for marker in advisory_markers}
    orgs = {}
    for row in _read_rows(directory, ORGS_FILE):
        orgs[row["sourcedId"]] = _Org(row["sourcedId"], row.active, row.required("name"),
                                      row.required("type").lower() == "school")
    users = {}
    for row in _read_rows(directory, USERS_FILE):
        users[row["sourcedId"]] = _read_user(row, orgs)
    classes = {}
    for row in _read_rows(directory, CLASSES_FILE):
        title = row.required("title")
        classes[row["sourcedId"]] = _Class(
            row["sourcedId"], row.active, title, row.reference("schoolSourcedId", orgs, ORGS_FILE),
            row["classType"].lower() in markers or title.lower() in markers)
    enrollments = []
    for row in _read_rows(directory, ENROLLMENTS_FILE):
        enrollments.append(_read_enrollment(row, orgs, users, classes))
    return _Roster(orgs, users, classes, enrollments)


def _refuse_delta_exports(directory: Path) -> None:
    """A delta export lists only changes; read as a snapshot it would remove everything else."""
    manifest = directory / MANIFEST_FILE
    if not manifest.is_file():
        return
    for row in _read_rows(directory, MANIFEST_FILE, key_column=None):
        property_name, value = row["propertyName"], row["value"].lower()
        if property_name.startswith("file.") and value not in ("bulk", "absent"):
            raise row.error("value", f'"{row["value"]}" exports are not supported; export in "bulk" mode')


def _read_user(row: _Row, orgs: dict[str, _Org]) -> _User:
    """One users.csv record, checked."""
    role = row.required("role").lower()
    if role not in USER_ROLES:
        raise row.error("role", f'"{row["role"]}" is not a OneRoster 1.1 user role')
    org_ids = tuple(part.strip() for part in row["orgSourcedIds"].split(",") if part.strip())
    for org_id in org_ids:
        if org_id not in orgs:
            raise row.error("orgSourcedIds", f'"{org_id}" is not in {ORGS_FILE}')
    email = row["email"]
    if email and not EMAIL.match(email):
        raise row.error("email", f'"{email}" is not an e-mail address')
    grades = [part.strip() for part in row["grades"].split(",") if part.strip()]
    return _User(row["sourcedId"], row.active, role, org_ids, row.required("givenName"), row["familyName"],
                 email or None, grades[0] if grades else None)


def _read_enrollment(row: _Row, orgs: dict[str, _Org], users: dict[str, _User],
                     classes: dict[str, _Class]) -> _Enrollment:
    """One enrollments.csv record, checked."""
    class_id = row.reference("classSourcedId", classes, CLASSES_FILE)
    user_id = row.reference("userSourcedId", users, USERS_FILE)
    if row["schoolSourcedId"]:
        row.reference("schoolSourcedId", orgs, ORGS_FILE)
    role = row.required("role").lower()
    if role not in ENROLLMENT_ROLES:
        raise row.error("role", f'"{row["role"]}" is not a OneRoster 1.1 enrollment role')
    return _Enrollment(row.active, class_id, user_id, role)


def _read_rows(directory: Path, file_name: str, key_column: str | None = "sourcedId") -> list[_Row]:
    """The records of one file, after the checks every file shares (columns, sourcedId, status)."""
    path = directory / file_name
    if not path.is_file():
        raise RosterError(f"{file_name}: the file is missing from {directory}")
    rows: list[_Row] = []
    first_line: dict[str, int] = {}
    try:
        # utf-8-sig: spreadsheet programs and many SIS exports start the file with a byte-order mark.
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise RosterError(f"{file_name} line 1: the file is empty; a header row is expected")
            columns = [name.strip() for name in header]
            for column in REQUIRED_COLUMNS[file_name]:
                if column not in columns:
                    raise RosterError(f"{file_name} line 1, column {column}: the column is missing")
            for values in reader:
                if not any(value.strip() for value in values):
                    continue
                if len(values) != len(columns):
                    raise RosterError(f"{file_name} line {reader.line_num}: "
                                      f"{len(values)} values for {len(columns)} columns")
                row = _Row(file_name, reader.line_num,
                           {column: value.strip() for column, value in zip(columns, values)})
                if row["status"].lower() not in STATUSES:
                    raise row.error("status", f'"{row["status"]}" is not a OneRoster status (active or tobedeleted)')
                if key_column is not None:
                    key = row.required(key_column)
                    if key in first_line:
                        raise row.error(key_column, f'"{key}" is also on line {first_line[key]}')
                    first_line[key] = row.line
                rows.append(row)
    except UnicodeDecodeError:
        raise RosterError(f"{file_name}: the file is not UTF-8 text; save or export it as UTF-8") from None
    except csv.Error as error:
        raise RosterError(f"{file_name} line {reader.line_num}: {error}") from None
    return rows


def _apply_schools(session: Session, roster: _Roster, defaults: dict[str, str],
                   report: ImportReport) -> tuple[dict[str, int], set[int]]:
    """Create and rename schools; returns school ids by org sourcedId, and the ids this roster covers."""
    stored = {school.sourced_id: school for school in session.exec(select(School))}
    changes = report.schools
    for org in roster.orgs.values():
        if not org.is_school:
            continue
        school = stored.get(org.sourced_id)
        if not org.active:
            # People and groups may still belong to it: the school row stays.
            if school is not None:
                report.changes.append(f"school {org.sourced_id}: marked tobedeleted, kept")
            continue
        if school is None:
            stored[org.sourced_id] = School(sourced_id=org.sourced_id, name=org.name, **defaults)
            session.add(stored[org.sourced_id])
            changes.created += 1
        elif school.name != org.name:
            school.name = org.name
            changes.updated += 1
            report.changes.append(f"school {org.sourced_id}: name changed")
        else:
            changes.unchanged += 1
    session.flush()
    school_ids = {sourced_id: school.id for sourced_id, school in stored.items()}
    covered = {school_ids[sourced_id] for sourced_id in roster.orgs if sourced_id in school_ids}
    return school_ids, covered


def _update(record, values: dict, changes: TableChanges, report: ImportReport, label: str) -> None:
    """Copy the fields that differ onto `record`, and count and report the change (names only, never values)."""
    changed = [name for name, value in values.items() if getattr(record, name) != value]
    for name in changed:
        setattr(record, name, values[name])
    if changed:
        changes.updated += 1
        report.changes.append(f"{label}: {', '.join(changed)} changed")
    else:
        changes.unchanged += 1


def _apply_people(session: Session, roster: _Roster, school_ids: dict[str, int], covered_school_ids: set[int],
                  counselor_emails: set[str], report: ImportReport) -> dict[str, int]:
    """Create and update people; returns the ids of the people on this roster by sourcedId."""
    stored = {person.sourced_id: person for person in session.exec(select(Person))}
    on_roster: set[str] = set()
    new_people: list[dict] = []
    changes = report.people
    for user in roster.users.values():
        if not user.active:
            continue
        role = PERSON_ROLES.get(user.role)
        if role is None:
            report.skipped_users[user.role] = report.skipped_users.get(user.role, 0) + 1
            continue
        if role != Role.student and (user.email or "").lower() in counselor_emails:
            role = Role.counselor.value
        school_id = next((school_ids[org_id] for org_id in user.org_ids if org_id in school_ids), None)
        values = {"school_id": school_id, "role": role, "given_name": user.given_name,
                  "family_name": user.family_name, "email": user.email, "grade": user.grade}
        on_roster.add(user.sourced_id)
        person = stored.get(user.sourced_id)
        if person is None:
            new_people.append({"sourced_id": user.sourced_id, **values})
            continue
        _update(person, values, changes, report, f"person {user.sourced_id}")
    if new_people:
        # A bulk INSERT: building thousands of model objects would take most of the import's time.
        session.exec(insert(Person), params=new_people)
        changes.created = len(new_people)
    session.flush()
    report.withdrawn = sorted(
        sourced_id for sourced_id, person in stored.items()
        if sourced_id not in on_roster and (person.school_id is None or person.school_id in covered_school_ids))
    return {sourced_id: person_id for sourced_id, person_id in session.exec(select(Person.sourced_id, Person.id))
            if sourced_id in on_roster}


def _apply_groups(session: Session, roster: _Roster, school_ids: dict[str, int], covered_school_ids: set[int],
                  report: ImportReport) -> tuple[dict[str, AdvisoryGroup], set[int]]:
    """Create, update and remove advisory groups; returns those on this roster, and the ids it covers."""
    stored = {group.sourced_id: group for group in session.exec(select(AdvisoryGroup))}
    on_roster: dict[str, AdvisoryGroup] = {}
    changes = report.advisory_groups
    for class_ in roster.classes.values():
        if not (class_.active and class_.is_advisory):
            continue
        values = {"school_id": school_ids.get(class_.school_org_id), "title": class_.title}
        group = stored.get(class_.sourced_id)
        if group is None:
            group = AdvisoryGroup(sourced_id=class_.sourced_id, **values)
            session.add(group)
            changes.created += 1
        else:
            _update(group, values, changes, report, f"advisory group {class_.sourced_id}")
        on_roster[class_.sourced_id] = group
    session.flush()
    covered = {group.id for group in stored.values()
               if group.school_id is None or group.school_id in covered_school_ids} | {
        group.id for group in on_roster.values()}
    removed = [group for sourced_id, group in stored.items() if sourced_id not in on_roster and group.id in covered]
    if removed:
        # Their memberships go first (foreign keys); the group's line in `changes` stands for them.
        removed_ids = {group.id for group in removed}
        for member in session.exec(select(AdvisoryMember).where(AdvisoryMember.group_id.in_(removed_ids))):
            session.delete(member)
            report.advisory_members.removed += 1
        session.flush()
        for group in removed:
            session.delete(group)
            changes.removed += 1
            report.changes.append(f"advisory group {group.sourced_id}: removed")
        session.flush()
    return on_roster, covered - {group.id for group in removed}


def _apply_members(session: Session, roster: _Roster, person_ids: dict[str, int],
                   groups: dict[str, AdvisoryGroup], covered_group_ids: set[int], report: ImportReport) -> None:
    """Make the memberships of the covered groups exactly those the enrollments describe."""
    wanted: dict[tuple[int, int], str] = {}
    for enrollment in roster.enrollments:
        group, person_id = groups.get(enrollment.class_id), person_ids.get(enrollment.user_id)
        role = MEMBER_ROLES.get(enrollment.role)
        if not enrollment.active or group is None or person_id is None or role is None:
            continue
        key = (group.id, person_id)
        # Someone enrolled twice, once as a teacher, advises the group.
        if wanted.get(key) != "adviser":
            wanted[key] = role
    group_names = dict(session.exec(select(AdvisoryGroup.id, AdvisoryGroup.sourced_id)).all())
    person_names = dict(session.exec(select(Person.id, Person.sourced_id)).all())
    stored = {(member.group_id, member.person_id): member for member in session.exec(select(AdvisoryMember))}
    changes = report.advisory_members
    for key, member in stored.items():
        if key in wanted or member.group_id not in covered_group_ids:
            continue
        session.delete(member)
        changes.removed += 1
        report.changes.append(f"advisory member {person_names[key[1]]} in {group_names[key[0]]}: removed")
    new_members = []
    for key, role in wanted.items():
        member = stored.get(key)
        if member is None:
            new_members.append({"group_id": key[0], "person_id": key[1], "role": role})
        elif member.role != role:
            member.role = role
            changes.updated += 1
            report.changes.append(f"advisory member {person_names[key[1]]} in {group_names[key[0]]}: role changed")
        else:
            changes.unchanged += 1
    session.flush()
    if new_members:
        session.exec(insert(AdvisoryMember), params=new_members)
        changes.created = len(new_members)
