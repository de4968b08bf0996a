"""one file store: stored files, the outbox's message parts, the artifact's file key

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 09:00:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


TEXT = sqlmodel.sql.sqltypes.AutoString
MOMENT = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table('storedfile',
    sa.Column('key', TEXT(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=True),
    sa.Column('name', TEXT(), nullable=False),
    sa.Column('mime', TEXT(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', MOMENT(), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
    sa.PrimaryKeyConstraint('key')
    )
    with op.batch_alter_table('storedfile') as batch:
        batch.create_index(batch.f('ix_storedfile_person_id'), ['person_id'], unique=False)
    with op.batch_alter_table('outbox') as batch:
        batch.add_column(sa.Column('parts', TEXT(), nullable=True))
    with op.batch_alter_table('artifact') as batch:
        batch.add_column(sa.Column('file_key', TEXT(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('artifact') as batch:
        batch.drop_column('file_key')
    with op.batch_alter_table('outbox') as batch:
        batch.drop_column('parts')
    with op.batch_alter_table('storedfile') as batch:
        batch.drop_index(batch.f('ix_storedfile_person_id'))
    op.drop_table('storedfile')
