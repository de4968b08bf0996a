"""Every adviser's weekly digest, text and chart, for a district: 4,000 advisers × 29 students, eight weeks of history.

Seeded in bulk with plain SQL (goals each week, reviews, weekly reflections, low confidence, help requests,
silent flags, blocked bots, open alerts), then built as the scheduler builds them, minus the sending:
`core.features.advisers.digest.compose` (the triage, the highlights, the class figures and the chart PNG)
and every message rendered to text. The advisers are split between worker processes (the chart is
drawn with one reused matplotlib figure per process; this process builds one share); peak RSS is summed over
the processes.
Last line: key=value figures.

    python bench/digest.py --advisers 4000
    python bench/digest.py --advisers 4000 --database-url postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import random
import resource
import secrets
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MONDAY = date(2026, 11, 23)
NOW = datetime(2026, 11, 23, 12, 30, tzinfo=timezone.utc)
CATEGORIES = ("content_knowledge", "cognitive_skills", "habits_of_success", "sense_of_purpose")


def seed(url: str, advisers: int, students: int, weeks: int) -> None:
    """The district, written in bulk."""
    from core.domain.db import make_engine, upgrade
    from core.domain.store import Store

    engine = make_engine(url)
    upgrade(engine)
    store = Store(engine)
    pick = random.Random(16)
    rows = 0
    with store.transaction() as tx:
        stamp = tx.ts(NOW)

        def bulk(statement: str, values: list[tuple]) -> None:
            nonlocal rows
            tx.cursor.executemany(store.sql(statement), values)
            rows += len(values)

        bulk("INSERT INTO school (id, sourced_id, name, timezone, locale) VALUES (?, ?, ?, ?, ?)",
             [(1, "district", "District", "America/New_York", "en")])
        people, members, groups, identities, profiles = [], [], [], [], []
        goals, reviews, reflections, flags, helps, alerts = [], [], [], [], [], []
        goal_id = 0
        for a in range(advisers):
            adviser = a * (students + 1) + 1
            people.append((adviser, f"a{adviser}", 1, "adviser", f"Adviser{a}", "Teacher", "active", None, stamp))
            groups.append((a + 1, f"g{a}", 1, f"Advisory {a}"))
            members.append((a + 1, adviser, "adviser"))
            identities.append(("console", f"acct-{adviser}", f"acct-{adviser}", adviser, 0, False, stamp))
            for k in range(students):
                sid = adviser + 1 + k
                people.append((sid, f"s{sid}", 1, "student", f"Student{k}", f"Family{a}x{k}", "active", stamp, stamp))
                members.append((a + 1, sid, "student"))
                identities.append(("console", f"acct-{sid}", f"acct-{sid}", sid, 0, pick.random() < 0.02, stamp))
                profiles.append((sid, "drawing, soccer", "fractions", "music and robots", "engineer", stamp))
                streak = 0
                for w in range(weeks):
                    week = MONDAY - timedelta(weeks=weeks - 1 - w)
                    for _ in range(pick.choice((1, 1, 2))):
                        goal_id += 1
                        status = "open" if w == weeks - 1 else pick.choice(("done", "done", "partly", "not_yet",
                                                                             "carried", "open"))
                        goals.append((goal_id, sid, tx.day(week), f"goal {goal_id}", pick.choice(CATEGORIES),
                                      pick.choice((1, 2, 3, 4, 4, 5)), status, stamp, stamp))
                        if status != "open":
                            reviews.append((goal_id, sid, status, tx.ts(datetime.combine(
                                week + timedelta(days=4), datetime.min.time(), timezone.utc))))
                    if pick.random() < 0.6:
                        streak += 1
                        reflections.append((sid, "week", tx.day(week), "a good week", stamp))
                    if pick.random() < 0.05:
                        flags.append((sid, "no_response", "{}", tx.ts(datetime.combine(
                            week + timedelta(days=1), datetime.min.time(), timezone.utc))))
                if pick.random() < 0.05:
                    helps.append((sid, "I am stuck", "open", tx.ts(NOW - timedelta(days=pick.randint(0, 20)))))
                if pick.random() < 0.005:
                    alerts.append((sid, "bullying", "they push me", stamp, 0))
        bulk("INSERT INTO person (id, sourced_id, school_id, role, given_name, family_name, status, consent_at, "
             "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", people)
        bulk("INSERT INTO advisorygroup (id, sourced_id, school_id, title) VALUES (?, ?, ?, ?)", groups)
        bulk("INSERT INTO advisorymember (group_id, person_id, role) VALUES (?, ?, ?)", members)
        bulk("INSERT INTO chatidentity (platform, external_id, chat_id, person_id, failed_attempts, unreachable, "
             "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)", identities)
        bulk("INSERT INTO learnerprofile (person_id, strengths, needs, interests, aim, updated_at) "
             "VALUES (?, ?, ?, ?, ?, ?)", profiles)
        bulk("INSERT INTO goal (id, person_id, week_start, text, category, confidence, status, created_at, updated_at) "
             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", goals)
        bulk("INSERT INTO goalreview (goal_id, person_id, status, created_at) VALUES (?, ?, ?, ?)", reviews)
        bulk("INSERT INTO reflection (person_id, kind, week_start, text, created_at) VALUES (?, ?, ?, ?, ?)",
             reflections)
        bulk("INSERT INTO flag (person_id, kind, detail, created_at) VALUES (?, ?, ?, ?)", flags)
        bulk("INSERT INTO helprequest (person_id, text, status, created_at) VALUES (?, ?, ?, ?)", helps)
        bulk("INSERT INTO safetyalert (person_id, category, text, created_at, escalations) VALUES (?, ?, ?, ?, ?)",
             alerts)
        if tx.postgres:
            for table in ("person", "advisorygroup", "goal"):
                tx.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))")
    if store.postgres:
        with store.transaction() as tx:  # statistics, as autovacuum would gather them soon after such a load
            tx.execute("ANALYZE")
    engine.dispose()
    print(f"seeded {rows:,} rows", flush=True)


def build(url: str, advisers: list[int], results: multiprocessing.Queue) -> None:
    """Build these advisers' digests (text and chart) in this process; report the time of each and the peak RSS."""
    from core.domain.db import make_engine
    from core.domain.store import Store
    from core.features import REGISTRY
    from core.features.advisers.digest import compose

    engine = make_engine(url)
    store, catalog = Store(engine), REGISTRY.catalog
    times, characters, chart_bytes = [], 0, 0
    for adviser in advisers:
        started = time.perf_counter()
        with store.transaction() as tx:
            digest = compose(tx, REGISTRY, catalog, adviser, MONDAY, "en", "Adviser")
        characters += sum(len(catalog.render(message, "en").text) for message in digest.messages)
        chart_bytes += len(digest.png or b"")
        times.append(time.perf_counter() - started)
    engine.dispose()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    results.put((times, characters, chart_bytes, usage.ru_maxrss, usage.ru_utime + usage.ru_stime))


