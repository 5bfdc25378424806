"""Policy 462: users, training, sessions, audit log (append-only), alerts, legal holds, retention runs,
agencies and sharing requests; hot-list reasons and expiry; partial-plate search index.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)

APPEND_ONLY_MESSAGE = "audit_log is append-only (policy 462.5(a))"

PG_GUARD = f"""
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
"""
SQLITE_GUARD = [
    f"CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
    f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END",
    f"CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
    f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END",
]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table("hotlist_entries") as batch:
        batch.add_column(sa.Column("category", sa.String(32), nullable=False, server_default="investigation"))
        batch.add_column(sa.Column("source", sa.String(100), nullable=False, server_default="manual"))
        batch.add_column(sa.Column("entered_by", sa.String(64), nullable=False, server_default="unknown"))
        batch.add_column(sa.Column("expires_at", TS))
        batch.add_column(sa.Column("case_number", sa.String(40)))

    if dialect == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_index("ix_reads_plate_trgm", "reads", ["plate"], postgresql_using="gin",
                    postgresql_ops={"plate": "gin_trgm_ops"})
    op.create_index("ix_reads_site_captured", "reads", ["site", "captured_at"])

    op.create_table(
        "users",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("full_name", sa.String(200), nullable=False),
        sa.Column("job_title", sa.String(200), nullable=False),
        sa.Column("agency", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0"),
        sa.Column("locked_until", TS),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("disabled_at", TS),
        sa.Column("last_login_at", TS),
    )
    op.create_table(
        "training_records",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("user_id", BigId, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("course", sa.String(200), nullable=False),
        sa.Column("completed_on", sa.Date, nullable=False),
        sa.Column("expires_on", sa.Date, nullable=False),
        sa.Column("recorded_by", sa.String(64), nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
    )
    op.create_index("ix_training_records_user_id", "training_records", ["user_id"])
    op.create_table(
        "user_sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", BigId, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("ended_at", TS),
    )
    op.create_index("ix_user_sessions_user_id", "user_sessions", ["user_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("agency", sa.String(200), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("query", JSONType, nullable=False),
        sa.Column("purpose", sa.String(64)),
        sa.Column("case_number", sa.String(40)),
        sa.Column("result_count", sa.Integer),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    if dialect == "postgresql":
        op.execute(PG_GUARD)
    elif dialect == "sqlite":
        for statement in SQLITE_GUARD:
            op.execute(statement)
    op.create_table(
        "alerts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("read_id", sa.String(36), sa.ForeignKey("reads.read_id", ondelete="CASCADE"), nullable=False),
        sa.Column("hotlist_entry_id", BigId, sa.ForeignKey("hotlist_entries.id", ondelete="SET NULL")),
        sa.Column("pattern", sa.String(16), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("plate", sa.String(16), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("captured_at", TS, nullable=False),
        sa.Column("raised_at", TS, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("verified_by", sa.String(64)),
        sa.Column("verified_at", TS),
        sa.Column("verification_note", sa.String(1000)),
    )
    op.create_index("ix_alerts_read_id", "alerts", ["read_id"])
    op.create_index("ix_alerts_raised_at", "alerts", ["raised_at"])
    op.create_table(
        "legal_holds",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("case_number", sa.String(40), nullable=False),
        sa.Column("reason", sa.String(1000), nullable=False),
        sa.Column("placed_by", sa.String(64), nullable=False),
        sa.Column("placed_at", TS, nullable=False),
        sa.Column("released_by", sa.String(64)),
        sa.Column("released_at", TS),
        sa.Column("release_reason", sa.String(1000)),
    )
    op.create_index("ix_legal_holds_case_number", "legal_holds", ["case_number"])
    op.create_table(
        "legal_hold_reads",
        sa.Column("hold_id", BigId, sa.ForeignKey("legal_holds.id"), primary_key=True),
        sa.Column("read_id", sa.String(36), sa.ForeignKey("reads.read_id"), primary_key=True),
    )
    op.create_index("ix_legal_hold_reads_read", "legal_hold_reads", ["read_id"])
    op.create_table(
        "retention_runs",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        sa.Column("cutoff", TS, nullable=False),
        sa.Column("retention_years", sa.Integer, nullable=False),
        sa.Column("triggered_by", sa.String(64), nullable=False),
        sa.Column("reads_purged", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("images_purged", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("alerts_purged", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("held_kept", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.String(1000)),
    )
    op.create_table(
        "agencies",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("california_public", sa.Boolean, nullable=False),
        sa.Column("agreement_signed_on", sa.Date),
        sa.Column("agreement_expires_on", sa.Date),
        sa.Column("added_by", sa.String(64), nullable=False),
        sa.Column("added_at", TS, nullable=False),
    )
    op.create_table(
        "share_requests",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("agency_id", BigId, sa.ForeignKey("agencies.id"), nullable=False),
        sa.Column("requester_name", sa.String(200), nullable=False),
        sa.Column("purpose", sa.String(1000), nullable=False),
        sa.Column("case_number", sa.String(40)),
        sa.Column("query", JSONType, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("recorded_by", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("basis", sa.String(32)),
        sa.Column("decided_by", sa.String(64)),
        sa.Column("decided_at", TS),
        sa.Column("decision_reason", sa.String(1000)),
        sa.Column("released_by", sa.String(64)),
        sa.Column("released_at", TS),
        sa.Column("released_count", sa.Integer),
    )
    op.create_index("ix_share_requests_agency_id", "share_requests", ["agency_id"])


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    for table in ("share_requests", "agencies", "retention_runs", "legal_hold_reads", "legal_holds", "alerts",
                  "audit_log", "user_sessions", "training_records", "users"):
        op.drop_table(table)                 # SQLite drops a table's triggers with it
    op.drop_index("ix_reads_site_captured", "reads")
    op.drop_index("ix_reads_plate_trgm", "reads")
    with op.batch_alter_table("hotlist_entries") as batch:
        for column in ("case_number", "expires_at", "entered_by", "source", "category"):
            batch.drop_column(column)
