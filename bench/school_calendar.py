"""A district's calendar of 56 MB (200,000 events): how long its import takes, how much memory, and how soon a
broken file is refused.

The file is what a large district publishes: a year of athletics, clubs, meetings and concerts
(timed, in the district's VTIMEZONE, with locations and categories, as Google and
district CMS exports write them), a few weekly repeating events, and the school year's closures,
exam weeks, early dismissals, grading-period markers and term markers among them. Each import
runs in a fresh process (`--child`) on a fresh SQLite database built by the migrations, so the
peak RSS is the importer's own (the interpreter and libraries included).

- import: `import_calendar` on the 56 MB file, from the path (read event by event);
- first error: the same file with a typo in the first DTSTART from line 220 on: the import stops there;
- `--baseline` also times the whole-file reading this replaced (icalendar's Calendar.from_ical
  on the whole file, then walking its events), in its own process.

    python bench/school_calendar.py            # 200,000 events, about 56 MB
    python bench/school_calendar.py --events 20000 --baseline

Last line: key=value figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    del sys.path[0]  # run as a script, this file would stand in for the standard library's `calendar`

import argparse
import json
import os
import random
import subprocess
import tempfile
import time
from datetime import date, datetime, timedelta, timezone

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 23, 14, 0, tzinfo=timezone.utc)
FIRST_DAY = date(2026, 8, 24)
ERROR_LINE = 220

VTIMEZONE = """BEGIN:VTIMEZONE
TZID:America/New_York
BEGIN:DAYLIGHT
TZOFFSETFROM:-0500
TZOFFSETTO:-0400
TZNAME:EDT
DTSTART:19700308T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:-0400
TZOFFSETTO:-0500
TZNAME:EST
DTSTART:19701101T020000
RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU
END:STANDARD
END:VTIMEZONE
"""
SPORTS = ("Varsity Soccer", "JV Volleyball", "Cross Country", "Girls Basketball", "Boys Basketball", "Wrestling",
          "Swim & Dive", "Marching Band", "Robotics Club", "Chess Club", "Debate Team", "Drama Rehearsal",
          "PTA Meeting", "Site Council", "Math Olympiad", "Yearbook", "Art Club", "Choir Practice")
PLACES = ("Lakeside High School", "Northview Middle School", "Central Stadium", "District Office Board Room",
          "Riverside Elementary Gym", "Eastwood Aquatic Center")
SCHOOL_YEAR = (  # (title, first day, days, categories): what the importer is there to find
    ("First Day for Students", date(2026, 8, 24), 1, "school-event"),
    ("Labor Day - No School", date(2026, 9, 7), 1, "no-school"),
    ("End of 1st Quarter", date(2026, 10, 23), 1, "school-event"),
    ("Election Day - District Closed", date(2026, 11, 3), 1, "no-school"),
    ("Thanksgiving Recess", date(2026, 11, 25), 3, "no-school"),
    ("Early Dismissal LHS Only - Semester Chg", date(2026, 12, 4), 1, "early-release"),
    ("Semester 1 Final Exams", date(2026, 12, 14), 5, "exams"),
    ("End of 2nd Quarter", date(2026, 12, 18), 1, "school-event"),
    ("Winter Recess - Schools Closed", date(2026, 12, 21), 12, "no-school"),
    ("Martin Luther King Jr. Day", date(2027, 1, 18), 1, "no-school"),
    ("Presidents' Day", date(2027, 2, 15), 1, "no-school"),
    ("Spring Break", date(2027, 3, 22), 5, "no-school"),
    ("End of 3rd Quarter", date(2027, 3, 26), 1, "school-event"),
    ("Memorial Day", date(2027, 5, 31), 1, "no-school"),
    ("Last Day of School - Early Dismissal", date(2027, 6, 11), 1, "school-event"),
)


def write_calendar(path: Path, events: int, broken_from: int | None = None, seed: int = 11) -> tuple[int, int | None]:
    """Write a district calendar of `events` events to `path`, the first DTSTART from line `broken_from` on made
    unreadable; returns its size and the broken line."""
    rng = random.Random(seed)
    number, broken = 0, None
    with path.open("w", newline="", encoding="utf-8") as out:
        def put(text: str) -> None:
            nonlocal number, broken
            for line in text.splitlines():
                number += 1
                if broken_from and broken is None and number >= broken_from and line.startswith("DTSTART;"):
                    line, broken = line[:-8] + "-" + line[-8:-7] + " " + line[-7:], number  # a hand edit's typo
                out.write(line + "\r\n")

        put("BEGIN:VCALENDAR\nPRODID:-//Lakeside Unified School District//District Calendar//EN\nVERSION:2.0\n"
            "CALSCALE:GREGORIAN\nMETHOD:PUBLISH\nX-WR-CALNAME:LUSD All Events 2026-27\n"
            "X-WR-TIMEZONE:America/New_York\n")
        put(VTIMEZONE)
        marked = {rng.randrange(20, events - 20): entry for entry in SCHOOL_YEAR}
        for n in range(events):
            if n in marked:
                title, first, days, category = marked[n]
                put(f"BEGIN:VEVENT\nDTSTART;VALUE=DATE:{first:%Y%m%d}\n"
                    f"DTEND;VALUE=DATE:{first + timedelta(days=days):%Y%m%d}\nDTSTAMP:20260801T120000Z\n"
                    f"UID:lusd-{n}@lusd.example.org\nCATEGORIES:{category}\nSUMMARY:{title}\nEND:VEVENT\n")
                continue
            day = FIRST_DAY + timedelta(days=rng.randrange(0, 300))
            hour = rng.choice((7, 15, 16, 17, 18, 19))
            what, place = rng.choice(SPORTS), rng.choice(PLACES)
            repeat = "RRULE:FREQ=WEEKLY;COUNT=30\n" if n % 1000 == 0 else ""
            if n % 5000 == 0:  # a classified repeating event: a weekly early release
                what, repeat = "Early Release Wednesday", "RRULE:FREQ=WEEKLY;BYDAY=WE;COUNT=36\nEXDATE;TZID=" \
                    f"America/New_York:{day + timedelta(days=70):%Y%m%d}T{hour:02d}0000\n"
            put(f"BEGIN:VEVENT\nDTSTART;TZID=America/New_York:{day:%Y%m%d}T{hour:02d}0000\n"
                f"DTEND;TZID=America/New_York:{day:%Y%m%d}T{hour + 2:02d}0000\n{repeat}DTSTAMP:20260801T120000Z\n"
                f"UID:{n}-{rng.getrandbits(32):08x}@lusd.example.org\n"
                f"CATEGORIES:{'Athletics' if n % 3 else 'Clubs & Activities'}\n"
                f"SUMMARY:{what} vs {rng.choice(PLACES).split()[0]} ({n})\nLOCATION:{place}\nEND:VEVENT\n")
        put("END:VCALENDAR\n")
    return path.stat().st_size, broken


def child(path: str, mode: str) -> None:
    """Run one import (or the whole-file baseline) and print its figures as JSON."""
    import resource

    sys.path.insert(0, str(ROOT))
    if mode == "baseline":
        import icalendar

        started = time.perf_counter()
        calendar = icalendar.Calendar.from_ical(Path(path).read_bytes())
        count = sum(1 for _ in calendar.walk("VEVENT"))
        result = {"seconds": time.perf_counter() - started, "events": count}
    else:
        from core.domain.db import make_engine, upgrade
        from core.domain.models import School
        from core.school.calendar import CalendarError, import_calendar
        from sqlmodel import Session

        database = Path(tempfile.mkdtemp()) / "bench.db"
        engine = make_engine(f"sqlite:///{database}")
        upgrade(engine)
        with Session(engine) as session:
            session.add(School(sourced_id="lusd-lhs", name="Lakeside High School", timezone="America/New_York"))
            session.commit()
        started = time.perf_counter()
        try:
            report = import_calendar(engine, Path(path), NOW, source="district.ics")
            result = {"seconds": time.perf_counter() - started, "events": report.events, "rows": len(report.rows),
                      "first": report.lines()[0]}
        except CalendarError as error:
            result = {"seconds": time.perf_counter() - started, "error": str(error)}
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps(result))


def run_child(path: Path, mode: str) -> dict:
    output = subprocess.run([sys.executable, __file__, "--child", str(path), mode], check=True, capture_output=True,
                            text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--baseline", action="store_true", help="also time icalendar reading the whole file at once")
    parser.add_argument("--keep", type=Path, default=None, help="write the files into this folder and keep them")
    parser.add_argument("--child", nargs=2, metavar=("FILE", "MODE"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        child(*arguments.child)
        return
    folder = arguments.keep or Path(tempfile.mkdtemp())
    folder.mkdir(parents=True, exist_ok=True)
    good, broken = folder / "district.ics", folder / "district-broken.ics"
    size, _ = write_calendar(good, arguments.events)
    _, error_line = write_calendar(broken, arguments.events, broken_from=ERROR_LINE)
    print(f"{arguments.events} events, {size / 1e6:.1f} MB ({good})")
    imported = run_child(good, "import")
    print(f"import: {imported['seconds']:.1f} s, peak RSS {imported['peak_rss_mb']:.0f} MB — {imported['first']}")
    refused = run_child(broken, "import")
    print(f"first error (line {error_line}): {refused['seconds'] * 1000:.0f} ms, peak RSS "
          f"{refused['peak_rss_mb']:.0f} MB — {refused['error']}")
    figures = {"events": arguments.events, "mb": round(size / 1e6, 1), "import_s": round(imported["seconds"], 2),
               "import_peak_rss_mb": round(imported["peak_rss_mb"]), "rows": imported["rows"],
               "first_error_line": error_line, "first_error_ms": round(refused["seconds"] * 1000),
               "first_error_peak_rss_mb": round(refused["peak_rss_mb"])}
    if arguments.baseline:
        baseline = run_child(good, "baseline")
        print(f"baseline, icalendar on the whole file: {baseline['seconds']:.1f} s, peak RSS "
              f"{baseline['peak_rss_mb']:.0f} MB")
        figures.update(baseline_s=round(baseline["seconds"], 2), baseline_peak_rss_mb=round(baseline["peak_rss_mb"]))
    if arguments.keep is None:
        for path in (good, broken):
            path.unlink()
    print(" ".join(f"{key}={value}" for key, value in figures.items()))


if __name__ == "__main__":
    main()
