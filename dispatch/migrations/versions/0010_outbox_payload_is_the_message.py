"""outbox: the payload is the message as published (``delta_id`` included), kept as ``json``

Revision ID: 0010
Revises: 0009

Writers reserve the row's id and put it in the payload as ``delta_id``, so the relay sends the
stored text as it is, where it parsed every payload back into a dict, added the id and wrote it
out again. ``json`` keeps that text verbatim (``jsonb`` would re-order and re-space it) and is
cheaper to write: PostgreSQL only checks it, nothing queries inside it. Existing rows get their
``delta_id`` here, so every row holds exactly what the relay publishes (or published) for it.
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE outbox ALTER COLUMN payload TYPE json "
        "USING (payload || jsonb_build_object('delta_id', id))::json"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE outbox ALTER COLUMN payload TYPE jsonb USING (payload::jsonb - 'delta_id')")
