"""A demo school, Maple Grove Middle School, loaded through the real roster import and invites."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine

from core.school.invites import issue_invites
from core.school.roster import CLASSES_FILE, ENROLLMENTS_FILE, MANIFEST_FILE, ORGS_FILE, USERS_FILE, import_roster

DEMO_ADVISORY_MARKERS = {"homeroom"}
DEMO_INVITE_VALID_DAYS = 30
MODIFIED = "2026-08-20T12:00:00.000Z"
DISTRICT_ID = "org-district-mg"
SCHOOL_ID = "org-school-mgms"
TERM_ID = "term-2026-fall"
EMAIL_DOMAIN = "maplegrove.example"

ORG_COLUMNS = ("sourcedId", "status", "dateLastModified", "name", "type", "identifier", "parentSourcedId")
USER_COLUMNS = ("sourcedId", "status", "dateLastModified", "enabledUser", "orgSourcedIds", "role", "username",
                "userIds", "givenName", "familyName", "middleName", "identifier", "email", "sms", "phone",
                "agentSourcedIds", "grades", "password")
CLASS_COLUMNS = ("sourcedId", "status", "dateLastModified", "title", "grades", "courseSourcedId", "classCode",
                 "classType", "location", "schoolSourcedId", "termSourcedIds", "subjects")
ENROLLMENT_COLUMNS = ("sourcedId", "status", "dateLastModified", "classSourcedId", "schoolSourcedId",
                      "userSourcedId", "role", "primary", "beginDate", "endDate")

# sourcedId, role, given name, family name, e-mail user name, grade
PEOPLE = (
    ("usr-t-whitfield", "teacher", "Dana", "Whitfield", "dana.whitfield", ""),
    ("usr-t-okafor", "teacher", "Marcus", "Okafor", "marcus.okafor", ""),
    ("usr-a-raman", "administrator", "Priya", "Raman", "priya.raman", ""),
    ("usr-s-1001", "student", "Sofía", "Hernández", "sofia.hernandez", "07"),
    ("usr-s-1002", "student", "Mateo", "García", "mateo.garcia", "07"),
    ("usr-s-1003", "student", "Ava", "Thompson", "ava.thompson", "06"),
    ("usr-s-1004", "student", "Liam", "Nguyen", "liam.nguyen", "08"),
    ("usr-s-1005", "student", "Valentina", "Rodríguez", "valentina.rodriguez", "06"),
    ("usr-s-1006", "student", "Noah", "Patel", "noah.patel", "08"),
    ("usr-s-1007", "student", "Camila", "Torres", "camila.torres", "07"),
    ("usr-s-1008", "student", "Ethan", "Brooks", "ethan.brooks", "06"),
)
# sourcedId, title, grades, course, class type, room, subject, teacher, students
CLASSES = (
    ("cls-hr-whitfield", "Advisory: Ms. Whitfield", "06,07", "crs-advisory", "homeroom", "Room 112", "",
     "usr-t-whitfield", ("usr-s-1001", "usr-s-1003", "usr-s-1005", "usr-s-1008")),
    ("cls-hr-okafor", "Advisory: Mr. Okafor", "07,08", "crs-advisory", "homeroom", "Room 204", "",
     "usr-t-okafor", ("usr-s-1002", "usr-s-1004", "usr-s-1006", "usr-s-1007")),
    ("cls-math-7", "Math 7", "07", "crs-math-7", "scheduled", "Room 210", "Mathematics",
     "usr-t-okafor", ("usr-s-1001", "usr-s-1002", "usr-s-1007")),
    ("cls-science-6", "Science 6", "06", "crs-science-6", "scheduled", "Lab 1", "Science",
     "usr-t-whitfield", ("usr-s-1003", "usr-s-1005", "usr-s-1008")),
)


def write_demo_roster(directory: Path) -> None:
    """Write a small OneRoster 1.1 bulk export of Maple Grove Middle School into `directory`, manifest included."""
    directory.mkdir(parents=True, exist_ok=True)
    _write(directory / ORGS_FILE, ORG_COLUMNS, [
        (DISTRICT_ID, "active", MODIFIED, "Maple Grove Unified School District", "district", "MGUSD", ""),
        (SCHOOL_ID, "active", MODIFIED, "Maple Grove Middle School", "school", "MGMS", DISTRICT_ID),
    ])
    users = []
    for sourced_id, role, given_name, family_name, username, grade in PEOPLE:
        identifier = sourced_id.removeprefix("usr-").upper()
        users.append((sourced_id, "active", MODIFIED, "true", SCHOOL_ID, role, username, f"{{SIS:{identifier}}}",
                      given_name, family_name, "", identifier, f"{username}@{EMAIL_DOMAIN}", "", "", "", grade, ""))
    _write(directory / USERS_FILE, USER_COLUMNS, users)
    _write(directory / CLASSES_FILE, CLASS_COLUMNS, [
        (sourced_id, "active", MODIFIED, title, grades, course, sourced_id.removeprefix("cls-").upper(), class_type,
         room, SCHOOL_ID, TERM_ID, subject)
        for sourced_id, title, grades, course, class_type, room, subject, _teacher, _students in CLASSES
    ])
    enrollments = []
    for class_id, *_details, teacher, students in CLASSES:
        for user_id, role in ((teacher, "teacher"), *((student, "student") for student in students)):
            enrollments.append((f"enr-{class_id.removeprefix('cls-')}-{user_id.removeprefix('usr-')}", "active",
                                MODIFIED, class_id, SCHOOL_ID, user_id, role,
                                "true" if role == "teacher" else "false", "2026-08-24", "2027-06-11"))
    _write(directory / ENROLLMENTS_FILE, ENROLLMENT_COLUMNS, enrollments)
    # OneRoster 1.1's control file: the version, and which files are there (all in bulk: the whole roster).
    _write(directory / MANIFEST_FILE, ("propertyName", "value"), [
        ("manifest.version", "1.0"), ("oneroster.version", "1.1"),
        *((f"file.{name}", "bulk" if name in ("orgs", "users", "classes", "enrollments") else "absent")
          for name in ("academicSessions", "categories", "classes", "classResources", "courses", "courseResources",
                       "demographics", "enrollments", "lineItems", "orgs", "resources", "results", "users")),
        ("source.systemName", "Maple Grove demo"), ("source.systemCode", "demo"),
    ])


def build_demo(engine: Engine, directory: Path, now: datetime) -> dict:
    """Write the demo roster, import it and issue student invites: {"report": ..., "invites": [...]}."""
    write_demo_roster(directory)
    report = import_roster(engine, directory, DEMO_ADVISORY_MARKERS)
    invites = issue_invites(engine, now, DEMO_INVITE_VALID_DAYS)
    return {"report": report, "invites": invites}


def _write(path: Path, columns: tuple[str, ...], rows: list[tuple]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
