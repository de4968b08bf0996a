"""A district's OneRoster export of 200,000 users: how long its import takes and how much memory, in 1.1 and 1.2.

The district is what a SIS writes for a large district: one district org, 40 schools, and per
school about 95 % students, 4 % teachers (each advising a homeroom and teaching subject
sections), administrators and aides; names with accents, e-mails, grades. Every student is in a
homeroom (an advisory group here) and in `--subjects` subject sections. The same people are
written twice: as OneRoster 1.1 bulk CSV (the role and orgs in users.csv) and as 1.2 bulk CSV
(roles.csv and userProfiles.csv, the 1.2 columns of users.csv, manifest oneroster.version 1.2).

Each import runs in a fresh process (`--child`) on a database built by the migrations
beforehand, so the peak RSS is the importer's own (the interpreter and libraries included,
`base_rss_mb` is that part alone):

- first: the import into an empty database;
- again: the same files imported again (everything compared, nothing changes).

`--importer PATH` measures another roster.py (such as the one before a change, copied out of
git: `git show HEAD:core/school/roster.py > /tmp/roster_old.py`); a version it refuses is
reported as refused.

    python bench/roster.py                           # 200,000 users, 1.1 and 1.2, SQLite
    python bench/roster.py --users 20000 --versions 1.2
    python bench/roster.py --database-url postgresql://postgres@127.0.0.1:5432/test

Last line: key=value figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    del sys.path[0]  # run as a script, bench/calendar.py would stand in for the standard library's `calendar`

import argparse
import csv
import importlib.util
import json
import os
import random
import resource
import subprocess
import tempfile
import time
from contextlib import contextmanager
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
SCHOOLS = 40
MARKERS = {"homeroom"}
GIVEN = ("Sofía", "Mateo", "Ava", "Liam", "Valentina", "Noah", "Camila", "Ethan", "Zoë", "Björn", "Amélie", "Jürgen",
         "Chloé", "Iñaki", "Renée", "Luis", "Maya", "Olivia", "Oscar", "Priya", "Wei", "Aiyana", "Kwame", "Léa")
FAMILY = ("Hernández", "García", "Thompson", "Nguyen", "Rodríguez", "Patel", "Torres", "Brooks", "O'Brien",
          "Müller", "Lefèvre", "Kowalski", "Smith", "Johnson", "Okafor", "Whitfield", "Raman", "Dubois", "Núñez")
MODIFIED = "2026-08-20T12:00:00.000Z"
DOMAIN = "district.example"

USERS_11 = ("sourcedId", "status", "dateLastModified", "enabledUser", "orgSourcedIds", "role", "username", "userIds",
            "givenName", "familyName", "middleName", "identifier", "email", "sms", "phone", "agentSourcedIds",
            "grades", "password")
USERS_12 = ("sourcedId", "status", "dateLastModified", "enabledUser", "username", "userIds", "givenName",
            "familyName", "middleName", "identifier", "email", "sms", "phone", "agentSourcedIds", "grades",
            "password", "userMasterIdentifier", "resourceSourcedIds", "preferredGivenName", "preferredMiddleName",
            "preferredFamilyName", "primaryOrgSourcedId", "pronouns")
ROLES_12 = ("sourcedId", "status", "dateLastModified", "userSourcedId", "roleType", "role", "beginDate", "endDate",
            "orgSourcedId", "userProfileSourcedId")
PROFILES_12 = ("sourcedId", "status", "dateLastModified", "userSourcedId", "profileType", "vendorId",
               "applicationId", "description", "credentialType", "username", "password")
ORGS = ("sourcedId", "status", "dateLastModified", "name", "type", "identifier", "parentSourcedId")
CLASSES = ("sourcedId", "status", "dateLastModified", "title", "grades", "courseSourcedId", "classCode",
           "classType", "location", "schoolSourcedId", "termSourcedIds", "subjects")
CLASSES_12 = CLASSES + ("subjectCodes", "periods")
ENROLLMENTS = ("sourcedId", "status", "dateLastModified", "classSourcedId", "schoolSourcedId", "userSourcedId",
               "role", "primary", "beginDate", "endDate")
ROLE_12 = {"administrator": "siteAdministrator"}  # 1.2 names its administrators
SUBJECTS = ("Mathematics", "English Language Arts", "Science", "Social Studies", "Spanish", "Art", "Music", "PE")


def generate(directory: Path, users: int, subjects: int, version: str) -> None:
    """Write the district's export in `version` ("1.1" or "1.2") into `directory`; the same people either way."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(12)
    per_school = users // SCHOOLS
    orgs = [("org-district", "", "", "Example Unified School District", "district", "EUSD", "")]
    orgs += [(f"org-s{n:02}", "", "", f"School {n:02}", "school", f"S{n:02}", "org-district") for n in range(SCHOOLS)]
    people, classes, enrollments = [], [], []
    for school in range(SCHOOLS):
        org = f"org-s{school:02}"
        staff = max(4, per_school // 25)  # teachers: one homeroom of about 24 students each
        admins = max(1, per_school // 400)
        aides = max(1, per_school // 400)
        students = per_school - staff - admins - aides
        teacher_ids = [f"usr-{school:02}-t{n:04}" for n in range(staff)]
        for index, sourced_id in enumerate(teacher_ids):
            people.append((sourced_id, "teacher", org, ""))
            classes.append((f"cls-{school:02}-hr{index:04}", f"Homeroom {index}", "homeroom", org, ""))
            enrollments.append((f"enr-{school:02}-hr{index:04}-t", f"cls-{school:02}-hr{index:04}", org, sourced_id,
                                "teacher", "true"))
            for section in range(subjects):
                class_id = f"cls-{school:02}-sub{index:04}-{section}"
                subject = SUBJECTS[(index + section) % len(SUBJECTS)]
                classes.append((class_id, f"{subject} {section + 1}", "scheduled", org, subject))
                enrollments.append((f"enr-{class_id}-t", class_id, org, sourced_id, "teacher", "true"))
        people += [(f"usr-{school:02}-a{n:03}", "administrator", org, "") for n in range(admins)]
        people += [(f"usr-{school:02}-x{n:03}", "aide", org, "") for n in range(aides)]
        for n in range(students):
            sourced_id = f"usr-{school:02}-s{n:05}"
            people.append((sourced_id, "student", org, f"{6 + n % 7:02}"))
            homeroom = n % staff
            enrollments.append((f"enr-{school:02}-hr{homeroom:04}-s{n:05}", f"cls-{school:02}-hr{homeroom:04}", org,
                                sourced_id, "student", "false"))
            for section in range(subjects):
                teacher = (n * 7 + section * 13) % staff
                class_id = f"cls-{school:02}-sub{teacher:04}-{section}"
                enrollments.append((f"enr-{class_id}-s{n:05}", class_id, org, sourced_id, "student", "false"))
    _write(directory / "orgs.csv", ORGS, orgs)
    names = [(rng.choice(GIVEN), rng.choice(FAMILY)) for _ in people]
    if version == "1.1":
        _write(directory / "users.csv", USERS_11, (
            (sourced_id, "", "", "true", org, role, sourced_id, f"{{SIS:{sourced_id}}}", given, family, "",
             sourced_id.upper(), f"{sourced_id}@{DOMAIN}", "", "", "", grade, "")
            for (sourced_id, role, org, grade), (given, family) in zip(people, names)))
    else:
        _write(directory / "users.csv", USERS_12, (
            (sourced_id, "", "", "true", sourced_id, f"{{SIS:{sourced_id}}}", given, family, "", sourced_id.upper(),
             f"{sourced_id}@{DOMAIN}", "", "", "", grade, "", "", "", "", "", "", org, "")
            for (sourced_id, role, org, grade), (given, family) in zip(people, names)))
        _write(directory / "roles.csv", ROLES_12, (
            (f"rol-{sourced_id}", "", "", sourced_id, "primary", ROLE_12.get(role, role), "", "", org,
             f"prf-{sourced_id}")
            for sourced_id, role, org, _grade in people))
        _write(directory / "userProfiles.csv", PROFILES_12, (
            (f"prf-{sourced_id}", "", "", sourced_id, "SIS", "", "", "", "password", sourced_id, "")
            for sourced_id, _role, _org, _grade in people))
    columns = CLASSES if version == "1.1" else CLASSES_12
    extra = () if version == "1.1" else ("", "")
    _write(directory / "classes.csv", columns, (
        (class_id, "", "", title, "", f"crs-{class_id}", class_id.upper(), class_type, "", org, "term-2026", subject,
         *extra) for class_id, title, class_type, org, subject in classes))
    _write(directory / "enrollments.csv", ENROLLMENTS, (
        (sourced_id, "", "", class_id, org, user_id, role, primary, "2026-08-24", "2027-06-11")
        for sourced_id, class_id, org, user_id, role, primary in enrollments))
    files = ["orgs", "users", "classes", "enrollments"] + (["roles", "userProfiles"] if version == "1.2" else [])
    manifest = [("manifest.version", "1.0"), ("oneroster.version", version)]
    manifest += [(f"file.{name}", "bulk" if name in files else "absent")
                 for name in ("academicSessions", "categories", "classes", "classResources", "courses",
                              "courseResources", "demographics", "enrollments", "lineItems", "orgs", "resources",
                              "results", "users") + (("roles", "userProfiles") if version == "1.2" else ())]
    manifest += [("source.systemName", "Bench SIS"), ("source.systemCode", "bench")]
    _write(directory / "manifest.csv", ("propertyName", "value"), manifest)


def _write(path: Path, columns: tuple[str, ...], rows) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)


def peak_rss_mb() -> float:
    """This process's peak resident set size: VmHWM (since exec: ru_maxrss would keep the parent's, from the fork)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(url: str, directory: str, importer: str | None) -> None:
    """Import once (a child process) and print the figures as JSON."""
    from core.domain.db import make_engine

    if importer:
        spec = importlib.util.spec_from_file_location("roster_under_test", importer)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
    else:
        from core.school import roster as module
    engine = make_engine(url)
    base = peak_rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    try:
        report = module.import_roster(engine, Path(directory), MARKERS)
        outcome = {"people": report.people.created + report.people.updated + report.people.unchanged}
    except module.RosterError as error:
        outcome = {"refused": str(error)[:160]}
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(json.dumps({"seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2), "peak_rss_mb": round(peak_rss_mb()), "base_rss_mb": round(base), **outcome}))


@contextmanager
def scratch_database(url: str | None, folder: Path) -> Iterator[str]:
    """An empty database built by the migrations: a SQLite file, or a fresh schema in the PostgreSQL database `url`."""
    import secrets

    from sqlalchemy import make_url, text

    from core.domain.db import make_engine, upgrade

    if url is None:
        database = folder / "bench.db"
        database.unlink(missing_ok=True)
        scratch = f"sqlite:///{database}"
        engine = make_engine(scratch)
        upgrade(engine)
        engine.dispose()
        yield scratch
        return
    schema = f"bench_{secrets.token_hex(4)}"
    admin = make_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    scratch = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(False)
    engine = make_engine(scratch)
    upgrade(engine)
    engine.dispose()
    try:
        yield scratch
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def run_child(url: str, directory: Path, importer: str | None) -> dict:
    command = [sys.executable, __file__, "--child", str(directory), "--url", url]
    if importer:
        command += ["--importer", importer]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode != 0:
        return {"refused": f"crashed: {done.stderr.strip().splitlines()[-1][:160]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--subjects", type=int, default=1, help="subject sections each student is enrolled in")
    parser.add_argument("--versions", nargs="+", default=["1.1", "1.2"], choices=["1.1", "1.2"])
    parser.add_argument("--importer", default=None, help="another roster.py to measure (default: this tree's)")
    parser.add_argument("--database-url", default=None, help="a PostgreSQL URL (a scratch schema); default: SQLite")
    parser.add_argument("--child", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.url, args.child, args.importer)
        return
    sys.path.insert(0, str(ROOT))
    figures: dict[str, object] = {"users": args.users, "subjects": args.subjects,
                                  "database": "postgresql" if args.database_url else "sqlite",
                                  "importer": "this tree" if not args.importer else Path(args.importer).name}
    with tempfile.TemporaryDirectory() as folder:
        for version in args.versions:
            directory = Path(folder) / f"roster-{version}"
            generate(directory, args.users, args.subjects, version)
            size = sum(path.stat().st_size for path in directory.iterdir()) / 2**20
            tag = version.replace(".", "")
            figures[f"v{tag}_input_mb"] = round(size, 1)
            with scratch_database(args.database_url, Path(folder)) as url:
                first = run_child(url, directory, args.importer)
                again = run_child(url, directory, args.importer) if "refused" not in first else {}
            for name, result in (("first", first), ("again", again)):
                if not result:
                    continue
                print(f"{version} {name}: {json.dumps(result, ensure_ascii=False)}", flush=True)
                if "refused" in result:
                    figures[f"v{tag}_{name}"] = "refused"
                    continue
                figures[f"v{tag}_{name}_s"] = result["seconds"]
                figures[f"v{tag}_{name}_cpu_s"] = result["cpu_seconds"]
                figures[f"v{tag}_{name}_rss_mb"] = result["peak_rss_mb"]
                figures["base_rss_mb"] = result["base_rss_mb"]
    print(" ".join(f"{key}={value}" for key, value in figures.items()))


if __name__ == "__main__":
    main()
