"""rosters as SIS systems export them: every class and enrollment, and the schools a person covers

`rosterclass` holds every class of the roster (advisory groups and subject classes, with their
subjects); `enrollment` every enrollment of a person the roster imports, in the role it names;
`personschool` the schools a person covers besides `person.school_id` (district staff cover
every school below their district).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-14 09:00:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

TEXT = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table('rosterclass',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sourced_id', TEXT(), nullable=False),
    sa.Column('school_id', sa.Integer(), nullable=True),
    sa.Column('title', TEXT(), nullable=False),
    sa.Column('class_type', TEXT(), nullable=False),
    sa.Column('class_code', TEXT(), nullable=True),
    sa.Column('subjects', TEXT(), nullable=True),
    sa.Column('grades', TEXT(), nullable=True),
    sa.Column('advisory', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['school_id'], ['school.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('sourced_id')
    )
    op.create_table('enrollment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sourced_id', TEXT(), nullable=False),
    sa.Column('class_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('role', TEXT(), nullable=False),
    sa.ForeignKeyConstraint(['class_id'], ['rosterclass.id'], ),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('sourced_id')
    )
    with op.batch_alter_table('enrollment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_enrollment_class_id'), ['class_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_enrollment_person_id'), ['person_id'], unique=False)
    op.create_table('personschool',
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('school_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
    sa.ForeignKeyConstraint(['school_id'], ['school.id'], ),
    sa.PrimaryKeyConstraint('person_id', 'school_id')
    )


def downgrade() -> None:
    op.drop_table('personschool')
    with op.batch_alter_table('enrollment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_enrollment_person_id'))
        batch_op.drop_index(batch_op.f('ix_enrollment_class_id'))
    op.drop_table('enrollment')
    op.drop_table('rosterclass')
