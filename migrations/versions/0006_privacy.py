"""privacy: delete requests, tombstones, the retention clock, job runs, reissued invite codes

`person.left_on` is the day the roster import saw a person leave (the retention clock);
`deleterequest` holds a student's /delete until an administrator runs `companion forget`;
`tombstone` keeps a hash of a forgotten person's roster id, so a re-import does not bring them
back unasked; `jobrun` is the last run of each background job (`companion status`);
`invitecode.reissued` marks a code an adult re-issued, which may replace the person's account.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-10 09:00:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


TEXT = sqlmodel.sql.sqltypes.AutoString
MOMENT = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    with op.batch_alter_table('person') as batch:
        batch.add_column(sa.Column('left_on', sa.Date(), nullable=True))
    with op.batch_alter_table('invitecode') as batch:
        batch.add_column(sa.Column('reissued', sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table('invitecode') as batch:
        batch.alter_column('reissued', server_default=None)
    op.create_table('deleterequest',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('platform', TEXT(), nullable=False),
    sa.Column('requested_at', MOMENT(), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_deleterequest_person_id'), 'deleterequest', ['person_id'], unique=False)
    op.create_table('tombstone',
    sa.Column('key', TEXT(), nullable=False),
    sa.Column('forgotten_at', MOMENT(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('jobrun',
    sa.Column('name', TEXT(), nullable=False),
    sa.Column('started_at', MOMENT(), nullable=False),
    sa.Column('finished_at', MOMENT(), nullable=True),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('detail', TEXT(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    op.drop_table('jobrun')
    op.drop_table('tombstone')
    op.drop_index(op.f('ix_deleterequest_person_id'), table_name='deleterequest')
    op.drop_table('deleterequest')
    with op.batch_alter_table('invitecode') as batch:
        batch.drop_column('reissued')
    with op.batch_alter_table('person') as batch:
        batch.drop_column('left_on')
