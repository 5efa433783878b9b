"""copilot: suggestion set ids are 52-bit (made by the relay before the set is stored), past PostgreSQL's INTEGER

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return  # SQLite's INTEGER holds 64 bits: nothing to change
    op.alter_column("copilot_items", "suggestion_id", type_=sa.BigInteger(), existing_nullable=False)
    op.alter_column("copilot_suggestions", "id", type_=sa.BigInteger(), existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    op.alter_column("copilot_suggestions", "id", type_=sa.Integer(), existing_nullable=False)
    op.alter_column("copilot_items", "suggestion_id", type_=sa.Integer(), existing_nullable=False)
