"""connectors inbound: poll cursors, webhook nonces, import jobs

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A poller's position in a source's feed; written only after the page's events were published.
    op.create_table(
        "connector_poll_cursors",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("records_total", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("polls", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    # Signatures of accepted webhook deliveries inside the replay window: a second delivery of the
    # same signed request is refused. Rows older than the window are purged.
    op.create_table(
        "connector_webhook_nonces",
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("signature", sa.String(length=80), nullable=False),
        sa.Column("signed_at", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("source", "signature"),
    )
    op.create_index("ix_connector_webhook_nonces_received_at", "connector_webhook_nonces", ["received_at"])
    # File imports (CSV/XLSX): progress and per-line errors, for GET /api/v1/imports/{id}.
    op.create_table(
        "connector_import_jobs",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("rows_total", sa.Integer(), nullable=True),
        sa.Column("rows_done", sa.Integer(), server_default="0", nullable=False),
        sa.Column("accepted", sa.Integer(), server_default="0", nullable=False),
        sa.Column("rejected", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "errors",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("connector_import_jobs")
    op.drop_index("ix_connector_webhook_nonces_received_at", table_name="connector_webhook_nonces")
    op.drop_table("connector_webhook_nonces")
    op.drop_table("connector_poll_cursors")
