"""Units, enrolment tokens, request nonces, reads and their images, heartbeats, hot list.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "units",
        sa.Column("unit_id", sa.String(64), primary_key=True),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("enrolled_at", TS, nullable=False),
        sa.Column("revoked_at", TS),
        sa.Column("last_seen_at", TS),
    )
    op.create_table(
        "enroll_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("used_at", TS),
        sa.Column("used_by", sa.String(64)),
    )
    op.create_table(
        "request_nonces",
        sa.Column("unit_id", sa.String(64), primary_key=True),
        sa.Column("nonce", sa.String(64), primary_key=True),
        sa.Column("seen_at", TS, nullable=False),
    )
    op.create_index("ix_request_nonces_seen_at", "request_nonces", ["seen_at"])
    op.create_table(
        "reads",
        sa.Column("read_id", sa.String(36), primary_key=True),
        sa.Column("unit_id", sa.String(64), sa.ForeignKey("units.unit_id"), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("lane", sa.String(32), nullable=False),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("captured_at", TS, nullable=False),
        sa.Column("plate", sa.String(16), nullable=False),
        sa.Column("region", sa.String(16), nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("candidates", JSONType, nullable=False),
        sa.Column("box", JSONType, nullable=False),
        sa.Column("model", JSONType, nullable=False),
        sa.Column("trigger", JSONType, nullable=False),
        sa.Column("schema_version", sa.SmallInteger, nullable=False),
        sa.Column("received_at", TS, nullable=False),
    )
    op.create_index("ix_reads_plate_captured", "reads", ["plate", "captured_at"])
    op.create_index("ix_reads_captured_at", "reads", ["captured_at"])
    op.create_index("ix_reads_unit_captured", "reads", ["unit_id", "captured_at"])
    op.create_table(
        "read_images",
        sa.Column("read_id", sa.String(36), sa.ForeignKey("reads.read_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("jpeg", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "heartbeats",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("unit_id", sa.String(64), sa.ForeignKey("units.unit_id"), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("queue_depth", sa.Integer),
        sa.Column("dropped", sa.Integer),
        sa.Column("body", JSONType, nullable=False),
    )
    op.create_index("ix_heartbeats_unit_received", "heartbeats", ["unit_id", "received_at"])
    op.create_table(
        "hotlist_entries",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("pattern", sa.String(16), nullable=False, unique=True),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("added_at", TS, nullable=False),
    )


def downgrade() -> None:
    for table in ("hotlist_entries", "heartbeats", "read_images", "reads", "request_nonces",
                  "enroll_tokens", "units"):
        op.drop_table(table)
