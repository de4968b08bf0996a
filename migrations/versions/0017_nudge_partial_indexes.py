"""issues 17 and 18: the sweep walks partial indexes of the nudges still to send

`ix_nudge_status_due_at` indexed every nudge ever planned, the sent history included, and the
follow-up query (`status = 'sent'`) walked it. Two partial indexes replace it: planned nudges by
due time (what a claim reads), claimed ones by claim time (a worker that died): a nudge leaves
them once it is sent or skipped, so they hold only the nudges in flight.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 18:20:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

PLANNED = sa.text("status = 'planned'")
CLAIMED = sa.text("status = 'claimed'")


def upgrade() -> None:
    with op.batch_alter_table('nudge', schema=None) as batch_op:
        batch_op.drop_index('ix_nudge_status_due_at')
        batch_op.create_index('ix_nudge_planned_due_at', ['due_at'], unique=False,
                              sqlite_where=PLANNED, postgresql_where=PLANNED)
        batch_op.create_index('ix_nudge_claimed_at', ['claimed_at'], unique=False,
                              sqlite_where=CLAIMED, postgresql_where=CLAIMED)


def downgrade() -> None:
    with op.batch_alter_table('nudge', schema=None) as batch_op:
        batch_op.drop_index('ix_nudge_claimed_at')
        batch_op.drop_index('ix_nudge_planned_due_at')
        batch_op.create_index('ix_nudge_status_due_at', ['status', 'due_at'], unique=False)
