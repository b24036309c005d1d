"""tasks outbox: due_at (deferred rows' eta, sent rows' republish time)

Revision ID: 9b41d6e2c7a3
Revises: 7f3c2a91d5e0
Create Date: 2026-11-27 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9b41d6e2c7a3"
down_revision: str | Sequence[str] | None = "7f3c2a91d5e0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # sent rows from before keep due_at NULL: the relay publishes them again once
    # outbox_redelivery_timeout passed since sent_at
    op.add_column("tasks_outbox", sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_tasks_outbox_state_due_at", "tasks_outbox", ["state", "due_at"], unique=False)


def downgrade() -> None:
    # states the previous code does not know: deferred rows are published, failed ones are final
    op.execute("UPDATE tasks_outbox SET state = 'pending' WHERE state = 'deferred'")
    op.execute("UPDATE tasks_outbox SET state = 'done' WHERE state = 'failed'")
    op.drop_index("ix_tasks_outbox_state_due_at", table_name="tasks_outbox")
    with op.batch_alter_table("tasks_outbox") as batch:
        batch.drop_column("due_at")
