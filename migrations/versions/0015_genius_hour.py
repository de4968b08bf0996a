"""reserved for issue 17 (genius hour): its tables, if it adds any

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 13:40:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

TEXT = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
