"""reserved for issue 16 (advisers digest): its tables, if it adds any

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
    pass


def downgrade() -> None:
    pass
