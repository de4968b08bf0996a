"""Roster import from OneRoster 1.1 or 1.2 bulk CSV (SPEC §6): orgs, users and their roles, classes, enrollments.

What is read. The manifest's `oneroster.version` decides: 1.1 keeps a user's role and orgs in
users.csv; 1.2 keeps them in roles.csv (each user's roles, one of them primary, each at an org),
and adds userProfiles.csv (checked, not kept: it holds credentials for other applications).
Without a manifest, a roles.csv means 1.2. orgs.csv, users.csv, classes.csv and enrollments.csv
are read in both. A delta export (a manifest's `file.*` set to `delta`) lists only what changed
since the last export: read as the whole roster it would make everyone it leaves out leave, so it
is refused with that reason.

Who someone is here comes from their own role, never from an enrollment (1.2: the primary role):

    OneRoster role                                         here
    student                                                student
    teacher                                                adviser
    administrator (1.1); principal, siteAdministrator,     admin
      districtAdministrator (1.2)
    counselor (1.2); staff named in counselor_emails       counselor
    aide, guardian, parent, proctor, relative,             not imported (counted in the report)
      systemAdministrator, ext:…

A student is never an adviser, counselor or administrator, whatever their enrollments or other
roles say: such conflicts are listed in the report. An adult enrolled as a teacher of an advisory
class advises it; an enrollment as a student makes a student a member of the group.

Where someone belongs: the school of their org, or the school above it (a department); district
(or state, local) staff cover every school below their org: `person.school_id` is the first, the
others are `personschool` rows. Someone whose org is in no school (a department whose parent is
missing) is imported in no school and listed; they get no nudges until the roster places them.

Who is active: people who leave (absent from the import, `tobedeleted`, `enabledUser` false) are
reported and get `left_on`, the day the retention clock (`retention_days`) starts; their unused
invite codes stop working, they get no new ones and no nudges. Coming back clears `left_on`. A
person who was forgotten leaves a tombstone: if their id reappears it is reported and not created
again, unless the administrator readmits it (`readmit`, `companion roster import DIR --readmit ID`).
People are never deleted here: that is `companion forget`'s job.

Lenient where exports are messy, strict where it matters: an e-mail that is not one ("N/A") is
imported as no e-mail, with a warning; a file in Windows-1252 or Latin-1 is read (charset-normalizer
tells them from other encodings; the report says so); quotes, CRLF, a BOM, extra columns and blank
lines are accepted. Refused, naming file, line and column: a missing file or column, a NUL or other
control character, text in another encoding (or mixed encodings), an unknown reference, role or
status, a repeated sourcedId, a missing name. An error names the first line of its record (a
quoted value may span lines). Every class and enrollment is kept (`rosterclass`, `enrollment`:
subject classes are a student's subjects) and counted.

How: every file is read once, record by record, with the standard library's `csv` module (quoting,
embedded line breaks, the physical line of each record), and written as it is read into temporary
tables of ONE transaction; the stored rows are then compared with them in set-based SQL, matched on
`sourced_id`, so a re-import updates instead of duplicating and reports exactly what it changed.
People are written before enrollments.csv (the largest file) is read, so each enrollment is resolved
against two maps (user → person and role, one int each; class → ids) rather than held. Any error
rolls the whole transaction back: a refused roster changes nothing. What stays in memory is those
maps and the ids seen, about 150 bytes a user, never the records (bench/roster.py: 200,000 users).

The export is a full snapshot: for the schools it lists, classes, advisory groups, enrollments and
memberships no longer in it are removed.
"""

from __future__ import annotations

import codecs
import csv
import re
from dataclasses import asdict, dataclass, field
from operator import itemgetter
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator

from sqlalchemy import Engine

from core.domain.models import DEFAULT_LOCALE, DEFAULT_TIMEZONE, Role
from core.domain.store import Store, Tx
from core.school.privacy import tombstone_key

ORGS_FILE = "orgs.csv"
USERS_FILE = "users.csv"
CLASSES_FILE = "classes.csv"
ENROLLMENTS_FILE = "enrollments.csv"
MANIFEST_FILE = "manifest.csv"
ROLES_FILE = "roles.csv"
USER_PROFILES_FILE = "userProfiles.csv"

# Only the columns this import reads must be present; other OneRoster columns may be left out.
REQUIRED_COLUMNS = {
    ORGS_FILE: ("sourcedId", "name", "type"),
    USERS_FILE: ("sourcedId", "orgSourcedIds", "role", "givenName", "familyName"),
    CLASSES_FILE: ("sourcedId", "title", "classType", "schoolSourcedId"),
    ENROLLMENTS_FILE: ("sourcedId", "classSourcedId", "userSourcedId", "role"),
    MANIFEST_FILE: ("propertyName", "value"),
    ROLES_FILE: ("sourcedId", "userSourcedId", "roleType", "role", "orgSourcedId"),
    USER_PROFILES_FILE: ("sourcedId", "userSourcedId"),
}
USERS_12_REQUIRED = ("sourcedId", "givenName", "familyName")  # 1.2's users.csv has no role or orgs
VERSIONS = ("1.1", "1.2")
# An empty status is allowed in bulk exports; "inactive" (OneRoster 1.0, some SIS exports) means tobedeleted.
STATUSES = {"", "active", "tobedeleted", "inactive"}
GONE = {"tobedeleted", "inactive"}
FILE_MODES = {"bulk", "absent", "delta"}
USER_ROLES = {"administrator", "aide", "guardian", "parent", "proctor", "relative", "student", "teacher"}
ROLES_12 = {role.lower(): role for role in (
    "aide", "counselor", "districtAdministrator", "guardian", "parent", "principal", "proctor", "relative",
    "siteAdministrator", "student", "systemAdministrator", "teacher")}
ROLE_TYPES = {"primary", "secondary"}
ENROLLMENT_ROLES = {"administrator", "aide", "proctor", "student", "teacher"}
PERSON_ROLES = {"student": Role.student.value, "teacher": Role.adviser.value, "administrator": Role.admin.value}
PERSON_ROLES_12 = {"student": Role.student.value, "teacher": Role.adviser.value, "counselor": Role.counselor.value,
                   "principal": Role.admin.value, "siteadministrator": Role.admin.value,
                   "districtadministrator": Role.admin.value}
