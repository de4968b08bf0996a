"""A week of nudges for many students, from the database, against python-telegram-bot's JobQueue.

Students in a dozen time zones (both sides of the date line, half- and quarter-hour offsets) with
assorted preferred times. Measured in a fresh process so the figures are the scheduler's own:

- plan: `plan_week` writes every student's nudges for the week (one INSERT … SELECT per 10,000 students);
- claim: the week replayed hour by hour, each hour's due nudges claimed in batches of 2,000 as a
  sweep does (timed: the claiming statements; then, untimed, marked sent so they are not claimed
  again);
- send: a sample of nudges swept end to end (claimed, the student's details loaded, the flow
  opened through the conversation engine, the outbox row queued, the nudge marked sent).

The peer, `../shared/bench/ptb_jobqueue.py`, schedules one in-memory JobQueue job per student in
the same run (`--no-peer` leaves it out: at a million students it is not needed). The students are
written by set-based SQL, so a million are seeded in seconds. Last line: key=value figures.

    python bench/nudges.py --students 100000
    python bench/nudges.py --students 100000 --database-url postgresql://postgres@127.0.0.1:5432/test
    python bench/nudges.py --students 1000000 --no-peer --database-url postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
PEER = ROOT.parent / "shared" / "bench" / "ptb_jobqueue.py"
MONDAY = date(2026, 11, 23)
NOW = datetime(2026, 11, 22, 0, 0, tzinfo=timezone.utc)  # planned the Sunday before, in UTC
ZONES = ("Pacific/Auckland", "Pacific/Chatham", "Asia/Kolkata", "Asia/Kathmandu", "Europe/Madrid", "Europe/London",
         "America/Sao_Paulo", "America/New_York", "America/Chicago", "America/Los_Angeles", "Pacific/Honolulu",
         "Pacific/Pago_Pago")
PREFERRED = (None, "07:30", "15:30", "16:45", "19:00", "22:30")  # None: the default, 15:30


def seed(url: str, students: int) -> None:
    """A school with `students` linked students in mixed zones, written by set-based SQL (a million in seconds)."""
    from core.domain.db import make_engine, upgrade
    from core.domain.store import Store

    engine = make_engine(url)
    upgrade(engine)
    store = Store(engine)
    zones = ", ".join(f"({k}, '{zone}')" for k, zone in enumerate(ZONES))
    preferred = ", ".join(f"({k}, {repr(at) if at else 'NULL'})" for k, at in enumerate(PREFERRED))
    with store.transaction() as tx:
        stamp = tx.ts(NOW)

        def numbered(statement: str, *params) -> None:
            """`statement` (an INSERT … SELECT reading n from `numbers`) for n = 1 … students."""
            tx.execute("WITH RECURSIVE numbers(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM numbers WHERE n < ?) "
                       + statement, (students, *params))

        tx.execute("INSERT INTO school (id, sourced_id, name, timezone, locale) "
                   "VALUES (1, 's', 'Bench School', 'America/New_York', 'en')")
        numbered("INSERT INTO person (id, sourced_id, school_id, role, given_name, family_name, timezone, status, "
                 "created_at, consent_at) SELECT n, 'p' || n, 1, 'student', 'S', '', z.column2, 'active', ?, ? "
                 f"FROM numbers JOIN (VALUES {zones}) z ON z.column1 = n % {len(ZONES)}", stamp, stamp)
        numbered("INSERT INTO learnerprofile (person_id, checkin_time, updated_at) SELECT n, t.column2, ? "
                 f"FROM numbers JOIN (VALUES {preferred}) t ON t.column1 = (n / {len(ZONES)}) % {len(PREFERRED)}",
                 stamp)
        numbered("INSERT INTO chatidentity (id, platform, external_id, chat_id, person_id, failed_attempts, "
                 "unreachable, created_at) SELECT n, 'bench', '' || n, '' || n, n, 0, ?, ? FROM numbers", False, stamp)
        numbered("INSERT INTO conversation (person_id, answers, version, updated_at) SELECT n, '{}', 0, ? "
                 "FROM numbers", stamp)
    with store.transaction() as tx:
        tx.execute("ANALYZE")  # a school's database has statistics; a freshly bulk-loaded one not yet
    engine.dispose()


@contextmanager
def scratch_database(url: str | None) -> Iterator[str]:
    """An empty database: a SQLite file in a temporary folder, or a fresh schema in the PostgreSQL database `url`."""
    if url is None:
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/bench.db"
        return
    from sqlalchemy import make_url, text

    from core.domain.db import make_engine

    schema = f"bench_{secrets.token_hex(4)}"
    admin = make_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield make_url(url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def measure(url: str, sample: int) -> None:
    """Plan and claim the week, then send a sample through the engine; prints key=value (a child process)."""
    from core.schedule import policy as schedule
    from core.domain.db import make_engine
    from core.domain.store import Store
    from core.engine.pipeline import Engine
    from core.features import REGISTRY

    engine = make_engine(url)
    store = Store(engine)
    with store.transaction() as tx:  # genius hour's weekly project check-in too (off by default), on Friday
        REGISTRY.settings.set(tx, 1, "genius_hour_day", "friday", NOW)
    started = time.perf_counter()
    planned = schedule.plan_week(store, REGISTRY, MONDAY, NOW)
    planned_s = time.perf_counter() - started
    claimed, claim_s, moment, end = 0, 0.0, NOW, NOW + timedelta(days=8)
    while moment <= end:  # the week as hourly sweeps would see it
        while True:
            started = time.perf_counter()
            batch = schedule.claim(store, moment, "bench", 2000)
            claim_s += time.perf_counter() - started
            if not batch:
                break
            claimed += len(batch)
            with store.transaction() as tx:  # delivered (sending is measured below), so never reclaimed
                tx.execute(f"UPDATE nudge SET status = 'sent' WHERE id IN ({', '.join('?' * len(batch))})", batch)
        moment += timedelta(hours=1)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with store.transaction() as tx:  # put a sample back to planned, due now, to send it for real
        # Quiet hours and class time off: at any one UTC moment it is night somewhere in this school.
        for key in ("quiet_hours.start", "quiet_hours.end", "class_time.start", "class_time.end"):
            REGISTRY.settings.set(tx, 1, key, "00:00", NOW)
        tx.execute("UPDATE nudge SET status = 'planned', claimed_at = NULL, due_at = ?, expires_at = ? "
                   f"WHERE id IN (SELECT id FROM nudge WHERE kind = 'goals' ORDER BY id LIMIT {int(sample)})",
                   (tx.ts(NOW), tx.ts(NOW + timedelta(hours=1))))
    conversation = Engine(store, REGISTRY, clock=lambda: NOW)
    started = time.perf_counter()
    sent = schedule.total(schedule.sweep_until_idle(store, conversation, NOW, "bench", 500)).sent
    send_s = time.perf_counter() - started
    print(f"planned={planned} plan_s={planned_s:.3f} claimed={claimed} claim_s={claim_s:.3f} "
          f"plan_claim_rss_mb={rss_mb:.0f} sent={sent} send_per_s={sent / send_s:.0f}")


def figures_of(line: str) -> dict[str, str]:
    """key=value pairs of a line."""
    return dict(re.findall(r"(\w+)=([\w.]+)", line))


def main() -> None:
    """Seed, measure in a child process, run the peer, print the figures and ratios."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=100000)
    parser.add_argument("--sample", type=int, default=5000, help="nudges sent through the engine for send_per_s")
    parser.add_argument("--database-url", default=None,
                        help="a PostgreSQL URL to measure there (in a scratch schema); default: a SQLite file")
    parser.add_argument("--no-peer", action="store_true", help="leave out python-telegram-bot's JobQueue")
    parser.add_argument("--measure", metavar="URL", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.measure:
        measure(args.measure, args.sample)
        return
    with scratch_database(args.database_url) as url:
        seed(url, args.students)
        child = subprocess.run([sys.executable, __file__, "--measure", url, "--sample", str(args.sample)],
                               capture_output=True, text=True, check=True, cwd=ROOT,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    line = child.stdout.strip().splitlines()[-1]
    print(line, flush=True)
    ours = figures_of(line)
    figures = {"students": args.students, "database": "postgresql" if args.database_url else "sqlite", **ours,
               "plan_claim_s": round(float(ours["plan_s"]) + float(ours["claim_s"]), 3)}
    if PEER.exists() and not args.no_peer:
        peer = subprocess.run([sys.executable, str(PEER), str(args.students)], capture_output=True, text=True,
                              check=True).stdout
        print(peer.strip(), flush=True)
        theirs = figures_of(peer)
        figures["ptb_schedule_s"] = float(theirs["schedule_s"])
        figures["ptb_rss_mb"] = int(theirs["maxrss_mb"])
        figures["ratio_time_ptb_vs_ours"] = round(figures["ptb_schedule_s"] / figures["plan_claim_s"], 1)
        figures["ratio_rss_ptb_vs_ours"] = round(figures["ptb_rss_mb"] / float(ours["plan_claim_rss_mb"]), 1)
    print(" ".join(f"{key}={value}" for key, value in figures.items()))


if __name__ == "__main__":
    main()
