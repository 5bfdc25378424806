"""Hardening: the audit log refuses TRUNCATE on PostgreSQL, and each entry can carry the store's
signature; reads are indexed by when the store received them (retention counts from that).

`audit_log.sig` is the store's Ed25519 signature over the entry's number and hash (`central.audit`),
written by every process that holds the store's keys; entries after the latest signed checkpoint
(`central.checkpoints`) must carry a good one, so an entry appended by someone who can write the
table but does not hold the key is reported as forged. Entries written before this revision stay
unsigned; the first signed checkpoint covers them.

TRUNCATE fires no row triggers, so 0002's UPDATE/DELETE triggers never saw it: a statement trigger
now refuses it too. SQLite has no TRUNCATE (its `DELETE FROM` is refused by 0002's trigger).

Revision ID: 0004
Revises: 0003
Create Date: 2027-01-20
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

PG_NO_TRUNCATE = ("CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
                  "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()")


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("sig", sa.String(88)))
    op.create_index("ix_reads_received_at", "reads", ["received_at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_NO_TRUNCATE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_log_no_truncate ON audit_log")
    op.drop_column("audit_log", "sig")
    op.drop_index("ix_reads_received_at", "reads")
