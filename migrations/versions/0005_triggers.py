"""general triggers: a nudge is keyed by its occasion, not its week; a person's chosen times

A nudge row was unique per (person, kind, week_start): a weekly trigger's key. Calendar,
chosen-time and on-demand triggers need a wider one: `occasion` says which time of its trigger a
row is (the Monday of its week for a weekly or chosen one, the last day of the calendar event it
follows, the day an on-demand one was asked for), and (person, kind, occasion) is the key. Every
existing row is weekly and its week is its occasion, so the column is renamed, keeping its
values, its unique constraint and every row that refers to it (SQLite 3.25+ renames in place:
no table is rebuilt). The week a nudge counts against the cap comes from its due time.
`chosentime` holds a person's own weekday and time for a chosen-time trigger (an adviser's digest).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 09:00:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

TEXT = sqlmodel.sql.sqltypes.AutoString
MOMENT = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    _rename_key('week_start', 'occasion')
    op.create_table('chosentime',
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('kind', TEXT(), nullable=False),
    sa.Column('weekday', sa.Integer(), nullable=True),
    sa.Column('at', TEXT(), nullable=True),
    sa.Column('updated_at', MOMENT(), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
    sa.PrimaryKeyConstraint('person_id', 'kind')
    )


def downgrade() -> None:
    op.drop_table('chosentime')
    # The old key holds one row per person, kind and week: of rows that would share one (not weekly),
    # the weekly one stays (its occasion is a Monday), else the first; the others and their flags go.
    monday = ("CAST(strftime('%w', {n}.occasion) AS INTEGER) = 1" if op.get_bind().dialect.name == 'sqlite'
              else "EXTRACT(ISODOW FROM {n}.occasion) = 1")
    week = ("date({n}.occasion, '-' || ((CAST(strftime('%w', {n}.occasion) AS INTEGER) + 6) % 7) || ' days')"
            if op.get_bind().dialect.name == 'sqlite' else "CAST(date_trunc('week', {n}.occasion) AS DATE)")
    kept_instead = (f"EXISTS (SELECT 1 FROM nudge o WHERE o.person_id = {{n}}.person_id AND o.kind = {{n}}.kind "
                    f"AND {week.format(n='o')} = {week} AND o.id <> {{n}}.id AND (({monday.format(n='o')} "
                    f"AND NOT {monday}) OR (({monday.format(n='o')}) = ({monday}) AND o.id < {{n}}.id)))")
    op.execute(f"DELETE FROM flag WHERE nudge_id IN (SELECT n.id FROM nudge n WHERE {kept_instead.format(n='n')})")
    op.execute(f"DELETE FROM nudge WHERE {kept_instead.format(n='nudge')}")
    op.execute(f"UPDATE nudge SET occasion = {week.format(n='nudge')}")
    _rename_key('occasion', 'week_start')


def _rename_key(old: str, new: str) -> None:
    """Rename the nudge table's key column `old` to `new`, and on PostgreSQL its unique constraint's name with it."""
    op.execute(f'ALTER TABLE nudge RENAME COLUMN {old} TO {new}')
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(f'ALTER TABLE nudge RENAME CONSTRAINT nudge_person_id_kind_{old}_key '
                   f'TO nudge_person_id_kind_{new}_key')
