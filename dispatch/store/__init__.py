"""The store: PostGIS through SQLAlchemy 2 + GeoAlchemy2 + psycopg 3, migrated by Alembic."""