def run_statement(url: str, statement: str) -> None:
    """One administrative statement (the bench's own schema), in a process of its own."""
    from sqlalchemy import create_engine

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(statement)
    engine.dispose()


def administer(context, url: str, statement: str) -> None:
    """Run `statement` in a spawned process: like the seed, the bench's scaffolding is not the digest's memory."""
    process = context.Process(target=run_statement, args=(url, statement))
    process.start()
    process.join()
    if process.exitcode:
        raise SystemExit(f"{statement!r} failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--advisers", type=int, default=4000)
    parser.add_argument("--students", type=int, default=29)
    parser.add_argument("--weeks", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="processes building digests side by side")
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file; PostgreSQL: a fresh schema")
    parser.add_argument("--seeded", action="store_true",
                        help="the SQLite file --database-url names holds the district from an earlier run: build only")
    args = parser.parse_args()
    schema = None
    context = multiprocessing.get_context("spawn")  # a clean interpreter each: no inherited figure or connection
    if args.database_url and args.database_url.startswith("postgresql"):
        schema = f"bench_{secrets.token_hex(4)}"
        administer(context, args.database_url, f"CREATE SCHEMA {schema}")
        joiner = "&" if "?" in args.database_url else "?"
        url = f"{args.database_url}{joiner}options=-csearch_path%3D{schema}"
    else:
        url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/digest.db"
    try:
        started = time.perf_counter()
        if not args.seeded:  # in its own process: the seed's bulk rows are not the digest's memory
            seeder = context.Process(target=seed, args=(url, args.advisers, args.students, args.weeks))
            seeder.start()
            seeder.join()
            if seeder.exitcode:
                raise SystemExit("seeding failed")
        seeded = time.perf_counter() - started
        print(f"seeded in {seeded:.1f}s: {url}", flush=True)
        ids = [a * (args.students + 1) + 1 for a in range(args.advisers)]
        results: multiprocessing.Queue = context.Queue()
        # This process builds the first share itself (a process that only waited would cost its memory for nothing);
        # each further worker builds another.
        workers = [context.Process(target=build, args=(url, ids[n::args.workers], results))
                   for n in range(1, args.workers)]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        build(url, ids[0::args.workers], results)
        reports = []
        while len(reports) < args.workers:  # a worker that died says nothing: stop rather than wait forever
            try:
                reports.append(results.get(timeout=5))
            except queue.Empty:
                if any(worker.exitcode not in (None, 0) for worker in workers):
                    raise SystemExit("a worker failed; see its traceback above")
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - started
    finally:
        if schema:
            administer(context, args.database_url, f"DROP SCHEMA {schema} CASCADE")
    times = sorted(t for report in reports for t in report[0])
    # every builder, this process among them (the seeder, done before the builders start, is left out)
    rss_mb = sum(report[3] for report in reports) / 1024
    database = "postgresql" if schema else "sqlite"
    cpu = sum(report[4] for report in reports)  # the builders' own CPU seconds: what the load of a shared machine hides
    print(f"{database}: the builders used {cpu:.1f} CPU seconds ({cpu / len(times) * 1000:.1f} ms per adviser, "
          f"imports and start-up included): {cpu / args.workers:.1f}s of wall time on {args.workers} idle cores; "
          f"load average now {os.getloadavg()[0]:.1f}")
    print(f"{database}: built {len(times):,} digests (text + chart) in "
          f"{elapsed:.1f}s with {args.workers} processes; per adviser p50 {statistics.median(times) * 1000:.0f} ms, "
          f"p95 {times[int(len(times) * 0.95) - 1] * 1000:.0f} ms; peak RSS {rss_mb:.0f} MB summed")
    print(f"database={database} advisers={len(times)} students={args.students} weeks={args.weeks} "
          f"workers={args.workers} seconds={elapsed:.1f} per_adviser_ms={elapsed / len(times) * 1000 * args.workers:.1f} "
          f"p50_ms={statistics.median(times) * 1000:.1f} cpu_seconds={cpu:.1f} peak_rss_mb={rss_mb:.0f} "
          f"chart_kb={sum(r[2] for r in reports) / len(times) / 1024:.1f}")


if __name__ == "__main__":
    main()
