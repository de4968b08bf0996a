"""the inbox; event ids de-duplicated per bot or workspace

`inbox` holds every event a platform sent from the moment it arrives (before Slack's
acknowledgement, before the Telegram poll that confirms it) until the engine has handled it: the
translated event (`payload`, the person's words) and what the channel still fetches first
(`extra`). Rows are deleted once handled.

`inboundevent`'s key gains the bot (Telegram: the bot id of the token; Slack: the workspace id):
update ids are per bot, so an id that another bot token used is a new event. Rows already there
get the bot "" (unknown): an update fetched but not yet confirmed when the upgrade runs would be
handled once more after it, which only a crash in that very moment can cause.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10 09:00:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

TEXT = sqlmodel.sql.sqltypes.AutoString
MOMENT = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.add_column('inboundevent', sa.Column('bot', TEXT(), server_default='', nullable=False))
        op.drop_constraint('inboundevent_pkey', 'inboundevent', type_='primary')
        op.create_primary_key('inboundevent_pkey', 'inboundevent', ['platform', 'bot', 'event_id'])
    else:  # SQLite cannot change a primary key: the table is built anew
        _rebuild_events(with_bot=True)
    op.create_table('inbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('platform', TEXT(), nullable=False),
    sa.Column('bot', TEXT(), nullable=False),
    sa.Column('event_id', TEXT(), nullable=False),
    sa.Column('sender', TEXT(), nullable=False),
    sa.Column('payload', TEXT(), nullable=False),
    sa.Column('extra', TEXT(), nullable=True),
    sa.Column('status', TEXT(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('not_before', MOMENT(), nullable=True),
    sa.Column('claimed_by', TEXT(), nullable=True),
    sa.Column('claimed_at', MOMENT(), nullable=True),
    sa.Column('error', TEXT(), nullable=True),
    sa.Column('received_at', MOMENT(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('platform', 'bot', 'event_id')
    )


def downgrade() -> None:
    op.drop_table('inbox')  # events not handled yet are lost with it: drain the inbox (stop serve) first
    if op.get_bind().dialect.name == 'postgresql':
        # Ids of several bots collapse into one key: the first received stays.
        op.execute("DELETE FROM inboundevent e USING inboundevent o WHERE o.platform = e.platform "
                   "AND o.event_id = e.event_id AND (o.received_at, o.bot) < (e.received_at, e.bot)")
        op.drop_constraint('inboundevent_pkey', 'inboundevent', type_='primary')
        op.drop_column('inboundevent', 'bot')
        op.create_primary_key('inboundevent_pkey', 'inboundevent', ['platform', 'event_id'])
    else:
        _rebuild_events(with_bot=False)


def _rebuild_events(with_bot: bool) -> None:
    """SQLite: inboundevent with or without the bot in its key, rows copied (without: one per id)."""
    key = ['platform', 'bot', 'event_id'] if with_bot else ['platform', 'event_id']
    op.create_table('inboundevent_new',
    sa.Column('platform', TEXT(), nullable=False),
    *([sa.Column('bot', TEXT(), server_default='', nullable=False)] if with_bot else []),
    sa.Column('event_id', TEXT(), nullable=False),
    sa.Column('received_at', MOMENT(), nullable=False),
    sa.PrimaryKeyConstraint(*key)
    )
    if with_bot:
        op.execute("INSERT INTO inboundevent_new (platform, bot, event_id, received_at) "
                   "SELECT platform, '', event_id, received_at FROM inboundevent")
    else:
        op.execute("INSERT INTO inboundevent_new (platform, event_id, received_at) "
                   "SELECT platform, event_id, MIN(received_at) FROM inboundevent GROUP BY platform, event_id")
    op.drop_table('inboundevent')
    op.rename_table('inboundevent_new', 'inboundevent')
