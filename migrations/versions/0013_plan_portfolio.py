"""reserved for issue 15 (plan portfolio): its tables, if it adds any

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 13:40:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

TEXT = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
