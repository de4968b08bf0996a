"""The migrations are the only way a schema is built: they must match the models exactly."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import core.features  # noqa: F401  (the features, the domain and the scheduler register every table)


def test_migrations_build_the_schema_the_models_describe(engine):
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert differences == []
