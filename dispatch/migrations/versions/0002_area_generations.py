"""area generations and the subdivided lookup pieces

Revision ID: 0002
Revises: 0001
"""

import geoalchemy2
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "area_generations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("district_code", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("area_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("district_code", "content_hash", name="uq_area_generations_content"),
    )
    # At most one active generation per district (activation keeps it at exactly one).
    op.create_index(
        "ix_area_generations_one_active",
        "area_generations",
        ["district_code"],
        unique=True,
        postgresql_where=sa.text("active"),
    )
    op.create_table(
        "area_pieces",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("district_code", sa.String(length=32), nullable=True),
        sa.Column("street_code", sa.String(length=32), nullable=True),
        sa.Column("community_code", sa.String(length=32), nullable=True),
        sa.Column("grid_code", sa.String(length=32), nullable=True),
        sa.Column("unit_cell_code", sa.String(length=32), nullable=True),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                geometry_type="POLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column(
            "boundary",
            geoalchemy2.types.Geometry(
                geometry_type="MULTILINESTRING",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["generation"], ["area_generations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_area_pieces_geom", "area_pieces", ["geom"], unique=False, postgresql_using="gist")
    op.create_index(op.f("ix_area_pieces_generation"), "area_pieces", ["generation"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_area_pieces_generation"), table_name="area_pieces")
    op.drop_index("ix_area_pieces_geom", table_name="area_pieces", postgresql_using="gist")
    op.drop_table("area_pieces")
    op.drop_index(
        "ix_area_generations_one_active", table_name="area_generations", postgresql_where=sa.text("active")
    )
    op.drop_table("area_generations")
