"""safety alerts an adult answers: escalation state on each alert, and one table of adults' actions

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 03:00:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

TEXT = sqlmodel.sql.sqltypes.AutoString
MOMENT = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    with op.batch_alter_table('safetyalert') as batch:
        batch.add_column(sa.Column('escalate_at', MOMENT(), nullable=True))
        batch.add_column(sa.Column('escalations', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('acknowledged_at', MOMENT(), nullable=True))
        batch.add_column(sa.Column('acknowledged_by', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('closed_at', MOMENT(), nullable=True))
        batch.create_foreign_key('fk_safetyalert_acknowledged_by', 'person', ['acknowledged_by'], ['id'])
        batch.create_index('ix_safetyalert_escalate_at', ['escalate_at'])
    with op.batch_alter_table('safetyalert') as batch:
        batch.alter_column('escalations', server_default=None)
    op.create_table('adultaction',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('student_id', sa.Integer(), nullable=True),
    sa.Column('subject', TEXT(), nullable=False),
    sa.Column('subject_id', sa.Integer(), nullable=True),
    sa.Column('action', TEXT(), nullable=False),
    sa.Column('note', TEXT(), nullable=True),
    sa.Column('at', MOMENT(), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['person.id'], ),
    sa.ForeignKeyConstraint(['student_id'], ['person.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_adultaction_student_id', 'adultaction', ['student_id'])


def downgrade() -> None:
    op.drop_index('ix_adultaction_student_id', table_name='adultaction')
    op.drop_table('adultaction')
    with op.batch_alter_table('safetyalert') as batch:
        batch.drop_index('ix_safetyalert_escalate_at')
        batch.drop_constraint('fk_safetyalert_acknowledged_by', type_='foreignkey')
        for column in ('closed_at', 'acknowledged_by', 'acknowledged_at', 'escalations', 'escalate_at'):
            batch.drop_column(column)
