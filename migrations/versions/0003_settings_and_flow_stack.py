"""typed school settings replace the schoolschedule row; the conversation keeps a flow stack

Each schoolschedule column becomes a key of the settings registry (one schoolsetting row per
value a school changed; the old row's defaults are simply not copied). The conversation's one
suspended flow becomes the first set-aside entry of its stack.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 02:30:00
"""
import json
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

TEXT = sqlmodel.sql.sqltypes.AutoString
MOMENT = sqlmodel.sql.sqltypes.UTCDateTime
WEEKDAY_KEYS = {'goals_day': 'goals.day', 'checkin_day': 'checkin.day', 'review_day': 'review.day'}
CLOCK_KEYS = {'quiet_start': 'quiet_hours.start', 'quiet_end': 'quiet_hours.end', 'class_start': 'class_time.start',
              'class_end': 'class_time.end'}
# The defaults of migration 0002: a value equal to its default is not copied.
DEFAULTS = {'goals_day': 0, 'checkin_day': None, 'review_day': 4, 'quiet_start': '21:00', 'quiet_end': '07:00',
            'class_start': '08:00', 'class_end': '15:00', 'weekly_cap': 3, 'followup_hours': 24, 'grace_hours': 6}


def upgrade() -> None:
    settings = op.create_table('schoolsetting',
    sa.Column('school_id', sa.Integer(), nullable=False),
    sa.Column('key', TEXT(), nullable=False),
    sa.Column('value', TEXT(), nullable=False),
    sa.Column('updated_at', MOMENT(), nullable=False),
    sa.ForeignKeyConstraint(['school_id'], ['school.id'], ),
    sa.PrimaryKeyConstraint('school_id', 'key')
    )
    connection = op.get_bind()
    now = datetime.now(timezone.utc)
    rows = []
    for old in connection.execute(sa.text('SELECT * FROM schoolschedule')).mappings():
        for column, default in DEFAULTS.items():
            value = old[column]
            if value == default:
                continue
            if column in WEEKDAY_KEYS:
                rows.append((old['school_id'], WEEKDAY_KEYS[column], value))
            elif column in CLOCK_KEYS:
                rows.append((old['school_id'], CLOCK_KEYS[column], value))
            elif column == 'weekly_cap':
                rows.append((old['school_id'], 'nudges.weekly_cap', value))
            else:
                key = 'nudges.followup_after' if column == 'followup_hours' else 'nudges.grace'
                rows.append((old['school_id'], key, value * 3600))
    if rows:
        op.bulk_insert(settings, [{'school_id': school, 'key': key, 'value': json.dumps(value), 'updated_at': now}
                                  for school, key, value in rows])
    op.drop_table('schoolschedule')

    with op.batch_alter_table('conversation') as batch:
        batch.add_column(sa.Column('stack', TEXT(), nullable=True))
    for person_id, suspended in connection.execute(
            sa.text('SELECT person_id, suspended FROM conversation WHERE suspended IS NOT NULL')).all():
        frame = {**json.loads(suspended), 'at': now.isoformat()}
        connection.execute(sa.text('UPDATE conversation SET stack = :stack WHERE person_id = :person'),
                           {'stack': json.dumps({'below': [], 'aside': [frame], 'queued': []}), 'person': person_id})
    with op.batch_alter_table('conversation') as batch:
        batch.drop_column('suspended')


def downgrade() -> None:
    with op.batch_alter_table('conversation') as batch:
        batch.add_column(sa.Column('suspended', TEXT(), nullable=True))
        batch.drop_column('stack')
    op.create_table('schoolschedule',
    sa.Column('school_id', sa.Integer(), nullable=False),
    sa.Column('goals_day', sa.Integer(), nullable=True),
    sa.Column('checkin_day', sa.Integer(), nullable=True),
    sa.Column('review_day', sa.Integer(), nullable=True),
    sa.Column('quiet_start', TEXT(), nullable=False),
    sa.Column('quiet_end', TEXT(), nullable=False),
    sa.Column('class_start', TEXT(), nullable=False),
    sa.Column('class_end', TEXT(), nullable=False),
    sa.Column('weekly_cap', sa.Integer(), nullable=False),
    sa.Column('followup_hours', sa.Integer(), nullable=False),
    sa.Column('grace_hours', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['school_id'], ['school.id'], ),
    sa.PrimaryKeyConstraint('school_id')
    )
    op.drop_table('schoolsetting')