SCHOOL_TYPE = "school"
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# C0 controls but tab and line breaks, DEL, and C1 controls (what Latin-1 makes of stray bytes).
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\xc2[\x80-\x9f]")  # the same, in UTF-8
PLAIN_BYTES = bytes(range(0x20, 0x7f)) + b"\t\r\n"
WESTERN = {"cp1252": "Windows-1252", "latin_1": "Latin-1", "iso8859_15": "Latin-9"}
CP1252_HOLES = re.compile(rb"[\x81\x8d\x8f\x90\x9d]")  # the five bytes Windows-1252 leaves undefined
CP1252_SIGNS = re.compile(rb"[\x80-\x9f]")
SAMPLE_BYTES = 64 * 1024  # what charset-normalizer looks at: lines that are not ASCII
BATCH = 5000  # records written to the temporary tables at a time
LISTED = 30  # ids or lines a report line shows before "… and N more"


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
    """Counts per table, users not imported by role, people who left, conflicts, warnings, and each change."""

    schools: TableChanges = field(default_factory=TableChanges)
    people: TableChanges = field(default_factory=TableChanges)
    advisory_groups: TableChanges = field(default_factory=TableChanges)
    advisory_members: TableChanges = field(default_factory=TableChanges)
    classes: TableChanges = field(default_factory=TableChanges)
    enrollments: TableChanges = field(default_factory=TableChanges)
    version: str = "1.1"  # the OneRoster version read
    skipped_users: dict[str, int] = field(default_factory=dict)  # OneRoster role → users not imported
    class_kinds: dict[str, int] = field(default_factory=dict)  # "advisory" / "subject" → classes on the roster
    left_out: dict[str, int] = field(default_factory=dict)  # why → enrollments not kept
    withdrawn: list[str] = field(default_factory=list)  # sourced ids of people no longer on the roster
    left: list[str] = field(default_factory=list)  # of those, who left with this import (their retention clock starts)
    returned: list[str] = field(default_factory=list)  # people who had left and are on the roster again
    forgotten: list[str] = field(default_factory=list)  # forgotten people whose id reappeared: not created
    readmitted: list[str] = field(default_factory=list)  # forgotten people created again, as the administrator asked
    no_school: list[str] = field(default_factory=list)  # people imported in no school
    several_schools: int = 0  # people who cover more than one school (district staff, staff of several schools)
    conflicts: list[str] = field(default_factory=list)  # a role the person's own role overrules, one line each
    warnings: list[str] = field(default_factory=list)  # what was accepted with a change (an e-mail left out, …)
    notes: list[str] = field(default_factory=list)  # how the files were read (version, encoding)
    changes: list[str] = field(default_factory=list)  # one line per update or removal, no personal data

    def counts(self) -> dict:
        """The counts as plain data, for the audit log."""
        tables = {name: asdict(getattr(self, name)) for name in
                  ("schools", "people", "advisory_groups", "advisory_members", "classes", "enrollments")}
        return {**tables, "version": self.version, "skipped_users": dict(self.skipped_users),
                "class_kinds": dict(self.class_kinds), "left_out": dict(self.left_out),
                "withdrawn": len(self.withdrawn), "left": len(self.left), "returned": len(self.returned),
                "forgotten": len(self.forgotten), "readmitted": len(self.readmitted),
                "no_school": len(self.no_school), "several_schools": self.several_schools,
                "conflicts": len(self.conflicts), "warnings": len(self.warnings)}

    def lines(self) -> list[str]:
        """A human-readable summary for the command line."""
        lines = [f"{label}: {changes.created} created, {changes.updated} updated, "
                 f"{changes.unchanged} unchanged, {changes.removed} removed"
                 for label, changes in (("Schools", self.schools), ("People", self.people),
                                        ("Advisory groups", self.advisory_groups),
                                        ("Advisory members", self.advisory_members),
                                        ("Classes", self.classes), ("Enrollments", self.enrollments))]
        if self.class_kinds:
            lines[4] += (f" ({_count(self.class_kinds.get('advisory', 0), 'advisory group')}, "
                         f"{_count(self.class_kinds.get('subject', 0), 'subject class', 'subject classes')} "
                         "on the roster)")
        if self.left_out:
            lines.append("Enrollments not kept: " + ", ".join(f"{count} {why}"
                                                               for why, count in sorted(self.left_out.items())))
        if self.skipped_users:
            skipped = ", ".join(f"{count} {role}" for role, count in sorted(self.skipped_users.items()))
            lines.append(f"Not imported (no role here for them): {skipped}")
        if self.withdrawn:
            lines.append(f"No longer on the roster, kept with their data ({len(self.withdrawn)}): "
                         f"{_listed(self.withdrawn)}; `companion forget` deletes a student's data")
        if self.left:
            lines.append(f"Left with this import, inactive from today: no invites, no nudges; their data deleted "
                         f"after the retention period ({len(self.left)}): {_listed(self.left)}")
        if self.returned:
            lines.append(f"Back on the roster, active again ({len(self.returned)}): {_listed(self.returned)}")
        if self.forgotten:
            lines.append(f"Forgotten earlier at the school's request, NOT created again ({len(self.forgotten)}): "
                         f"{_listed(self.forgotten)}; `companion roster import DIR --readmit ID` brings one back")
        if self.readmitted:
            lines.append(f"Readmitted after being forgotten ({len(self.readmitted)}): {_listed(self.readmitted)}")
        if self.no_school:
            lines.append(f"In no school ({len(self.no_school)}): {_listed(self.no_school)}; their org is in no "
                         f"school of {ORGS_FILE}: they are imported, and get no nudges until the roster places them")
        if self.several_schools:
            lines.append(f"Covering several schools (district staff, or staff of several schools): "
                         f"{self.several_schools}")
        for title, entries in (("Role conflicts, settled by the person's own role", self.conflicts),
                               ("Warnings", self.warnings)):
            if entries:
                lines.append(f"{title} ({len(entries)}):")
                lines.extend(f"  {entry}" for entry in entries[:LISTED])
                if len(entries) > LISTED:
                    lines.append(f"  … and {len(entries) - LISTED} more")
        lines.extend(self.notes)
        lines.extend(f"  {change}" for change in self.changes)
        return lines


def _count(number: int, one: str, many: str | None = None) -> str:
    return f"{number} {one if number == 1 else many or one + 's'}"


def _listed(ids: list[str]) -> str:
    """Ids for a report line, the first LISTED of them."""
    shown = ", ".join(ids[:LISTED])
    return shown if len(ids) <= LISTED else f"{shown} … and {len(ids) - LISTED} more"


# -- reading one file --------------------------------------------------------------------------------


class _Source:
    """One roster file, read record by record after the checks every file shares.

    Iterating yields the `wanted` columns of each record, stripped ("" for a column the file does
    not have); meanwhile `line` is the first line of the record and `active` its status. The
    header must hold the `required` columns; every record needs a `key` (sourcedId), unique in the
    file when `unique` (otherwise the caller checks, in bulk).
    """

    def __init__(self, directory: Path, name: str, report: ImportReport, required: tuple[str, ...],
                 wanted: tuple[str, ...], key: str | None = "sourcedId", unique: bool = True, hint: str = ""):
        self.name = name
        self.path = directory / name
        if not self.path.is_file():
            raise RosterError(f"{name}: the file is missing from {directory}")
        self.encoding, self.watch = _encoding(self.path, name, report)
        self.required, self.wanted, self.key, self.unique, self.hint = required, wanted, key, unique, hint
        self.line = 1
        self.active = True
        self.columns: list[str] = []

    def error(self, column: str, message: str) -> RosterError:
        """An error pointing at one cell of the record at hand."""
        return RosterError(f"{self.name} line {self.line}, column {column}: {message}")

    def __iter__(self) -> Iterator[tuple[str, ...]]:
        flagged: list[int] = []
        seen: set[str] = set()
        end = 0
        try:
            with self.path.open(newline="", encoding=self.encoding) as handle:
                reader = csv.reader(_watched(handle, flagged) if self.watch else handle)
                header = next(reader, None)
                if header is None:
                    raise RosterError(f"{self.name} line 1: the file is empty; a header row is expected")
                if flagged:
                    self._control(header, [f"{n + 1}" for n in range(len(header))])
                columns = self.columns = [name.strip() for name in header]
                for column in self.required:
                    if column not in columns:
                        raise RosterError(f"{self.name} line 1, column {column}: the column is missing{self.hint}")
                width = len(columns)
                missing = any(column not in columns for column in self.wanted)  # read as "" (a column at `width`)
                pick = itemgetter(*(columns.index(column) if column in columns else width for column in self.wanted))
                status_at = columns.index("status") if "status" in columns else None
                key_at = columns.index(self.key) if self.key in columns else None
                strip, unique = str.strip, self.unique
                end = reader.line_num
                for values in reader:
                    self.line, end = end + 1, reader.line_num
                    if flagged:
                        self._control(values, columns)
                    if len(values) != width:
                        if not "".join(values).strip():
                            continue
                        raise RosterError(f"{self.name} line {self.line}: {len(values)} values for {width} columns")
                    if status_at is not None:
                        status = values[status_at]
                        if status and status != "active":
                            status = status.strip().lower()
                            if status not in STATUSES:
                                raise self.error("status", f'"{values[status_at].strip()}" is not a OneRoster status '
                                                           "(active or tobedeleted)")
                            self.active = status not in GONE
                        else:
                            self.active = True
                    if key_at is not None:
                        key = values[key_at].strip()
                        if not key:
                            if not "".join(values).strip():
                                continue
                            raise self.error(self.key, "a value is required")
                        if unique:
                            if key in seen:
                                raise self.error(self.key, f'"{key}" is also on line {self._first_line(key)}')
                            seen.add(key)
                    if missing:
                        values.append("")
                    yield tuple(map(strip, pick(values)))
        except csv.Error as error:
            raise RosterError(f"{self.name} line {end + 1}: {error}") from None

    def _control(self, values: list[str], columns: list[str]) -> None:
        """Refuse the record at hand: one of its values holds a control character (NUL, …)."""
        for column, value in zip(columns, values):
            found = CONTROL.search(value)
            if found:
                raise self.error(column, f"a control character (U+{ord(found.group()):04X}) is in the value; "
                                         "a roster holds text only: remove it and export again")
        raise RosterError(f"{self.name} line {self.line}: a control character is in the record; "
                          "a roster holds text only: remove it and export again")

    def _first_line(self, key: str) -> int:
        """The first line of the record with this key (read again: a repeated key is rare)."""
        with self.path.open(newline="", encoding=self.encoding) as handle:
            reader = csv.reader(handle)
            columns = [name.strip() for name in next(reader)]
            at, end = columns.index(self.key), reader.line_num
            for values in reader:
                start, end = end + 1, reader.line_num
                if len(values) > at and values[at].strip() == key:
                    return start
        return 0


def _watched(handle, flagged: list[int]) -> Iterator[str]:
    """The file's lines, noting in `flagged` when one holds a control character (checked per record)."""
    search = CONTROL.search
    for line in handle:
        if search(line) is not None:
            flagged.append(1)
        yield line


