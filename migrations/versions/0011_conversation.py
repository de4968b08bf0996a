"""reserved for issue 13 (conversation): its tables, if it adds any

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 13:40:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

TEXT = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
