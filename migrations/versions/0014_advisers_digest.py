"""advisers digest: what each "Followed up" answered (the triage reasons and their levels then)

The follow-up itself is an `adultaction` row (subject 'person', action 'followed_up'), the model
safety alerts use; `followup` keeps the reasons it answered, so a student drops down the next
digest unless a new reason appears or one gets worse. An index finds an adviser's memberships by person.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 13:40:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

TEXT = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table('followup',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('action_id', sa.Integer(), nullable=False),
    sa.Column('student_id', sa.Integer(), nullable=False),
    sa.Column('reasons', TEXT(), nullable=False),
    sa.ForeignKeyConstraint(['student_id'], ['person.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_followup_action_id', 'followup', ['action_id'])
    op.create_index('ix_followup_student_id', 'followup', ['student_id'])
    # who may see whom starts from an adviser's memberships (core/domain/access.py)
    op.create_index('ix_advisorymember_person_id', 'advisorymember', ['person_id'])


def downgrade() -> None:
    op.drop_index('ix_advisorymember_person_id', table_name='advisorymember')
    op.drop_index('ix_followup_student_id', table_name='followup')
    op.drop_index('ix_followup_action_id', table_name='followup')
    op.drop_table('followup')
