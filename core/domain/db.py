"""Database engines and migrations: SQLite by default, PostgreSQL to scale out."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text

import migrations

MIGRATIONS_DIR = Path(migrations.__file__).parent
# SQLite copies its write-ahead log back into the database (a checkpoint, with an fsync) when the log reaches
# this many pages; at SQLite's default of 1,000 a committed message waited for one every hundred messages or so.
# 10,000 pages (40 MB of log at most) makes that ten times rarer; readers are not slowed at this size.
WAL_CHECKPOINT_PAGES = 10_000
# Any fixed 64-bit number will do, as long as every `serve` process waits on the same one ("companio" in ASCII).
MIGRATION_LOCK_KEY = 0x636F6D70616E696F


class OutOfDate(Exception):
    """The schema is not the one these migrations end at: migrating is the operator's call, so say how."""

    def __init__(self, current: tuple[str, ...], head: tuple[str, ...]):
        self.current, self.head = current, head
        super().__init__(f"the database schema is at revision {_revisions(current)} but this version of the "
                         f"companion needs {_revisions(head)}: run `companion db upgrade`")


def _revisions(names: tuple[str, ...]) -> str:
    return ", ".join(names) if names else "none (no migration has run)"


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and foreign keys."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record):
        """WAL lets readers run beside the writer; NORMAL sync is durable across a crash."""
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        cursor.close()

    return engine


def alembic_config(engine: Engine) -> Config:
    """An Alembic configuration that migrates `engine` with the scripts in `migrations/`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to `revision`: the only way any database here is built."""
    command.upgrade(alembic_config(engine), revision)


def revisions(engine: Engine) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(current, head): where the database is, and where the migrations end; reads only, creates nothing."""
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_heads()
    head = ScriptDirectory.from_config(alembic_config(engine)).get_heads()
    return tuple(sorted(current)), tuple(sorted(head))


def is_current(engine: Engine) -> bool:
    """Whether the schema is at the migrations' head, so the code and the tables agree."""
    current, head = revisions(engine)
    return current == head


def require_current(engine: Engine) -> None:
    """Raise `OutOfDate` unless the schema is at head: for commands that must not migrate behind the operator."""
    current, head = revisions(engine)
    if current != head:
        raise OutOfDate(current, head)


def upgrade_once(engine: Engine) -> None:
    """Upgrade for `serve`, where several processes start at once: one migrates, the others wait, then find it current.

    PostgreSQL: a session-level advisory lock, on a connection of its own in autocommit (no transaction is left
    open while the migration runs on another). SQLite: one file, and Alembic's own transaction is enough.
    """
    if engine.dialect.name != "postgresql":
        upgrade(engine)
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as lock:
        lock.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        try:
            if not is_current(engine):
                upgrade(engine)
        finally:
            lock.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
