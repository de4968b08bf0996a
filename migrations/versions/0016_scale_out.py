"""issue 18: scale out — the sending budget every `serve` process shares

`sendpace`: one row per bot and per recently messaged chat, holding the bot's next send slot to
hand out, when a chat may get its next message, and the end of a 429's pause, in seconds on the
database's clock (core/delivery/budget.py). Used on
PostgreSQL, where several processes deliver; SQLite has one process, which paces in memory.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 13:40:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

TEXT = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table('sendpace',
    sa.Column('platform', TEXT(), nullable=False),
    sa.Column('bot', TEXT(), nullable=False),
    sa.Column('chat_id', TEXT(), nullable=False),
    sa.Column('next_slot', sa.Float(), nullable=False),
    sa.Column('next_send', sa.Float(), nullable=False),
    sa.Column('paused_until', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('platform', 'bot', 'chat_id')
    )


def downgrade() -> None:
    op.drop_table('sendpace')
