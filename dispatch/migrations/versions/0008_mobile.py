"""mobile app: idempotency keys of requests

Revision ID: 0008
Revises: 0007

One row per (account, Idempotency-Key) of a request that changes a case (web/idempotency.py): the
phone's offline queue sends an action again when it never saw the answer, and the repeat gets the
first answer back instead of acting twice. The row commits in the transaction of the change, so a
key is remembered exactly when its effect is.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("account_id", sa.BigInteger(), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("operation", sa.Text(), nullable=False),  # e.g. "POST /api/v1/cases/12/actions"
        sa.Column("request_hash", sa.String(64), nullable=False),  # SHA-256 of the body
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", JSONB(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "key", name="pk_idempotency_keys"),
    )
    op.create_index("ix_idempotency_keys_created", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_created", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
