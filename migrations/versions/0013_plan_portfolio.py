"""the learning plan and the portfolio: a school's competencies, teachers' mastery levels, what a student shares

`competency` is a school's list of competencies or standards (`companion competencies import`),
unique by code in a school; `grades` the student grades it is for, `grade_levels` its own grade →
level mapping (JSON) over the school's `grade_levels` setting. `mastery` holds the levels
teachers set through an administrator (`companion mastery set|import`), 1–4 (beginning,
developing, meets, exceeds), history kept: the newest counts. `portfolioshare` lists the parts of
the portfolio a student shares with family (the conference portfolio shows only these).

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
MOMENT = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table('competency',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('school_id', sa.Integer(), nullable=False),
    sa.Column('code', TEXT(), nullable=False),
    sa.Column('title', TEXT(), nullable=False),
    sa.Column('subject', TEXT(), nullable=False),
    sa.Column('description', TEXT(), nullable=False),
    sa.Column('grades', TEXT(), nullable=True),
    sa.Column('grade_levels', TEXT(), nullable=True),
    sa.Column('updated_at', MOMENT(), nullable=False),
    sa.ForeignKeyConstraint(['school_id'], ['school.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('school_id', 'code')
    )
    op.create_table('mastery',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('competency_id', sa.Integer(), nullable=False),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('source', TEXT(), nullable=False),
    sa.Column('assessed_by', TEXT(), nullable=True),
    sa.Column('assessed_on', sa.Date(), nullable=False),
    sa.Column('created_at', MOMENT(), nullable=False),
    sa.ForeignKeyConstraint(['competency_id'], ['competency.id'], ),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('mastery', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mastery_competency_id'), ['competency_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_mastery_person_id'), ['person_id'], unique=False)
    op.create_table('portfolioshare',
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('section', TEXT(), nullable=False),
    sa.Column('shared_at', MOMENT(), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
    sa.PrimaryKeyConstraint('person_id', 'section')
    )


def downgrade() -> None:
    op.drop_table('portfolioshare')
    with op.batch_alter_table('mastery', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mastery_person_id'))
        batch_op.drop_index(batch_op.f('ix_mastery_competency_id'))
    op.drop_table('mastery')
    op.drop_table('competency')
