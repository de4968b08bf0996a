"""reserved for issue 14 (reflection): its tables, if it adds any

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 13:40:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

TEXT = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
