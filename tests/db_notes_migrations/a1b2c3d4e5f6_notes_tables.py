"""notes tables

Revision ID: a1b2c3d4e5f6
Revises:
Create Date: 2026-11-25 13:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a1b2c3d4e5f6"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("notes",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "t_authors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_t_authors")),
        sa.UniqueConstraint("name", name=op.f("uq_t_authors_name")),
    )
    op.create_table(
        "t_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(["author_id"], ["t_authors.id"], name=op.f("fk_t_notes_author_id_t_authors")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_t_notes")),
    )


def downgrade() -> None:
    op.drop_table("t_notes")
    op.drop_table("t_authors")
