"""writeback deliveries

Revision ID: 0006
Revises: 0005

One row per (destination record, case delta): the write-back (回写) or forwarded record (自动上报)
to send, its idempotency key and its delivery state. See connectors/writeback/store.py.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "writeback_deliveries",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.BigInteger, nullable=False),
        sa.Column("delta_id", sa.BigInteger, nullable=False),
        sa.Column("destination", sa.String(32), nullable=False),
        sa.Column("record_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("change", sa.String(32), nullable=False),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("idempotency_key", sa.String(64), nullable=False, unique=True),
        sa.Column("payload", JSONB, nullable=False),
        sa.Column("state", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("reason", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("http_status", sa.Integer),
        sa.Column("response", JSONB),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("due_since", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column(
            "next_attempt_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True)),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True)),
        sa.Column("failed_at", sa.DateTime(timezone=True)),
        sa.Column("replays", sa.Integer, nullable=False, server_default="0"),
        sa.Column("replayed_by", sa.Text),
        sa.CheckConstraint(
            "state IN ('pending', 'sent', 'acknowledged', 'failed')", name="ck_writeback_deliveries_state"
        ),
        sa.CheckConstraint("kind IN ('writeback', 'forward')", name="ck_writeback_deliveries_kind"),
    )
    # The worker's scan: what is due, oldest first (pending, and 'sent' whose lease ran out).
    op.create_index(
        "ix_writeback_deliveries_due",
        "writeback_deliveries",
        ["next_attempt_at"],
        postgresql_where=sa.text("state IN ('pending', 'sent')"),
    )
    # Head-of-line per destination record (stages go out in order) and the record's history.
    op.create_index(
        "ix_writeback_deliveries_record", "writeback_deliveries", ["destination", "record_id", "id"]
    )
    op.create_index("ix_writeback_deliveries_case", "writeback_deliveries", ["case_id", "id"])
    op.create_index(
        "ix_writeback_deliveries_failed",
        "writeback_deliveries",
        ["id"],
        postgresql_where=sa.text("state = 'failed'"),
    )


def downgrade() -> None:
    op.drop_table("writeback_deliveries")
