"""nudges, the school calendar, adviser flags and each school's schedule settings

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 06:20:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

TEXT = sqlmodel.sql.sqltypes.AutoString
MOMENT = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    # A school without a row here gets the defaults: goals on Monday, review on Friday, no
    # mid-week check-in, quiet 21:00–07:00, class 08:00–15:00, at most 3 nudges a week.
    # Days are 0 = Monday … 6 = Sunday; NULL turns that nudge off.
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

    op.create_table('nudge',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('kind', TEXT(), nullable=False),
    sa.Column('week_start', sa.Date(), nullable=False),
    sa.Column('due_at', MOMENT(), nullable=False),
    sa.Column('expires_at', MOMENT(), nullable=False),
    sa.Column('status', TEXT(), nullable=False),
    sa.Column('reason', TEXT(), nullable=True),
    sa.Column('claimed_by', TEXT(), nullable=True),
    sa.Column('claimed_at', MOMENT(), nullable=True),
    sa.Column('sent_at', MOMENT(), nullable=True),
    sa.Column('followup_due_at', MOMENT(), nullable=True),
    sa.Column('followed_up_at', MOMENT(), nullable=True),
    sa.Column('created_at', MOMENT(), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('person_id', 'kind', 'week_start')
    )
    with op.batch_alter_table('nudge', schema=None) as batch_op:
        batch_op.create_index('ix_nudge_status_due_at', ['status', 'due_at'], unique=False)
        # Only sent nudges still waiting for an answer have one: a partial index stays small.
        watching = sa.text('followup_due_at IS NOT NULL')
        batch_op.create_index('ix_nudge_followup_due_at', ['followup_due_at'], unique=False,
                              sqlite_where=watching, postgresql_where=watching)

    op.create_table('calendarevent',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('school_id', sa.Integer(), nullable=False),
    sa.Column('uid', TEXT(), nullable=False),
    sa.Column('kind', TEXT(), nullable=False),
    sa.Column('title', TEXT(), nullable=False),
    sa.Column('starts_on', sa.Date(), nullable=False),
    sa.Column('ends_on', sa.Date(), nullable=False),
    sa.Column('updated_at', MOMENT(), nullable=False),
    sa.ForeignKeyConstraint(['school_id'], ['school.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('school_id', 'uid')
    )

    op.create_table('flag',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('kind', TEXT(), nullable=False),
    sa.Column('nudge_id', sa.Integer(), nullable=True),
    sa.Column('detail', TEXT(), nullable=False),
    sa.Column('created_at', MOMENT(), nullable=False),
    sa.Column('seen_at', MOMENT(), nullable=True),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
    sa.ForeignKeyConstraint(['nudge_id'], ['nudge.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('nudge_id')
    )
    with op.batch_alter_table('flag', schema=None) as batch_op:
        batch_op.create_index('ix_flag_person_id', ['person_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('flag', schema=None) as batch_op:
        batch_op.drop_index('ix_flag_person_id')
    op.drop_table('flag')
    op.drop_table('calendarevent')
    with op.batch_alter_table('nudge', schema=None) as batch_op:
        batch_op.drop_index('ix_nudge_followup_due_at')
        batch_op.drop_index('ix_nudge_status_due_at')
    op.drop_table('nudge')
    op.drop_table('schoolschedule')
