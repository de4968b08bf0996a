"""issue 14: the report-card reflection and the mid-week check-in

`reportreflection` (one per student and grading period: the closing answers and who may see them),
`subjectreflection` (each subject's grade in the student's words, what they expected, who may see it),
`studentsubject` (subjects a student named when the roster has none for them) and `goalcheckin`
(each mid-week check-in answer: on track, stuck with the obstacle, done). Help requests use the
existing `helprequest` table; what an adult did about one is an `adultaction` row.

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-02 13:40:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0012'
down_revision = '0010'
branch_labels = None
depends_on = None

TEXT = sqlmodel.sql.sqltypes.AutoString
MOMENT = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table('reportreflection',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('period_title', TEXT(), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=False),
    sa.Column('next_title', TEXT(), nullable=True),
    sa.Column('actions', TEXT(), nullable=True),
    sa.Column('change', TEXT(), nullable=True),
    sa.Column('term_goal', TEXT(), nullable=True),
    sa.Column('message', TEXT(), nullable=True),
    sa.Column('audience', TEXT(), nullable=False),
    sa.Column('started_at', MOMENT(), nullable=False),
    sa.Column('finished_at', MOMENT(), nullable=True),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('person_id', 'period_end')
    )
    with op.batch_alter_table('reportreflection', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reportreflection_person_id'), ['person_id'], unique=False)

    op.create_table('subjectreflection',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reflection_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('subject', TEXT(), nullable=False),
    sa.Column('grade', TEXT(), nullable=False),
    sa.Column('expected', TEXT(), nullable=False),
    sa.Column('audience', TEXT(), nullable=False),
    sa.Column('created_at', MOMENT(), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
    sa.ForeignKeyConstraint(['reflection_id'], ['reportreflection.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('reflection_id', 'subject')
    )
    with op.batch_alter_table('subjectreflection', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subjectreflection_person_id'), ['person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_subjectreflection_reflection_id'), ['reflection_id'], unique=False)

    op.create_table('studentsubject',
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('name', TEXT(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('created_at', MOMENT(), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
    sa.PrimaryKeyConstraint('person_id', 'name')
    )

    op.create_table('goalcheckin',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('goal_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('status', TEXT(), nullable=False),
    sa.Column('obstacle', TEXT(), nullable=True),
    sa.Column('created_at', MOMENT(), nullable=False),
    sa.ForeignKeyConstraint(['goal_id'], ['goal.id'], ),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('goalcheckin', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_goalcheckin_goal_id'), ['goal_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_goalcheckin_person_id'), ['person_id'], unique=False)


def downgrade() -> None:
    op.drop_table('goalcheckin')
    op.drop_table('studentsubject')
    op.drop_table('subjectreflection')
    op.drop_table('reportreflection')
