"""partner requests; read indexes for partners and the live hub

Revision ID: 0007
Revises: 0006

One row per Open311 request a partner submitted (connectors/open311/store.py): the token the POST
answered with, the partner account, and the source record its event carries, so ``GET tokens/…``
tells "accepted, not recorded yet" from "unknown", and only to the partner that submitted it.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "partner_requests",
        sa.Column("token", sa.Text(), primary_key=True),
        sa.Column("account_id", sa.BigInteger(), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("event_source", sa.Text(), nullable=False),
        sa.Column("source_system", sa.String(32), nullable=False),
        sa.Column("source_record_id", sa.String(128), nullable=False),
        sa.Column("service_code", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        # The join to case_sources (source_system, source_record_id) that turns a token into an id.
        sa.UniqueConstraint("source_system", "source_record_id", name="uq_partner_requests_record"),
    )
    op.create_index("ix_partner_requests_account", "partner_requests", ["account_id", "created_at"])
    # A partner reads the cases its own events reached (dispatch.access.case_filter): by event source.
    op.create_index("ix_case_sources_event_source", "case_sources", ["event_source"])
    # The live hub marks each snapshot case with its newest delta: by case key, newest id.
    op.create_index("ix_outbox_key_id", "outbox", ["key", "id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_key_id", table_name="outbox")
    op.drop_index("ix_case_sources_event_source", table_name="case_sources")
    op.drop_table("partner_requests")
