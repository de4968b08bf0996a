"""Throughput of the durable conversation engine against python-telegram-bot's ConversationHandler.

Every student sends the same four messages as `../shared/bench/ptb_conversation.py` (/goal, the
goal, the obstacle, the if–then plan) through `Engine.handle`: each message is de-duplicated by
event id, its conversation row read and written, the goal stored and the reply queued in the
outbox, in one committed transaction on a SQLite file (or PostgreSQL). The peers run in the same invocation.

    python bench/conversation.py --students 1000 10000 100000
    python bench/conversation.py --students 10000 --database-url postgresql://postgres@127.0.0.1:5432/test

Last line: key=value figures (messages per second per student count, peak RSS, peers, ratios).
"""

from __future__ import annotations

import argparse
import re
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from core.domain import records
from core.domain.db import make_engine, upgrade
from core.engine.flow import Answers, Flow, Step, Text, Turn, plain_answers
from core.engine.pipeline import STAGES, Engine
from core.engine.registry import Command, Feature
from core.features import REGISTRY
from core.domain.messages import Inbound
from core.domain.store import Store
from nudges import scratch_database  # a SQLite file, or a scratch schema on PostgreSQL

PEERS = Path(__file__).resolve().parents[2] / "shared" / "bench"
MESSAGES = ("/goal", "finish 3 algebra units", "soccer practice", "do them at lunch")
NOW = datetime(2026, 11, 23, 14, 0, tzinfo=timezone.utc)


def store_goal(turn: Turn, plan: str) -> None:
    """The last answer completes the goal: it is stored with the same commit as the state."""
    records.insert_goal(turn.tx, turn.person_id, turn.week_start, {**plain_answers(turn.answers), "plan": plan},
                        turn.now)
    turn.say("goals/saved", goal=turn.answers.text, plan=plan, confidence=3, count=1, max=1)


@dataclass
class Goal(Answers):
    text: str | None = None
    obstacle: str | None = None


# The peer's three-state conversation, as a flow table of this engine.
GOAL = Flow("goal", answers=Goal, steps=(
    Step("goal", ask="goals/ask_goal", context=lambda turn: {"n": 1}, expect=Text(), save="text", then="obstacle"),
    Step("obstacle", ask="goals/ask_obstacle", expect=Text(), save="obstacle", then="plan"),
    Step("plan", ask="goals/ask_plan", context=lambda turn: {"obstacle": turn.answers.obstacle}, expect=Text(),
         effect=store_goal),
))


# The installed features plus this one, as `companion serve` would run them.
BENCH = REGISTRY.extended(Feature("bench", flows=(GOAL,), commands=(Command("goal", flow="goal"),), prompts=None))


def seed(engine, students: int) -> None:
    """A school with `students` linked students, written in bulk."""
    store = Store(engine)
    with store.transaction() as tx:
        stamp = tx.ts(NOW)

        def bulk(statement: str, rows) -> None:
            """One statement for many rows."""
            tx.cursor.executemany(store.sql(statement), list(rows))

        tx.execute("INSERT INTO school (id, sourced_id, name, timezone, locale) "
                   "VALUES (1, 's', 'Bench School', 'America/New_York', 'en')")
        bulk("INSERT INTO person (id, sourced_id, school_id, role, given_name, family_name, status, created_at, "
             "consent_at) VALUES (?, ?, 1, 'student', 'S', '', 'active', ?, ?)",
             ((n, f"p{n}", stamp, stamp) for n in range(1, students + 1)))
        bulk("INSERT INTO chatidentity (id, platform, external_id, chat_id, person_id, failed_attempts, unreachable, "
             "created_at) VALUES (?, 'bench', ?, ?, ?, 0, ?, ?)",
             ((n, str(n), str(n), n, False, stamp) for n in range(1, students + 1)))
        bulk("INSERT INTO conversation (person_id, answers, version, updated_at) VALUES (?, '{}', 0, ?)",
             ((n, stamp) for n in range(1, students + 1)))
        if tx.postgres:  # the ids above were given, not drawn: the sequences start past them
            for table in ("person", "chatidentity"):
                tx.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {students})")
    with store.transaction() as tx:
        tx.execute("ANALYZE")  # a school's database has statistics; a freshly bulk-loaded one not yet


