"""issue 7: SQLite keeps the handled event ids in their key's own b-tree

Every inbound event inserts one row into `inboundevent`. A table with a composite primary key keeps
its rows under a hidden rowid plus a separate index for the key: two b-trees written per event.
`WITHOUT ROWID` stores the rows in the key's b-tree alone. PostgreSQL has no rowid: unchanged.

Revision ID: 0020
Revises: 0017
Create Date: 2026-12-02 18:20:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0020'
down_revision = '0017'
branch_labels = None
depends_on = None

TEXT = sqlmodel.sql.sqltypes.AutoString
MOMENT = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        _rebuild_events(with_rowid=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        _rebuild_events(with_rowid=True)


def _rebuild_events(with_rowid: bool) -> None:
    """SQLite cannot change how a table is stored: it is built anew and its rows copied."""
    op.create_table('inboundevent_new',
    sa.Column('platform', TEXT(), nullable=False),
    sa.Column('bot', TEXT(), server_default='', nullable=False),
    sa.Column('event_id', TEXT(), nullable=False),
    sa.Column('received_at', MOMENT(), nullable=False),
    sa.PrimaryKeyConstraint('platform', 'bot', 'event_id'),
    sqlite_with_rowid=with_rowid,
    )
    op.execute("INSERT INTO inboundevent_new (platform, bot, event_id, received_at) "
               "SELECT platform, bot, event_id, received_at FROM inboundevent")
    op.drop_table('inboundevent')
    op.rename_table('inboundevent_new', 'inboundevent')
