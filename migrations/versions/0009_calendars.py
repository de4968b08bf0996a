"""calendars as schools publish them: each event's source, and calendars remembered by URL

`calendarevent.source` says where a row came from: "roster" (academicSessions.csv), a calendar
file's name, or a calendar's URL. Each import replaces the rows of its own source, so the key
becomes (school, source, uid): the same UID may come from two calendars. Rows already there get
"" (from before sources were kept); the next calendar import takes them over.

`calendarfeed` remembers a calendar imported by URL; `serve` re-imports it daily, and a failed
fetch keeps the last good calendar (`last_error` says why).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-12 09:00:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

TEXT = sqlmodel.sql.sqltypes.AutoString
MOMENT = sqlmodel.sql.sqltypes.UTCDateTime
# SQLite keeps 0002's key unnamed: batch mode finds it by this name (PostgreSQL named it itself).
SQLITE_NAMES = {"uq": "uq_%(table_name)s_%(column_0_N_name)s"}


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.add_column('calendarevent', sa.Column('source', TEXT(), server_default='', nullable=False))
        op.drop_constraint('calendarevent_school_id_uid_key', 'calendarevent', type_='unique')
        op.create_unique_constraint('calendarevent_school_id_source_uid_key', 'calendarevent',
                                    ['school_id', 'source', 'uid'])
    else:
        with op.batch_alter_table('calendarevent', naming_convention=SQLITE_NAMES) as batch:
            batch.add_column(sa.Column('source', TEXT(), server_default='', nullable=False))
            batch.drop_constraint('uq_calendarevent_school_id_uid', type_='unique')
            batch.create_unique_constraint('uq_calendarevent_school_id_source_uid', ['school_id', 'source', 'uid'])
    op.create_table('calendarfeed',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('school_id', sa.Integer(), nullable=False),
    sa.Column('url', TEXT(), nullable=False),
    sa.Column('holidays', sa.Boolean(), nullable=False),
    sa.Column('next_fetch_at', MOMENT(), nullable=False),
    sa.Column('last_ok_at', MOMENT(), nullable=True),
    sa.Column('last_error', TEXT(), nullable=True),
    sa.Column('etag', TEXT(), nullable=True),
    sa.Column('last_modified', TEXT(), nullable=True),
    sa.Column('created_at', MOMENT(), nullable=False),
    sa.ForeignKeyConstraint(['school_id'], ['school.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('school_id', 'url')
    )
    with op.batch_alter_table('calendarfeed', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_calendarfeed_next_fetch_at'), ['next_fetch_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('calendarfeed', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_calendarfeed_next_fetch_at'))
    op.drop_table('calendarfeed')
    # The old key holds one row per school and UID: of rows that would share one, the first stays.
    op.execute("DELETE FROM calendarevent WHERE EXISTS (SELECT 1 FROM calendarevent o WHERE "
               "o.school_id = calendarevent.school_id AND o.uid = calendarevent.uid AND o.id < calendarevent.id)")
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_constraint('calendarevent_school_id_source_uid_key', 'calendarevent', type_='unique')
        op.drop_column('calendarevent', 'source')
        op.create_unique_constraint('calendarevent_school_id_uid_key', 'calendarevent', ['school_id', 'uid'])
    else:
        with op.batch_alter_table('calendarevent') as batch:
            batch.drop_constraint('uq_calendarevent_school_id_source_uid', type_='unique')
            batch.drop_column('source')
            batch.create_unique_constraint('uq_calendarevent_school_id_uid', ['school_id', 'uid'])
