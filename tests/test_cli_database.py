"""Who migrates: `db upgrade`, `chat` and `demo` build the schema, `serve` migrates once however many start
together, and every other command on an out-of-date database says to run `companion db upgrade`."""

from __future__ import annotations

import multiprocessing

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect

from bot.cli import main
from core.domain import db
from core.school.demo import write_demo_roster


def companion(database_url: str, *args: str):
    return CliRunner().invoke(main, ["--database-url", database_url, *args])


def tables(database_url: str) -> list[str]:
    engine = db.make_engine(database_url)
    try:
        return inspect(engine).get_table_names()
    finally:
        engine.dispose()


def at_head(database_url: str) -> bool:
    engine = db.make_engine(database_url)
    try:
        return db.is_current(engine)
    finally:
        engine.dispose()


@pytest.fixture
def roster(tmp_path):
    directory = tmp_path / "roster"
    write_demo_roster(directory)
    return directory


@pytest.mark.parametrize("command", [["roster", "import", "ROSTER"], ["schedule", "plan"], ["invites"]])
def test_other_commands_on_an_empty_database_say_to_upgrade_and_create_nothing(database_url, roster, command):
    result = companion(database_url, *[str(roster) if part == "ROSTER" else part for part in command])
    assert result.exit_code == 1
    assert "run `companion db upgrade`" in result.output
    assert "none (no migration has run)" in result.output  # the current revision, then the head it needs
    assert tables(database_url) == []


def test_after_db_upgrade_the_other_commands_work(database_url, roster):
    upgraded = companion(database_url, "db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    assert "database is up to date" in upgraded.output
    imported = companion(database_url, "roster", "import", str(roster))
    assert imported.exit_code == 0, imported.output
    planned = companion(database_url, "schedule", "plan")
    assert planned.exit_code == 0, planned.output
    assert "nudges planned or updated" in planned.output


def test_a_database_behind_the_head_names_both_revisions(database_url):
    engine = db.make_engine(database_url)
    db.upgrade(engine, "0001")
    current, head = db.revisions(engine)
    engine.dispose()
    assert current != head
    result = companion(database_url, "schedule", "plan")
    assert result.exit_code == 1
    assert f"at revision {current[0]}" in result.output and f"needs {head[0]}" in result.output


def test_demo_on_an_empty_database_builds_it_by_itself(database_url):
    result = companion(database_url, "demo")
    assert result.exit_code == 0, result.output
    assert "Invite codes" in result.output
    assert at_head(database_url)


def start_serving(database_url: str, barrier) -> None:
    """What `serve` does first, in a process of its own, released together with the others."""
    engine = db.make_engine(database_url)
    barrier.wait(timeout=60)
    db.upgrade_once(engine)
    engine.dispose()


def test_serve_processes_starting_together_migrate_once(request, database_url):
    if request.node.callspec.id != "postgresql":
        pytest.skip("the advisory lock is PostgreSQL's; one SQLite file is migrated in one transaction")
    # Without the lock, most of these fail creating the same tables (a duplicate pg_type row).
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(4)
    processes = [spawn.Process(target=start_serving, args=(database_url, barrier)) for _ in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0, 0, 0, 0]
    assert at_head(database_url)