def _encoding(path: Path, name: str, report: ImportReport) -> tuple[str, bool]:
    """How to read the file — UTF-8 (with or without a BOM), or Windows-1252/Latin-1 when that is what it
    is — and whether it may hold a control character (then each line is looked at)."""
    bad, control = _scan(path)
    if bad is None:
        return "utf-8-sig", control
    line, byte = bad
    utf8_lines, sample = _non_ascii_lines(path)
    undecodable = f"{name} line {line}: the file is not UTF-8 text (the byte 0x{byte:02X} is not UTF-8)"
    if utf8_lines:
        raise RosterError(f"{undecodable}, while line {utf8_lines[0]} is UTF-8: the file mixes encodings; "
                          "save or export it as UTF-8")
    guess, label = _western(sample)
    if guess is None:
        raise RosterError(f"{undecodable}, nor Windows-1252 or Latin-1 text{label}; save or export it as UTF-8")
    # Windows-1252 only where a byte says so (its letters and signs at 0x80–0x9F); else Latin-1, which reads the same.
    encoding = "cp1252" if _has_cp1252_signs(path) else "latin_1"
    report.notes.append(f"{name} is not UTF-8: read as {WESTERN[encoding]} (detected by charset-normalizer); "
                        "export UTF-8 to be sure of every name")
    return encoding, True


def _chunks(path: Path) -> Iterator[bytes]:
    """The file's bytes in pieces of about 1 MB that end at a line break (never inside a character)."""
    with path.open("rb") as handle:
        while True:
            chunk = handle.read(1 << 20)
            if not chunk:
                return
            yield chunk + handle.readline()


def _scan(path: Path) -> tuple[tuple[int, int] | None, bool]:
    """(line, byte) of the first byte that is not UTF-8 (None for a UTF-8 file), and whether a control
    character is anywhere in it: one pass over the bytes, before the records are read."""
    lines, control = 1, False
    for chunk in _chunks(path):
        try:
            chunk.decode("utf-8")
        except UnicodeDecodeError as error:
            return (lines + chunk.count(b"\n", 0, error.start), chunk[error.start]), True
        lines += chunk.count(b"\n")
        if not control:
            rest = chunk.translate(None, PLAIN_BYTES)  # a control character is in what is left, if anywhere
            control = bool(rest) and CONTROL_BYTES.search(rest) is not None
    return None, control


def _non_ascii_lines(path: Path) -> tuple[list[int], bytes]:
    """The lines that are UTF-8 and not ASCII (a few), and a sample of those that are not UTF-8."""
    utf8_lines, sample, size = [], [], 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            if raw.isascii():
                continue
            try:
                raw.decode("utf-8")
                if len(utf8_lines) < 3:
                    utf8_lines.append(number)
            except UnicodeDecodeError:
                if size < SAMPLE_BYTES:
                    sample.append(raw)
                    size += len(raw)
            if size >= SAMPLE_BYTES and utf8_lines:
                break
    return utf8_lines, b"".join(sample)


def _western(sample: bytes) -> tuple[str | None, str]:
    """Whether charset-normalizer reads the sample as Western European text; else what it takes it for."""
    from charset_normalizer import from_bytes  # only for the rare file that is not UTF-8

    results = list(from_bytes(sample))
    if not results:
        return None, ""
    least = min(result.chaos for result in results)
    for result in results:
        names = {result.encoding, *result.could_be_from_charset}
        if names & set(WESTERN) and result.chaos <= least + 0.05:
            return next(name for name in WESTERN if name in names), ""
    return None, f" (it looks like {results[0].encoding})"


def _has_cp1252_signs(path: Path) -> bool:
    """Bytes at 0x80–0x9F, all of which Windows-1252 reads (as ’, €, – …): the file is Windows-1252, not Latin-1
    (a byte Windows-1252 leaves undefined is read as Latin-1 and refused as a control character)."""
    return any(CP1252_SIGNS.search(chunk) for chunk in _chunks(path)) and not any(
        CP1252_HOLES.search(chunk) for chunk in _chunks(path))


# -- orgs: which school each org is in ----------------------------------------------------------------


@dataclass(frozen=True)
class _Org:
    sourced_id: str
    line: int
    active: bool
    name: str
    type: str  # lower-cased: school, district, department, local, state, national, ext:…
    parent: str


class _Orgs:
    """The orgs of orgs.csv, and the schools each one is in or covers (stored school ids)."""

    def __init__(self, orgs: dict[str, _Org]):
        self.orgs = orgs
        self.school_ids: dict[str, int] = {}
        self._schools: dict[str, tuple[int, ...]] = {}
        self._of_ids: dict[str, tuple[int, ...]] = {}
        self.children: dict[str, list[str]] = {}
        for org in orgs.values():
            if org.parent in orgs and org.parent != org.sourced_id:
                self.children.setdefault(org.parent, []).append(org.sourced_id)

    def schools(self, org_id: str) -> tuple[int, ...]:
        """The school of an org (the school above a department), or every school below it (a district's);
        a district's own department covers the district's schools."""
        found = self._schools.get(org_id)
        if found is None:
            found = self._above(org_id) or self._below(org_id)
            parent, seen = self.orgs[org_id].parent if org_id in self.orgs else "", {org_id}
            while not found and parent in self.orgs and parent not in seen:
                seen.add(parent)
                found, parent = self._below(parent), self.orgs[parent].parent
            self._schools[org_id] = found
        return found

    def schools_of(self, org_ids: str) -> tuple[int, ...]:
        """The schools of a comma-separated list of orgs, each once, the first org's first."""
        found = self._of_ids.get(org_ids)
        if found is None:
            ids: dict[int, None] = {}
            for org_id in org_ids.split(","):
                for school_id in self.schools(org_id.strip()):
                    ids[school_id] = None
            found = self._of_ids[org_ids] = tuple(ids)
        return found

    def _above(self, org_id: str) -> tuple[int, ...]:
        seen = set()
        while org_id in self.orgs and org_id not in seen:
            seen.add(org_id)
            org = self.orgs[org_id]
            if org.type == SCHOOL_TYPE:
                return (self.school_ids[org_id],) if org_id in self.school_ids else ()
            org_id = org.parent
        return ()

    def _below(self, org_id: str) -> tuple[int, ...]:
        found, queue, seen = [], list(self.children.get(org_id, ())), {org_id}
        while queue:
            child = queue.pop(0)
            if child in seen:
                continue
            seen.add(child)
            if self.orgs[child].type == SCHOOL_TYPE:
                if child in self.school_ids:
                    found.append(self.school_ids[child])
                continue
            queue.extend(self.children.get(child, ()))
        return tuple(found)

    def why_no_school(self, org: _Org) -> str:
        if org.parent and org.parent not in self.orgs:
            return f'its parent "{org.parent}" is not in {ORGS_FILE}'
        return "it has no school above or below it"


@dataclass(frozen=True)
class _Class:
    line: int
    active: bool
    title: str
    class_type: str
    class_code: str | None
    subjects: str | None
    grades: str | None
    school_id: int | None
    advisory: bool


# -- the import --------------------------------------------------------------------------------------


def import_roster(engine: Engine, directory: Path, advisory_markers: set[str], *,
                  school_timezone: str | None = None, school_locale: str | None = None,
                  counselor_emails: frozenset[str] = frozenset(), readmit: Iterable[str] = (),
                  today: date | None = None, now: datetime | None = None) -> ImportReport:
    """Read the OneRoster files in `directory` and create, update and remove rows, in one transaction.

    OneRoster 1.1 has no counselor role: staff whose e-mail is in `counselor_emails` become counselors,
    who receive every safety alert of their school. A forgotten person's id that reappears is
    reported and not created, unless it is in `readmit`. `today` is the day people who leave
    are stamped with, `now` when their unused invite codes stop working (default: now, in UTC).
    Raises RosterError, naming file, line and column, and changes nothing, when a file is refused.
    """
    now = now or datetime.now(timezone.utc)
    run = _Import(Store(engine), Path(directory), {marker.lower() for marker in advisory_markers},
                  {key: value for key, value in (("timezone", school_timezone), ("locale", school_locale))
                   if value is not None},
                  {email.lower() for email in counselor_emails}, set(readmit), today or now.date(), now)
    return run.run()


