"""Alembic environment: migrates the engine handed over by `core.domain.db.upgrade`, or the configured URL."""

from alembic import context

from core.config import Settings
from core.features import registry
from core.domain.db import make_engine
from sqlmodel import SQLModel

config = context.config
registry(Settings().features)  # every feature's module, a school's own too, puts its tables on the metadata
engine = config.attributes.get("engine") or make_engine(Settings().database_url)

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