def run_engine(students: int, batch: int, stages: dict[str, float] | None = None, database_url: str | None = None
               ) -> float:
    """Messages per second through the engine for `students` students, `batch` messages per commit.

    With `stages`, the engine adds the seconds each pipeline stage took to it (a slower run). Each run has
    a database of its own: a SQLite file, or a fresh schema of the PostgreSQL database `database_url`.
    """
    with scratch_database(database_url) as url:
        engine = make_engine(url)
        upgrade(engine)
        seed(engine, students)
        conversation = Engine(Store(engine), BENCH, clock=lambda: NOW)
        conversation.catalog.safety  # built before the first message, as `companion serve` does
        conversation.timings = stages
        inbound = [Inbound("bench", f"{uid}:{n}", str(uid), str(uid), text=text)
                   for uid in range(1, students + 1) for n, text in enumerate(MESSAGES)]
        started = time.perf_counter()
        if batch == 1:
            for message in inbound:
                conversation.handle(message)
        else:
            for start in range(0, len(inbound), batch):
                conversation.handle_many(inbound[start:start + batch])
        elapsed = time.perf_counter() - started
        with engine.connect() as check:
            goals = check.exec_driver_sql("SELECT COUNT(*) FROM goal").scalar()
            queued = check.exec_driver_sql("SELECT COUNT(*) FROM outbox").scalar()
        engine.dispose()
    if goals != students or queued != len(inbound):
        raise SystemExit(f"lost work: {goals} goals for {students} students, {queued} replies")
    return len(inbound) / elapsed


def run_peer(students: int, persist: bool) -> float | None:
    """python-telegram-bot's ConversationHandler on the same conversation, in a subprocess."""
    script = PEERS / "ptb_conversation.py"
    if not script.exists():
        return None
    out = subprocess.run([sys.executable, str(script), str(students), "1" if persist else "0"],
                         capture_output=True, text=True, check=True).stdout
    return float(re.search(r"updates_per_s=(\d+)", out).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--batch", type=int, default=50,
                        help="events per commit with Engine.handle_many (group commit); 1 = Engine.handle")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the median is quoted")
    parser.add_argument("--peer-students", type=int, default=10000, help="students for the in-memory peer")
    parser.add_argument("--pickle-students", type=int, default=2000,
                        help="students for the PicklePersistence peer (it rewrites its whole file on every "
                             "change, so larger counts take many minutes)")
    parser.add_argument("--database-url", default=None,
                        help="a PostgreSQL URL to measure there (a scratch schema per run); default: a SQLite file")
    args = parser.parse_args()

    figures: dict[str, float | int | str] = {"database": "postgresql" if args.database_url else "sqlite"}
    for students in args.students:
        for batch in sorted({args.batch, 1}, reverse=True):
            runs = [run_engine(students, batch, database_url=args.database_url) for _ in range(args.repeat)]
            figures[f"engine_batch{batch}_msgs_per_s_{students}"] = round(statistics.median(runs))
            print(f"engine students={students} batch={batch} msgs_per_s={[round(r) for r in runs]}", flush=True)
    figures["engine_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)

    # Where a message's time goes: one more run, each stage timed (the commit is outside every stage).
    stages: dict[str, float] = {}
    students = min(args.students)
    run_engine(students, 1, stages, args.database_url)
    for name in (*STAGES, "write"):
        figures[f"stage_{name}_us_per_msg"] = round(stages.get(name, 0.0) / (students * len(MESSAGES)) * 1e6, 1)
    print("stages (µs per message, batch=1): " + ", ".join(
        f"{name} {figures[f'stage_{name}_us_per_msg']}" for name in (*STAGES, "write")), flush=True)

    peers = {"ptb_memory": (args.peer_students, False), "ptb_pickle": (args.pickle_students, True)}
    for name, (students, persist) in peers.items():
        runs = [run_peer(students, persist) for _ in range(args.repeat if not persist else 1)]
        if None in runs:
            continue
        peer = statistics.median(runs)
        figures[f"{name}_msgs_per_s_{students}"] = round(peer)
        mine = figures.get(f"engine_batch{args.batch}_msgs_per_s_{students}")
        if mine is None:  # no engine run at the peer's size: compare with the nearest larger one
            mine = figures[f"engine_batch{args.batch}_msgs_per_s_{min(s for s in args.students if s >= students)}"] \
                if any(s >= students for s in args.students) else None
        if mine:
            figures[f"ratio_vs_{name}"] = round(mine / peer, 2)
            single = figures.get(f"engine_batch1_msgs_per_s_{students}")
            if single:
                figures[f"ratio_batch1_vs_{name}"] = round(single / peer, 2)
    smallest, largest = min(args.students), max(args.students)
    if largest != smallest:
        for batch in sorted({args.batch, 1}, reverse=True):
            figures[f"scaling_batch{batch}_{largest}_vs_{smallest}"] = round(
                figures[f"engine_batch{batch}_msgs_per_s_{largest}"] / figures[f"engine_batch{batch}_msgs_per_s_{smallest}"],
                2)
    print(" ".join(f"{key}={value}" for key, value in figures.items()))


if __name__ == "__main__":
    main()
