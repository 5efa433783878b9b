"""reports: index tickets by conversation ("did this conversation escalate?" for each conversation of a report)

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tickets_conversation_id", "tickets", ["conversation_id"])


def downgrade() -> None:
    op.drop_index("ix_tickets_conversation_id", table_name="tickets")