class _Import:
    """One import: each file read into a temporary table or a small map, then compared with what is stored.

    The order keeps memory small: people are written once users.csv (and roles.csv) are read, so
    enrollments.csv, the largest file, is resolved record by record against two maps (user →
    person and role, class → stored ids) instead of being joined in SQL afterwards.
    """

    def __init__(self, store: Store, directory: Path, markers: set[str], school_defaults: dict[str, str],
                 counselor_emails: set[str], readmit: set[str], today: date, now: datetime):
        self.store, self.directory, self.markers = store, directory, markers
        self.school_defaults, self.counselor_emails, self.readmit = school_defaults, counselor_emails, readmit
        self.today, self.now = today, now
        self.report = ImportReport()
        self.tx: Tx
        self.version = "1.1"
        self.orgs = _Orgs({})
        self.users: dict[str, int] = {}  # sourcedId → person id * 8 + role code; NOT_IMPORTED; FORGOTTEN
        self.classes: dict[str, _Class] = {}
        self.class_ids: dict[str, tuple[int, int | None]] = {}  # classes on the roster: (rosterclass, advisorygroup)
        self.covered_school_ids: set[int] = set()
        self.kept_users = 0  # users imported as people (forgotten ones taken off)
        self.roles: dict[str, int | list[int]] = {}  # 1.2: user → their roles, packed (see _read_roles)
        self.role_names: list[str] = []
        self.org_ids: list[str] = []
        self.kept_enrollments = 0

    def run(self) -> ImportReport:
        with self.store.transaction() as tx:
            self.tx = tx
            tx.begin()
            self.version = self._read_manifest()
            self._create_temporary_tables()
            self._read_orgs()
            self._apply_schools()
            if self.version == "1.2":
                self._read_roles()
            self._read_users()
            if self.version == "1.2":
                self._check_role_users()
            self._apply_people()
            self._apply_person_schools()
            self._load_users()
            if self.version == "1.2":
                self._read_user_profiles()
            self._read_classes()
            removed_classes = self._apply_classes()
            self._apply_groups()
            self._read_enrollments()
            self._apply_enrollments()
            self._remove_classes(removed_classes)
            self._apply_members()
            self._drop_temporary_tables()
            tx.audit("roster", "roster_import", None, self.report.counts(), self.now)
        return self.report

    # -- temporary tables ----------------------------------------------------------------------------

    TEMPORARY = {
        # keep: 1 imported as a person, 0 not (no role here, or inactive), 2 forgotten (a tombstone)
        "roster_user": "sourced_id TEXT NOT NULL, line INTEGER NOT NULL, keep INTEGER NOT NULL, role TEXT, "
                       "school_id INTEGER, given_name TEXT, family_name TEXT, email TEXT, grade TEXT",
        "roster_person_school": "sourced_id TEXT NOT NULL, school_id INTEGER NOT NULL",
        # keep: 1 kept (then class, person and role are set; group and member for an advisory group), 0 not
        "roster_enrollment": "line INTEGER NOT NULL, sourced_id TEXT NOT NULL, keep INTEGER NOT NULL, "
                             "class_id INTEGER, person_id INTEGER, role TEXT, group_id INTEGER, member TEXT",
        "roster_member": "group_id INTEGER NOT NULL, person_id INTEGER NOT NULL, role TEXT NOT NULL",
        "roster_covered_group": "id INTEGER PRIMARY KEY",
    }

    def _create_temporary_tables(self) -> None:
        tx = self.tx
        for name, columns in self.TEMPORARY.items():
            if tx.postgres:
                tx.execute(f"CREATE TEMPORARY TABLE {name} ({columns}) ON COMMIT DROP")
            else:
                tx.execute(f"DROP TABLE IF EXISTS temp.{name}")
                tx.execute(f"CREATE TEMPORARY TABLE {name} ({columns})")

    def _drop_temporary_tables(self) -> None:
        if not self.tx.postgres:
            for name in self.TEMPORARY:
                self.tx.execute(f"DROP TABLE temp.{name}")

    def _analyze(self, table: str) -> None:
        """PostgreSQL plans a join of a temporary table blind until it has statistics."""
        if self.tx.postgres:
            self.tx.execute(f"ANALYZE {table}")

    def _stream(self, statement: str, params: tuple = ()) -> Iterator[tuple]:
        """The rows of a query, a few thousand at a time (PostgreSQL: a server-side cursor)."""
        if self.tx.postgres:
            cursor = self.tx.connection.cursor(name="roster_stream")
        else:
            cursor = self.tx.connection.cursor()
        try:
            cursor.execute(self.store.sql(statement), params)
            while rows := cursor.fetchmany(10000):
                yield from rows
        finally:
            cursor.close()

    def _insert(self, table: str, rows: list[tuple]) -> None:
        """Write rows to a temporary table (PostgreSQL: COPY, many times faster than one INSERT per row)."""
        if not rows:
            return
        if self.tx.postgres:
            with self.tx.cursor.copy(f"COPY {table} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        self.tx.cursor.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(rows[0]))})", rows)

    def _check_unique(self, source: _Source, table: str) -> None:
        """Refuse a sourcedId written twice to `table`, naming the earliest repeat and its first line.

        The key's index is built once the file is read (faster than keeping it up to date row by row);
        it then serves the comparisons with the stored rows.
        """
        self.tx.execute(f"CREATE INDEX IF NOT EXISTS {table}_key ON {table} (sourced_id)")
        repeated = [key for (key,) in self.tx.all(f"SELECT sourced_id FROM {table} GROUP BY sourced_id "
                                                  "HAVING COUNT(*) > 1 LIMIT 500")]
        if not repeated:
            return
        first: dict[str, int] = {}
        repeats = []
        for key, line in self.tx.all(f"SELECT sourced_id, line FROM {table} WHERE sourced_id IN "
                                     f"({', '.join('?' * len(repeated))}) ORDER BY line", repeated):
            if key in first:
                repeats.append((line, key))
            else:
                first[key] = line
        line, key = min(repeats)
        source.line = line
        raise source.error("sourcedId", f'"{key}" is also on line {first[key]}')

    # -- the manifest, orgs and schools -----------------------------------------------------------------

    def _read_manifest(self) -> str:
        """The OneRoster version, from manifest.csv (or, without one, from the files there); refuses deltas."""
        if not (self.directory / MANIFEST_FILE).is_file():
            version = "1.2" if (self.directory / ROLES_FILE).is_file() else "1.1"
            why = "roles.csv is there" if version == "1.2" else "there is no roles.csv"
            self.report.notes.append(f"No {MANIFEST_FILE}: read as OneRoster {version} bulk CSV ({why})")
            self.report.version = version
            return version
        source = _Source(self.directory, MANIFEST_FILE, self.report, REQUIRED_COLUMNS[MANIFEST_FILE],
                         ("propertyName", "value"), key=None)
        version, deltas, first_delta = None, [], 0
        for name, value in source:
            if name == "oneroster.version":
                version = next((known for known in VERSIONS if value == known or value.startswith(known + ".")),
                               None)
                if version is None:
                    raise source.error("value", f'OneRoster "{value}" is not read here; export OneRoster 1.1 or '
                                                "1.2 bulk CSV")
            elif name.startswith("file."):
                mode = value.lower()
                if mode not in FILE_MODES:
                    raise source.error("value", f'"{value}" is not a OneRoster file mode (bulk, delta or absent)')
                if mode == "delta":
                    deltas.append(name)
                    first_delta = first_delta or source.line
        if deltas:
            source.line = first_delta
            which = (f"{deltas[0]} is a delta export, which lists" if len(deltas) == 1 else
                     f"{', '.join(deltas[:-1])} and {deltas[-1]} are delta exports, which list")
            raise source.error("value", f'"delta" exports are not supported: {which} only what changed since the '
                                        "last export; read as the whole roster it would make everyone it leaves out "
                                        'leave the school. Export the whole roster ("bulk" mode)')
        if version is None:
            version = "1.1"
            self.report.notes.append(f"Read as OneRoster 1.1 bulk CSV ({MANIFEST_FILE} names no oneroster.version)")
        else:
            self.report.notes.append(f"Read as OneRoster {version} bulk CSV ({MANIFEST_FILE}: oneroster.version "
                                     f"{version})")
        self.report.version = version
        return version

    def _read_orgs(self) -> None:
        source = _Source(self.directory, ORGS_FILE, self.report, REQUIRED_COLUMNS[ORGS_FILE],
                         ("sourcedId", "name", "type", "parentSourcedId"))
        orgs = {}
        for sourced_id, name, kind, parent in source:
            if not name:
                raise source.error("name", "a value is required")
            if not kind:
                raise source.error("type", "a value is required")
            orgs[sourced_id] = _Org(sourced_id, source.line, source.active, name, kind.lower(), parent)
        self.orgs = _Orgs(orgs)
        self.org_ids = list(orgs)

    def _apply_schools(self) -> None:
        """Create and rename schools; then every org's schools can be told."""
        tx, changes, defaults = self.tx, self.report.schools, self.school_defaults
        stored = {sourced_id: (school_id, name)
                  for school_id, sourced_id, name in tx.all("SELECT id, sourced_id, name FROM school")}
        for org in self.orgs.orgs.values():
            if org.type != SCHOOL_TYPE:
                continue
            school = stored.get(org.sourced_id)
            if not org.active:
                # People and groups may still belong to it: the school row stays.
                if school is not None:
                    self.report.changes.append(f"school {org.sourced_id}: marked tobedeleted, kept")
                continue
            if school is None:
                school_id = tx.insert("INSERT INTO school (sourced_id, name, timezone, locale) VALUES (?, ?, ?, ?)",
                                      (org.sourced_id, org.name, defaults.get("timezone", DEFAULT_TIMEZONE),
                                       defaults.get("locale", DEFAULT_LOCALE)))
                stored[org.sourced_id] = (school_id, org.name)
                changes.created += 1
            elif school[1] != org.name:
                tx.execute("UPDATE school SET name = ? WHERE id = ?", (org.name, school[0]))
                changes.updated += 1
                self.report.changes.append(f"school {org.sourced_id}: name changed")
            else:
                changes.unchanged += 1
        self.orgs.school_ids = {sourced_id: school_id for sourced_id, (school_id, _) in stored.items()}
        self.covered_school_ids = {self.orgs.school_ids[org_id] for org_id in self.orgs.orgs
                                   if org_id in self.orgs.school_ids}
        for org in self.orgs.orgs.values():
            if org.parent and org.parent not in self.orgs.orgs:
                self.report.warnings.append(f'{ORGS_FILE} line {org.line}, column parentSourcedId: "{org.parent}" '
                                            f"is not in {ORGS_FILE}")
            if org.type != SCHOOL_TYPE and not self.orgs.schools(org.sourced_id):
                self.report.warnings.append(f"org {org.sourced_id} ({org.type}) is in no school: "
                                            f"{self.orgs.why_no_school(org)}; its people are in no school")

    # -- users and their roles ----------------------------------------------------------------------

    def _read_roles(self) -> None:
        """roles.csv (1.2): every role checked; the active ones kept by user, packed in an int each (memory stays
        small at 200,000 users); their users are checked once users.csv is read."""
        source = _Source(self.directory, ROLES_FILE, self.report, REQUIRED_COLUMNS[ROLES_FILE],
                         ("sourcedId", "userSourcedId", "roleType", "role", "orgSourcedId"))
        orgs, roles, names, codes = self.orgs.orgs, self.roles, self.role_names, {}
        org_codes = {org_id: number for number, org_id in enumerate(self.org_ids)}
        for _, user_id, role_type, role, org_id in source:
            if not user_id:
                raise source.error("userSourcedId", "a value is required")
            kind = role_type.lower()
            if kind not in ROLE_TYPES:
                raise source.error("roleType", f'"{role_type}" is not a OneRoster role type (primary or '
                                               "secondary)" if role_type else "a value is required")
            name = role.lower()
            if name not in ROLES_12 and not name.startswith("ext:"):
                raise source.error("role", f'"{role}" is not a OneRoster 1.2 role' if role else "a value is required")
            if not org_id:
                raise source.error("orgSourcedId", "a value is required")
            if org_id not in orgs:
                raise source.error("orgSourcedId", f'"{org_id}" is not in {ORGS_FILE}')
            code = codes.get(name)
            if code is None:
                code = codes[name] = len(names)
                names.append(name)
            packed = ((org_codes[org_id] * 1024 + code) * 2 + (kind == "primary")) * 2 + source.active
            known = roles.get(user_id)
            if known is None:
                roles[user_id] = packed
            elif isinstance(known, int):
                roles[user_id] = [known, packed]
            else:
                known.append(packed)

    def _roles_of_user(self, user_id: str) -> list[tuple[str, str, str]]:
        """A 1.2 user's active roles, in file order: [(role type, role, org)]; taken out of `roles` as read."""
        packed = self.roles.pop(user_id, None)
        if packed is None:
            return []
        found = []
        for value in ([packed] if isinstance(packed, int) else packed):
            value, active = divmod(value, 2)
            value, primary = divmod(value, 2)
            org, code = divmod(value, 1024)
            if active:
                found.append(("primary" if primary else "secondary", self.role_names[code], self.org_ids[org]))
        return found

    def _check_role_users(self) -> None:
        """Every role of roles.csv is a user of users.csv: each user's roles were taken as users.csv was read,
        so what is left names someone else (the file is read again to name the first line)."""
        if not self.roles:
            return
        source = _Source(self.directory, ROLES_FILE, self.report, REQUIRED_COLUMNS[ROLES_FILE],
                         ("sourcedId", "userSourcedId"), unique=False)
        for _, user_id in source:
            if user_id in self.roles:
                raise source.error("userSourcedId", f'"{user_id}" is not in {USERS_FILE}')

    def _read_users(self) -> None:
        """users.csv: each user checked, their role and schools decided, into `roster_user`."""
        twelve = self.version == "1.2"
        required = USERS_12_REQUIRED if twelve else REQUIRED_COLUMNS[USERS_FILE]
        hint = ""
        if not twelve and (self.directory / ROLES_FILE).is_file():
            hint = f" (the export has a {ROLES_FILE}: is it OneRoster 1.2? its manifest says 1.1)"
        orgs_column = "primaryOrgSourcedId" if twelve else "orgSourcedIds"
        source = _Source(self.directory, USERS_FILE, self.report, required,
                         ("sourcedId", "enabledUser", orgs_column, "role", "givenName", "familyName", "email",
                          "grades"), hint=hint)
        orgs, pending, warnings = self.orgs.orgs, [], self.report.warnings
        for sourced_id, enabled, org_ids, role, given_name, family_name, email, grades in source:
            active = source.active and enabled.lower() != "false"
            if twelve:
                if org_ids and org_ids not in orgs:
                    raise source.error(orgs_column, f'"{org_ids}" is not in {ORGS_FILE}')
            else:
                if not role:
                    raise source.error("role", "a value is required")
                given_role, role = role, role.lower()
                if role not in USER_ROLES and not role.startswith("ext:"):
                    raise source.error("role", f'"{given_role}" is not a OneRoster 1.1 user role')
                if org_ids not in orgs:
                    for org_id in org_ids.split(","):
                        org_id = org_id.strip()
                        if org_id and org_id not in orgs:
                            raise source.error("orgSourcedIds", f'"{org_id}" is not in {ORGS_FILE}')
            if not given_name:
                raise source.error("givenName", "a value is required")
            if email and not EMAIL.match(email):
                warnings.append(f'{USERS_FILE} line {source.line}, column email: "{email}" is not an e-mail '
                                "address: imported without one")
                email = ""
            grade = grades.split(",", 1)[0].strip() if grades else ""
            pending.append((sourced_id, source.line, active, role, org_ids, given_name, family_name, email or None,
                            grade or None))
            if len(pending) >= BATCH:
                self._write_users(pending)
                pending = []
        self._write_users(pending)
        self.tx.execute("CREATE UNIQUE INDEX roster_user_key ON roster_user (sourced_id)")
        self._analyze("roster_user")

    def _write_users(self, pending: list[tuple]) -> None:
        """Decide the role and schools of a batch of users, and write them to `roster_user`."""
        if not pending:
            return
        twelve = self.version == "1.2"
        rows, schools, report = [], [], self.report
        counselors, schools_of = self.counselor_emails, self.orgs.schools_of
        for sourced_id, line, active, role, org_ids, given_name, family_name, email, grade in pending:
            if twelve:
                role, person_role, org_ids = self._decide_12(sourced_id, self._roles_of_user(sourced_id))
            else:
                person_role = PERSON_ROLES.get(role)
            keep, school_id = 0, None
            if active:
                if person_role is None:
                    report.skipped_users[role] = report.skipped_users.get(role, 0) + 1
                else:
                    keep = 1
                    if counselors and email and email.lower() in counselors:
                        if person_role == Role.student:
                            report.conflicts.append(f"{sourced_id} is a student: not made a counselor, though the "
                                                    "counselor e-mails name them")
                        else:
                            person_role = Role.counselor.value
                    school_ids = schools_of(org_ids) if org_ids else ()
                    if school_ids:
                        school_id = school_ids[0]
                        if len(school_ids) > 1:
                            schools.extend((sourced_id, extra) for extra in school_ids[1:])
                            report.several_schools += 1
                    else:
                        report.no_school.append(sourced_id)
            rows.append((sourced_id, line, keep, person_role, school_id, given_name, family_name, email, grade))
            self.kept_users += keep
        self._insert("roster_user", rows)
        self._insert("roster_person_school", schools)

    def _decide_12(self, sourced_id: str, roles: list[tuple[str, str, str]]) -> tuple[str, str | None, str]:
        """A 1.2 user's role here, from their primary role (a student one wins a tie), and the orgs of that role.

        Returns (the OneRoster role, the role here or None, comma-separated orgs).
        """
        if not roles:
            return f"no role in {ROLES_FILE}", None, ""
        if len(roles) == 1:  # most users: one role, the primary one
            role = roles[0][1]
            return ROLES_12.get(role, role), PERSON_ROLES_12.get(role), roles[0][2]
        primaries = [role for role in roles if role[0] == "primary"]
        pool = primaries or roles
        chosen = next((role for role in pool if role[1] == "student"), pool[0])
        person_role = PERSON_ROLES_12.get(chosen[1])
        name = ROLES_12.get(chosen[1], chosen[1])
        mapped = {PERSON_ROLES_12.get(role[1]) for role in roles} - {None}
        if person_role is not None and len(mapped) > 1:
            others = ", ".join(sorted({f"{ROLES_12.get(role[1], role[1])} at {role[2]}" for role in roles
                                       if PERSON_ROLES_12.get(role[1]) not in (person_role, None)}))
            which = "primary role" if primaries else "role (none is primary)"
            settled = "a student here, never an adult" if person_role == Role.student else f"an {person_role} here"
            self.report.conflicts.append(f"{sourced_id} is a {name} by their {which}, and also {others} in "
                                         f"{ROLES_FILE}: {settled}")
        elif len({role[1] for role in primaries}) > 1:
            self.report.warnings.append(f"{sourced_id} has several primary roles in {ROLES_FILE}: {name} is used")
        org_ids = [chosen[2]] + [role[2] for role in roles
                                 if role is not chosen and PERSON_ROLES_12.get(role[1]) == person_role]
        return name, person_role, ",".join(dict.fromkeys(org_ids))

    def _load_users(self) -> None:
        """Every user of users.csv with their person and role here, for the enrollments: one int each."""
        users = self.users
        for sourced_id, keep, role, person_id in self._stream(
                "SELECT u.sourced_id, u.keep, u.role, p.id FROM roster_user u LEFT JOIN person p "
                "ON p.sourced_id = u.sourced_id AND u.keep = 1"):
            users[sourced_id] = (person_id * 8 + ROLE_CODES[role] if keep == 1 else
                                 FORGOTTEN if keep == 2 else NOT_IMPORTED)

    def _read_user_profiles(self) -> None:
        """userProfiles.csv (1.2, optional): checked (its users exist), counted, not kept."""
        if not (self.directory / USER_PROFILES_FILE).is_file():
            return
        source = _Source(self.directory, USER_PROFILES_FILE, self.report, REQUIRED_COLUMNS[USER_PROFILES_FILE],
                         ("sourcedId", "userSourcedId"))
        profiles = 0
        for _, user_id in source:
            if not user_id:
                raise source.error("userSourcedId", "a value is required")
            if user_id not in self.users:
                raise source.error("userSourcedId", f'"{user_id}" is not in {USERS_FILE}')
            profiles += 1
        self.report.notes.append(f"{USER_PROFILES_FILE}: {profiles} profiles read (credentials for other "
                                 "applications: not kept)")

    # -- people ----------------------------------------------------------------------------------------

    def _differs(self, left: str, right: str) -> str:
        """SQL that is true when two values differ, NULLs included."""
        return f"{left} IS DISTINCT FROM {right}" if self.tx.postgres else f"{left} IS NOT {right}"

    def _apply_people(self) -> None:
        """Create and update people; who left gets `left_on` (and their codes stop), who came back loses it."""
        tx, report, changes = self.tx, self.report, self.report.people
        self._tombstones()
        report.returned = sorted(row[0] for row in tx.all(
            "SELECT u.sourced_id FROM roster_user u JOIN person p ON p.sourced_id = u.sourced_id "
            "WHERE u.keep = 1 AND p.left_on IS NOT NULL"))
        if report.returned:
            tx.execute("UPDATE person SET left_on = NULL WHERE left_on IS NOT NULL AND sourced_id IN "
                       "(SELECT sourced_id FROM roster_user WHERE keep = 1)")
        columns = ("school_id", "role", "given_name", "family_name", "email", "grade")
        differs = [self._differs(f"p.{column}", f"u.{column}") for column in columns]
        changed = tx.all(f"SELECT u.sourced_id, {', '.join(differs)} FROM roster_user u JOIN person p "
                         f"ON p.sourced_id = u.sourced_id WHERE u.keep = 1 AND ({' OR '.join(differs)}) "
                         "ORDER BY u.line")
        for sourced_id, *flags in changed:
            names = [column for column, flag in zip(columns, flags) if flag]
            report.changes.append(f"person {sourced_id}: {', '.join(names)} changed")
        if changed:
            setting = ", ".join(f"{column} = u.{column}" for column in columns)
            where = " OR ".join(self._differs(f"person.{column}", f"u.{column}") for column in columns)
            tx.execute(f"UPDATE person SET {setting} FROM roster_user u WHERE u.sourced_id = person.sourced_id "
                       f"AND u.keep = 1 AND ({where})")
        changes.updated = len(changed)
        # New people (the temporary table is in the order of the file).
        changes.created = tx.execute(
            "INSERT INTO person (sourced_id, school_id, role, given_name, family_name, email, grade, status, "
            "created_at) SELECT u.sourced_id, u.school_id, u.role, u.given_name, u.family_name, u.email, u.grade, "
            "'active', ? FROM roster_user u WHERE u.keep = 1 AND NOT EXISTS (SELECT 1 FROM person p "
            "WHERE p.sourced_id = u.sourced_id)", (tx.ts(self.now),)).rowcount
        changes.unchanged = self.kept_users - changes.created - changes.updated
        # Who is no longer on the roster, of the schools it covers (or of none): everyone there but the kept.
        covered = sorted(self.covered_school_ids)
        scope = "p.school_id IS NULL" + (f" OR p.school_id IN ({', '.join('?' * len(covered))})" if covered else "")
        there = tx.one(f"SELECT COUNT(*) FROM person p WHERE {scope}", covered)[0]
        gone = [] if there == self.kept_users else tx.all(
            "SELECT p.id, p.sourced_id, p.left_on FROM person p WHERE NOT EXISTS (SELECT 1 FROM roster_user u "
            f"WHERE u.sourced_id = p.sourced_id AND u.keep = 1) AND ({scope}) ORDER BY p.sourced_id", covered)
        report.withdrawn = [sourced_id for _, sourced_id, _ in gone]
        leaving = [(person_id, sourced_id) for person_id, sourced_id, left_on in gone if left_on is None]
        report.left = sorted(sourced_id for _, sourced_id in leaving)
        for first in range(0, len(leaving), 500):
            ids = [person_id for person_id, _ in leaving[first:first + 500]]
            marks = ", ".join("?" * len(ids))
            tx.execute(f"UPDATE person SET left_on = ? WHERE id IN ({marks})", (tx.day(self.today), *ids))
            # Who left links no more: their unused invite codes stop working now.
            tx.execute(f"UPDATE invitecode SET expires_at = ? WHERE person_id IN ({marks}) AND used_at IS NULL "
                       "AND expires_at > ?", (tx.ts(self.now), *ids, tx.ts(self.now)))
        for sourced_id in sorted(self.readmit):
            if sourced_id not in report.readmitted and not tx.one(
                    "SELECT 1 FROM roster_user WHERE sourced_id = ? AND keep = 1", (sourced_id,)):
                report.changes.append(f"readmit {sourced_id}: not forgotten here, or not in this roster; nothing to do")
        if report.readmitted:
            tx.audit("roster", "readmitted", None, {"count": len(report.readmitted)}, self.now)
        report.no_school = sorted(set(report.no_school) - set(report.forgotten))

    def _tombstones(self) -> None:
        """New ids that a forgotten person had are not created again, unless readmitted (their tombstone goes)."""
        tx, report = self.tx, self.report
        keys = {key for (key,) in tx.all("SELECT key FROM tombstone")}
        if not keys:
            return
        forgotten = [(sourced_id, key) for (sourced_id,) in self._stream(
            "SELECT u.sourced_id FROM roster_user u WHERE u.keep = 1 AND NOT EXISTS "
            "(SELECT 1 FROM person p WHERE p.sourced_id = u.sourced_id)")
            if (key := tombstone_key(sourced_id)) in keys]
        for sourced_id, key in forgotten:
            if sourced_id in self.readmit:
                tx.execute("DELETE FROM tombstone WHERE key = ?", (key,))
                report.readmitted.append(sourced_id)
            else:
                tx.execute("UPDATE roster_user SET keep = 2 WHERE sourced_id = ?", (sourced_id,))
                report.forgotten.append(sourced_id)
                self.kept_users -= 1
        report.forgotten.sort()
        report.readmitted.sort()

    def _apply_person_schools(self) -> None:
        """The schools each person on the roster covers besides their own: exactly those the roster says."""
        tx = self.tx
        if tx.one("SELECT 1 FROM personschool LIMIT 1"):  # nothing to compare on a first import
            tx.execute("DELETE FROM personschool WHERE person_id IN (SELECT p.id FROM person p JOIN roster_user u "
                       "ON u.sourced_id = p.sourced_id AND u.keep = 1) AND NOT EXISTS (SELECT 1 FROM "
                       "roster_person_school s JOIN person p ON p.sourced_id = s.sourced_id WHERE "
                       "p.id = personschool.person_id AND s.school_id = personschool.school_id)")
        tx.execute("INSERT INTO personschool (person_id, school_id) SELECT DISTINCT p.id, s.school_id FROM "
                   "roster_person_school s JOIN roster_user u ON u.sourced_id = s.sourced_id AND u.keep = 1 "
                   "JOIN person p ON p.sourced_id = s.sourced_id WHERE NOT EXISTS (SELECT 1 FROM personschool x "
                   "WHERE x.person_id = p.id AND x.school_id = s.school_id)")

    # -- classes and advisory groups ----------------------------------------------------------------------

    def _read_classes(self) -> None:
        source = _Source(self.directory, CLASSES_FILE, self.report, REQUIRED_COLUMNS[CLASSES_FILE],
                         ("sourcedId", "title", "classType", "schoolSourcedId", "classCode", "subjects", "grades"))
        orgs, markers, homeless = self.orgs, self.markers, set()
        for sourced_id, title, class_type, school_org, class_code, subjects, grades in source:
            if not title:
                raise source.error("title", "a value is required")
            if not school_org:
                raise source.error("schoolSourcedId", "a value is required")
            if school_org not in orgs.orgs:
                raise source.error("schoolSourcedId", f'"{school_org}" is not in {ORGS_FILE}')
            schools = orgs.schools(school_org)
            if not schools and school_org not in homeless:
                homeless.add(school_org)
                self.report.warnings.append(f"{CLASSES_FILE}: the classes of org {school_org} are in no school")
            self.classes[sourced_id] = _Class(
                source.line, source.active, title, class_type, class_code or None, subjects or None, grades or None,
                schools[0] if schools else None, class_type.lower() in markers or title.lower() in markers)

    def _apply_classes(self) -> list[tuple[int, str]]:
        """Create and update every class on the roster; returns those to remove (once their enrollments are gone)."""
        tx, report, changes = self.tx, self.report, self.report.classes
        columns = ("school_id", "title", "class_type", "class_code", "subjects", "grades", "advisory")
        stored = {row[1]: row for row in tx.all(f"SELECT id, sourced_id, {', '.join(columns)} FROM rosterclass")}
        on_roster: dict[str, int] = {}
        new, changed = [], []
        for sourced_id, class_ in self.classes.items():
            if not class_.active:
                continue
            kind = "advisory" if class_.advisory else "subject"
            report.class_kinds[kind] = report.class_kinds.get(kind, 0) + 1
            values = (class_.school_id, class_.title, class_.class_type, class_.class_code, class_.subjects,
                      class_.grades, class_.advisory)
            row = stored.get(sourced_id)
            if row is None:
                new.append((sourced_id, *values))
                continue
            on_roster[sourced_id] = row[0]
            if tuple(row[2:8]) != values[:6] or bool(row[8]) != values[6]:
                changed.append((*values, row[0]))
        tx.cursor.executemany(self.store.sql(f"INSERT INTO rosterclass (sourced_id, {', '.join(columns)}) "
                                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"), new)
        tx.cursor.executemany(self.store.sql(f"UPDATE rosterclass SET {', '.join(f'{column} = ?' for column in columns)} "
                                             "WHERE id = ?"), changed)
        changes.created, changes.updated = len(new), len(changed)
        changes.unchanged = len(on_roster) - len(changed)
        if new:
            created = {row[0] for row in new}
            on_roster.update((sourced_id, class_id) for class_id, sourced_id in tx.all(
                "SELECT id, sourced_id FROM rosterclass") if sourced_id in created)
        covered = self.covered_school_ids
        self.class_ids = {sourced_id: (class_id, None) for sourced_id, class_id in on_roster.items()}
        return [(row[0], sourced_id) for sourced_id, row in stored.items()
                if sourced_id not in on_roster and (row[2] is None or row[2] in covered)]

    def _remove_classes(self, removed: list[tuple[int, str]]) -> None:
        for first in range(0, len(removed), 500):
            ids = [class_id for class_id, _ in removed[first:first + 500]]
            self.tx.execute(f"DELETE FROM rosterclass WHERE id IN ({', '.join('?' * len(ids))})", ids)
        self.report.classes.removed = len(removed)

    def _apply_groups(self) -> None:
        """Create, update and remove advisory groups (the advisory classes on the roster)."""
        tx, report, changes = self.tx, self.report, self.report.advisory_groups
        stored = {sourced_id: (group_id, school_id, title) for group_id, sourced_id, school_id, title in
                  tx.all("SELECT id, sourced_id, school_id, title FROM advisorygroup")}
        on_roster: dict[str, int] = {}
        new = []
        for sourced_id, class_ in self.classes.items():
            if not (class_.active and class_.advisory):
                continue
            group = stored.get(sourced_id)
            if group is None:
                new.append((sourced_id, class_.school_id, class_.title))
                continue
            on_roster[sourced_id] = group[0]
            names = [name for name, old, new_value in (("school_id", group[1], class_.school_id),
                                                       ("title", group[2], class_.title)) if old != new_value]
            if names:
                tx.execute("UPDATE advisorygroup SET school_id = ?, title = ? WHERE id = ?",
                           (class_.school_id, class_.title, group[0]))
                changes.updated += 1
                report.changes.append(f"advisory group {sourced_id}: {', '.join(names)} changed")
            else:
                changes.unchanged += 1
        tx.cursor.executemany(self.store.sql("INSERT INTO advisorygroup (sourced_id, school_id, title) "
                                             "VALUES (?, ?, ?)"), new)
        changes.created = len(new)
        if new:
            created = {row[0] for row in new}
            on_roster.update((sourced_id, group_id) for group_id, sourced_id in tx.all(
                "SELECT id, sourced_id FROM advisorygroup") if sourced_id in created)
        covered_schools = self.covered_school_ids
        removed = sorted((sourced_id, group_id) for sourced_id, (group_id, school_id, _) in stored.items()
                         if sourced_id not in on_roster and (school_id is None or school_id in covered_schools))
        for first in range(0, len(removed), 500):
            # Their memberships go first (foreign keys); the group's line in `changes` stands for them.
            ids = [group_id for _, group_id in removed[first:first + 500]]
            marks = ", ".join("?" * len(ids))
            report.advisory_members.removed += tx.execute(
                f"DELETE FROM advisorymember WHERE group_id IN ({marks})", ids).rowcount
            tx.execute(f"DELETE FROM advisorygroup WHERE id IN ({marks})", ids)
        for sourced_id, _ in removed:
            changes.removed += 1
            report.changes.append(f"advisory group {sourced_id}: removed")
        removed_ids = {group_id for _, group_id in removed}
        covered = {group_id for group_id, school_id, _ in stored.values()
                   if school_id is None or school_id in covered_schools} | set(on_roster.values())
        self._insert("roster_covered_group", [(group_id,) for group_id in sorted(covered - removed_ids)])
        for sourced_id, group_id in on_roster.items():
            self.class_ids[sourced_id] = (self.class_ids[sourced_id][0], group_id)

    # -- enrollments and memberships ------------------------------------------------------------------

    def _read_enrollments(self) -> None:
        """enrollments.csv: each enrollment checked and resolved (class, person, membership), into
        `roster_enrollment`; what is not kept is counted, and role conflicts listed."""
        source = _Source(self.directory, ENROLLMENTS_FILE, self.report, REQUIRED_COLUMNS[ENROLLMENTS_FILE],
                         ("sourcedId", "classSourcedId", "userSourcedId", "role", "schoolSourcedId"), unique=False)
        classes, class_ids, users, orgs = self.classes, self.class_ids, self.users, self.orgs.orgs
        left_out, conflicts, batch, kept = self.report.left_out, self.report.conflicts, [], 0
        # The common case first: a known class and user, a school of orgs.csv, a role as OneRoster writes it.
        plain_roles = ENROLLMENT_ROLES
        try:
            for sourced_id, class_id, user_id, role, school_org in source:
                user = users.get(user_id)
                if user is None or class_id not in classes or (school_org and school_org not in orgs) or (
                        role not in plain_roles):
                    role = self._check_enrollment(source, class_id, user_id, user, role, school_org)
                ids = class_ids.get(class_id)
                if ids is None or user <= 0 or not source.active:
                    why = ("marked tobedeleted" if not source.active else
                           "in a class marked tobedeleted" if ids is None else
                           "of forgotten people" if user == FORGOTTEN else
                           "of people not imported (no role here, or inactive)")
                    left_out[why] = left_out.get(why, 0) + 1
                    batch.append((source.line, sourced_id, 0, None, None, role, None, None))
                else:
                    person_id, code = divmod(user, 8)
                    student = code == STUDENT_CODE
                    group_id = ids[1]
                    if group_id is None:
                        member = None
                        if student and role != "student":
                            conflicts.append(self._conflict(user_id, True, CODE_ROLES[code], role, class_id, False,
                                                            source.line))
                    else:
                        member = ("student" if student and role == "student" else
                                  "adviser" if not student and role == "teacher" else None)
                        if member is None and (student or role == "student"):
                            conflicts.append(self._conflict(user_id, student, CODE_ROLES[code], role, class_id, True,
                                                            source.line))
                    batch.append((source.line, sourced_id, 1, ids[0], person_id, role, group_id, member))
                    kept += 1
                if len(batch) >= BATCH:
                    self._insert("roster_enrollment", batch)
                    batch = []
            self.kept_enrollments = kept
        except RosterError:
            self._insert("roster_enrollment", batch)
            self._check_unique(source, "roster_enrollment")  # a repeated id before the error comes first
            raise
        self._insert("roster_enrollment", batch)
        self._check_unique(source, "roster_enrollment")
        self._analyze("roster_enrollment")

    def _check_enrollment(self, source: _Source, class_id: str, user_id: str, user: int | None, role: str,
                          school_org: str) -> str:
        """Refuse an enrollment that names what the roster does not have; returns its role, lower-cased."""
        if not class_id:
            raise source.error("classSourcedId", "a value is required")
        if class_id not in self.classes:
            raise source.error("classSourcedId", f'"{class_id}" is not in {CLASSES_FILE}')
        if not user_id:
            raise source.error("userSourcedId", "a value is required")
        if user is None:
            raise source.error("userSourcedId", f'"{user_id}" is not in {USERS_FILE}')
        if school_org and school_org not in self.orgs.orgs:
            raise source.error("schoolSourcedId", f'"{school_org}" is not in {ORGS_FILE}')
        name = role.lower()
        if name not in ENROLLMENT_ROLES and not name.startswith("ext:"):
            raise source.error("role", f'"{role}" is not a OneRoster {self.version} enrollment role' if role
                               else "a value is required")
        return name

    @staticmethod
    def _conflict(user_id: str, student: bool, person_role: str, role: str, class_id: str, advisory: bool,
                  line: int) -> str:
        where = f"the advisory group {class_id}" if advisory else f"the class {class_id}"
        if student:
            settled = "kept a student, not made its adviser" if advisory else "kept a student"
            return f"{user_id} is a student, enrolled as {role} in {where} ({ENROLLMENTS_FILE} line {line}): {settled}"
        return (f"{user_id} is an {person_role} here, enrolled as a student in {where} ({ENROLLMENTS_FILE} line "
                f"{line}): not made one of its students")

    def _apply_enrollments(self) -> None:
        """Make the stored enrollments of the classes this roster covers exactly the kept ones."""
        tx, changes, kept = self.tx, self.report.enrollments, self.kept_enrollments
        changes.updated = tx.execute(
            "UPDATE enrollment SET class_id = k.class_id, person_id = k.person_id, role = k.role "
            "FROM roster_enrollment k WHERE k.sourced_id = enrollment.sourced_id AND k.keep = 1 AND "
            "(enrollment.class_id <> k.class_id OR enrollment.person_id <> k.person_id OR enrollment.role <> k.role)"
        ).rowcount
        changes.created = tx.execute(
            "INSERT INTO enrollment (sourced_id, class_id, person_id, role) SELECT k.sourced_id, k.class_id, "
            "k.person_id, k.role FROM roster_enrollment k WHERE k.keep = 1 AND NOT EXISTS (SELECT 1 FROM enrollment x "
            "WHERE x.sourced_id = k.sourced_id)").rowcount
        changes.unchanged = kept - changes.created - changes.updated
        # What else the covered classes hold is no longer on the roster (every kept one is in a covered class).
        covered = sorted(self.covered_school_ids)
        scope = "c.school_id IS NULL" + (f" OR c.school_id IN ({', '.join('?' * len(covered))})" if covered else "")
        if tx.one(f"SELECT 1 FROM rosterclass c WHERE NOT ({scope}) LIMIT 1", covered):
            in_scope = f" AND class_id IN (SELECT c.id FROM rosterclass c WHERE {scope})"
        else:
            in_scope, covered = "", []
        if tx.one(f"SELECT COUNT(*) FROM enrollment WHERE TRUE{in_scope}", covered)[0] > kept:
            changes.removed = tx.execute(
                "DELETE FROM enrollment WHERE NOT EXISTS (SELECT 1 FROM roster_enrollment k WHERE k.sourced_id = "
                f"enrollment.sourced_id AND k.keep = 1){in_scope}", covered).rowcount

    def _apply_members(self) -> None:
        """Make the memberships of the covered groups exactly those the enrollments and the people's roles say.

        A student enrolled as a student is a member; an adult enrolled as a teacher advises the group
        (someone enrolled twice, once as a teacher, advises it). No other enrollment makes a member.
        """
        tx, report, changes = self.tx, self.report, self.report.advisory_members
        wanted = tx.execute("INSERT INTO roster_member SELECT group_id, person_id, MIN(member) FROM roster_enrollment "
                            "WHERE keep = 1 AND member IS NOT NULL GROUP BY group_id, person_id").rowcount
        tx.execute("CREATE UNIQUE INDEX roster_member_key ON roster_member (group_id, person_id)")
        self._analyze("roster_member")
        role_changed = tx.all(
            "SELECT p.sourced_id, g.sourced_id FROM advisorymember m JOIN roster_member w ON w.group_id = m.group_id "
            "AND w.person_id = m.person_id AND w.role <> m.role JOIN person p ON p.id = m.person_id "
            "JOIN advisorygroup g ON g.id = m.group_id ORDER BY m.group_id, m.person_id")
        report.changes.extend(f"advisory member {person} in {group}: role changed" for person, group in role_changed)
        if role_changed:
            changes.updated = tx.execute(
                "UPDATE advisorymember SET role = w.role FROM roster_member w WHERE w.group_id = "
                "advisorymember.group_id AND w.person_id = advisorymember.person_id AND w.role <> advisorymember.role"
            ).rowcount
        changes.created = tx.execute(
            "INSERT INTO advisorymember (group_id, person_id, role) SELECT w.group_id, w.person_id, w.role "
            "FROM roster_member w WHERE NOT EXISTS (SELECT 1 FROM advisorymember m WHERE m.group_id = w.group_id "
            "AND m.person_id = w.person_id)").rowcount
        changes.unchanged = wanted - changes.created - changes.updated
        # What else the covered groups hold is no longer on the roster (every wanted one is in a covered group).
        there = tx.one("SELECT COUNT(*) FROM advisorymember WHERE group_id IN (SELECT id FROM roster_covered_group)")[0]
        if there == wanted:
            return
        gone = ("advisorymember.group_id IN (SELECT id FROM roster_covered_group) AND NOT EXISTS (SELECT 1 FROM "
                "roster_member w WHERE w.group_id = advisorymember.group_id AND w.person_id = advisorymember.person_id)")
        for person, group in tx.all(
                "SELECT p.sourced_id, g.sourced_id FROM advisorymember JOIN person p ON p.id = advisorymember.person_id "
                f"JOIN advisorygroup g ON g.id = advisorymember.group_id WHERE {gone} "
                "ORDER BY advisorymember.group_id, advisorymember.person_id"):
            report.changes.append(f"advisory member {person} in {group}: removed")
        changes.removed += tx.execute(f"DELETE FROM advisorymember WHERE {gone}").rowcount


# How `_Import.users` holds a user: person id * 8 + the code of their role here, or one of these.
NOT_IMPORTED = 0  # no role here, or inactive
FORGOTTEN = -1  # a tombstone: not created again
ROLE_CODES = {Role.student.value: 1, Role.adviser.value: 2, Role.counselor.value: 3, Role.admin.value: 4}
CODE_ROLES = {code: role for role, code in ROLE_CODES.items()}
STUDENT_CODE = ROLE_CODES[Role.student.value]
