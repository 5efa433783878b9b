"""agent console: teams, presence and capacity, routing, handle-time segments, canned responses, read receipts

Revision ID: 0005
Revises: 0003
Written by hand: 0004 (the KB editor) is a parallel branch, and autogenerate refuses to run with two heads.
"""

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    teams = op.create_table(
        "teams",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=120), nullable=False),
        sa.Column("is_default", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("hours", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "team_members",
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("team_id", "agent_id"),
    )
    op.create_table(
        "ticket_segments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("team", sa.String(length=64), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_by", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_ticket_segments_ticket_id", "ticket_segments", ["ticket_id"])
    op.create_table(
        "canned_responses",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("shortcut", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("agents") as batch_op:
        batch_op.add_column(sa.Column("presence", sa.String(length=16), server_default="offline", nullable=False))
        batch_op.add_column(sa.Column("capacity", sa.Integer(), server_default="3", nullable=False))
    with op.batch_alter_table("tickets") as batch_op:
        batch_op.add_column(sa.Column("team", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("offered_to", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_tickets_offered_to", "agents", ["offered_to"], ["id"], ondelete="SET NULL")
    with op.batch_alter_table("conversations") as batch_op:
        batch_op.add_column(sa.Column("customer_read_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("agent_read_id", sa.Integer(), nullable=True))
    # Every escalation needs a queue to land in, from the first start on.
    op.bulk_insert(
        teams,
        [{"name": "support", "title": "Support", "is_default": True, "hours": None, "created_at": datetime.now(timezone.utc)}],
    )


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch_op:
        batch_op.drop_column("agent_read_id")
        batch_op.drop_column("customer_read_id")
    with op.batch_alter_table("tickets") as batch_op:
        batch_op.drop_constraint("fk_tickets_offered_to", type_="foreignkey")
        batch_op.drop_column("offered_to")
        batch_op.drop_column("team")
    with op.batch_alter_table("agents") as batch_op:
        batch_op.drop_column("capacity")
        batch_op.drop_column("presence")
    op.drop_table("canned_responses")
    op.drop_index("ix_ticket_segments_ticket_id", table_name="ticket_segments")
    op.drop_table("ticket_segments")
    op.drop_table("team_members")
    op.drop_table("teams")
