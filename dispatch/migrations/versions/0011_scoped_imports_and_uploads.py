"""import jobs belong to who started them; uploads to who sent them

Revision ID: 0011
Revises: 0010

An import job records the account that started it and the streets it could see then
(``streets`` NULL: district-wide): another street's operator is told there is no such job. An
upload records who sent it; a photo is then served to its sender and to whoever sees a case that
refers to it (a timeline line's or a source record's ``attachments``), found through the two
expression indexes below.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("connector_import_jobs", sa.Column("created_by", sa.BigInteger(), nullable=True))
    op.add_column("connector_import_jobs", sa.Column("streets", postgresql.ARRAY(sa.Text()), nullable=True))
    op.create_table(
        "uploads",
        sa.Column("name", sa.Text(), primary_key=True),
        sa.Column("uploaded_by", sa.BigInteger(), nullable=False, primary_key=True),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    )
    op.execute(
        "CREATE INDEX ix_case_timeline_attachments ON case_timeline "
        "USING gin ((detail -> 'attachments') jsonb_path_ops)"
    )
    op.execute(
        "CREATE INDEX ix_case_sources_attachments ON case_sources "
        "USING gin ((payload -> 'attachments') jsonb_path_ops)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX ix_case_sources_attachments")
    op.execute("DROP INDEX ix_case_timeline_attachments")
    op.drop_table("uploads")
    op.drop_column("connector_import_jobs", "streets")
    op.drop_column("connector_import_jobs", "created_by")
