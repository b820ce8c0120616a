"""Alembic environment: online migrations only, URL from the Config the caller built."""

from alembic import context
from sqlalchemy import create_engine, pool

from dispatch.store.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url, "no database URL (use dispatch.store.db.migrate)"
engine = create_engine(url, poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # PostGIS's own tables (spatial_ref_sys, topology…) are the extension's, not ours.
        include_object=lambda obj, name, type_, reflected, compare_to: (
            not (type_ == "table" and reflected and compare_to is None)
        ),
    )
    with context.begin_transaction():
        context.run_migrations()
