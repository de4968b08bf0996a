"""issue 17: genius hour, the project record

`geniusproject` (a student's passion project through the six Ps: passion, the pitch and its
approval, the product, the presentation and the reflection after it; one active per student),
`geniusmilestone` (the plan: three to six milestones with dates), `geniuscheckin` (each weekly
project check-in: progress, next step, blocker, and the help request it raised) and
`geniusevidence` (which portfolio artifacts are evidence of which project, check-in or milestone).
Who approved a pitch or asked for changes is an `adultaction` row.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 13:40:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

TEXT = sqlmodel.sql.sqltypes.AutoString
MOMENT = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table('geniusproject',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('status', TEXT(), nullable=False),
    sa.Column('stage', TEXT(), nullable=False),
    sa.Column('term_ends_on', sa.Date(), nullable=True),
    sa.Column('passion', TEXT(), nullable=False),
    sa.Column('question', TEXT(), nullable=True),
    sa.Column('why', TEXT(), nullable=True),
    sa.Column('audience', TEXT(), nullable=True),
    sa.Column('approval', TEXT(), nullable=True),
    sa.Column('approval_comment', TEXT(), nullable=True),
    sa.Column('product', TEXT(), nullable=True),
    sa.Column('presentation_on', sa.Date(), nullable=True),
    sa.Column('presentation_audience', TEXT(), nullable=True),
    sa.Column('learned', TEXT(), nullable=True),
    sa.Column('differently', TEXT(), nullable=True),
    sa.Column('proud', TEXT(), nullable=True),
    sa.Column('created_at', MOMENT(), nullable=False),
    sa.Column('updated_at', MOMENT(), nullable=False),
    sa.Column('finished_at', MOMENT(), nullable=True),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('geniusproject', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_geniusproject_person_id'), ['person_id'], unique=False)

    op.create_table('geniusmilestone',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('text', TEXT(), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('done_on', sa.Date(), nullable=True),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
    sa.ForeignKeyConstraint(['project_id'], ['geniusproject.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('geniusmilestone', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_geniusmilestone_person_id'), ['person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_geniusmilestone_project_id'), ['project_id'], unique=False)

    op.create_table('geniuscheckin',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('progress', TEXT(), nullable=False),
    sa.Column('next_step', TEXT(), nullable=False),
    sa.Column('blocker', TEXT(), nullable=True),
    sa.Column('help_request_id', sa.Integer(), nullable=True),
    sa.Column('created_at', MOMENT(), nullable=False),
    sa.ForeignKeyConstraint(['help_request_id'], ['helprequest.id'], ),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
    sa.ForeignKeyConstraint(['project_id'], ['geniusproject.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('geniuscheckin', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_geniuscheckin_person_id'), ['person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_geniuscheckin_project_id'), ['project_id'], unique=False)

    op.create_table('geniusevidence',
    sa.Column('artifact_id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('checkin_id', sa.Integer(), nullable=True),
    sa.Column('milestone_id', sa.Integer(), nullable=True),
    sa.Column('stage', TEXT(), nullable=False),
    sa.ForeignKeyConstraint(['artifact_id'], ['artifact.id'], ),
    sa.ForeignKeyConstraint(['checkin_id'], ['geniuscheckin.id'], ),
    sa.ForeignKeyConstraint(['milestone_id'], ['geniusmilestone.id'], ),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
    sa.ForeignKeyConstraint(['project_id'], ['geniusproject.id'], ),
    sa.PrimaryKeyConstraint('artifact_id')
    )
    with op.batch_alter_table('geniusevidence', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_geniusevidence_person_id'), ['person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_geniusevidence_project_id'), ['project_id'], unique=False)


def downgrade() -> None:
    for table in ('geniusevidence', 'geniuscheckin', 'geniusmilestone', 'geniusproject'):
        op.drop_table(table)  # their indexes go with them
