"""reports: KB answers with the customer's yes / no, bot-only chat ratings, date indexes for the reports

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kb_answers",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("article_id", sa.String(length=128), nullable=False),
        sa.Column("team", sa.String(length=64), nullable=True),
        sa.Column("helpful", sa.Boolean(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("feedback_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_kb_answers_created_at", "kb_answers", ["created_at"])
    op.create_index("ix_kb_answers_conversation_id", "kb_answers", ["conversation_id"])
    op.create_table(
        "chat_ratings",
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("asked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("asked_because", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("rated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("conversation_id"),
    )
    op.create_index("ix_conversations_created_at", "conversations", ["created_at"])
    op.create_index("ix_tickets_created_at", "tickets", ["created_at"])
    op.create_index("ix_ticket_segments_started_at", "ticket_segments", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_ticket_segments_started_at", table_name="ticket_segments")
    op.drop_index("ix_tickets_created_at", table_name="tickets")
    op.drop_index("ix_conversations_created_at", table_name="conversations")
    op.drop_table("chat_ratings")
    op.drop_index("ix_kb_answers_conversation_id", table_name="kb_answers")
    op.drop_index("ix_kb_answers_created_at", table_name="kb_answers")
    op.drop_table("kb_answers")
