"""Tables of the central store, in SQLAlchemy Core.

This is what the code queries against; the DDL history lives in `central/migrations/versions`, and a
test checks that the migrated database and this metadata agree. Columns holding what units send are
sized from the wire contract's limits (`wire.read`), which the frozen migrations spell out as numbers
(the same test catches a limit changed without a migration). Times are UTC. JSON columns are JSONB
on PostgreSQL. The `reads` table keeps the opened read; images live apart in `read_images` so that
listing and searching reads never drags JPEG bytes along. The second half (migration 0002) holds what
policy 462 needs: users, training, sessions, the hash-chained audit log, alerts, legal holds, retention
runs, agencies and sharing requests.
"""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from wire.read import DIRECTION_MAX, ID_MAX, LANE_MAX, PLATE_TEXT_MAX, READ_ID_LEN, REGION_MAX
from wire.signing import NONCE_MAX

metadata = sa.MetaData()

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")   # SQLite autoincrements INTEGER only
TS = sa.DateTime(timezone=True)

units = sa.Table(
    "units", metadata,
    sa.Column("unit_id", sa.String(ID_MAX), primary_key=True),
    sa.Column("site", sa.String(ID_MAX), nullable=False),
    sa.Column("public_key", sa.String(64), nullable=False),        # b64 raw Ed25519
    sa.Column("status", sa.String(16), nullable=False),            # active | revoked
    sa.Column("enrolled_at", TS, nullable=False),
    sa.Column("revoked_at", TS),
    sa.Column("last_seen_at", TS),
)

enroll_tokens = sa.Table(
    "enroll_tokens", metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),      # sha256 hex; the token itself is never kept
    sa.Column("site", sa.String(ID_MAX), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("expires_at", TS, nullable=False),
    sa.Column("used_at", TS),
    sa.Column("used_by", sa.String(ID_MAX)),
)

request_nonces = sa.Table(
    "request_nonces", metadata,
    sa.Column("unit_id", sa.String(ID_MAX), primary_key=True),
    sa.Column("nonce", sa.String(NONCE_MAX), primary_key=True),
    sa.Column("seen_at", TS, nullable=False, index=True),
)

reads = sa.Table(
    "reads", metadata,
    sa.Column("read_id", sa.String(READ_ID_LEN), primary_key=True),
    sa.Column("unit_id", sa.String(ID_MAX), sa.ForeignKey("units.unit_id"), nullable=False),
    sa.Column("site", sa.String(ID_MAX), nullable=False),
    sa.Column("lane", sa.String(LANE_MAX), nullable=False),
    sa.Column("direction", sa.String(DIRECTION_MAX), nullable=False),
    sa.Column("captured_at", TS, nullable=False),
    sa.Column("plate", sa.String(PLATE_TEXT_MAX), nullable=False),
    sa.Column("region", sa.String(REGION_MAX), nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("candidates", JSONType, nullable=False),
    sa.Column("box", JSONType, nullable=False),
    sa.Column("model", JSONType, nullable=False),
    sa.Column("trigger", JSONType, nullable=False),
    sa.Column("schema_version", sa.SmallInteger, nullable=False),
    sa.Column("received_at", TS, nullable=False),
    sa.Index("ix_reads_plate_captured", "plate", "captured_at"),
    sa.Index("ix_reads_captured_at", "captured_at"),
    sa.Index("ix_reads_unit_captured", "unit_id", "captured_at"),
)

read_images = sa.Table(
    "read_images", metadata,
    sa.Column("read_id", sa.String(READ_ID_LEN), sa.ForeignKey("reads.read_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),             # crop | context
    sa.Column("jpeg", sa.LargeBinary, nullable=False),
)

heartbeats = sa.Table(
    "heartbeats", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("unit_id", sa.String(ID_MAX), sa.ForeignKey("units.unit_id"), nullable=False),
    sa.Column("received_at", TS, nullable=False),
    sa.Column("queue_depth", sa.Integer),
    sa.Column("dropped", sa.Integer),
    sa.Column("body", JSONType, nullable=False),
    sa.Index("ix_heartbeats_unit_received", "unit_id", "received_at"),
)

hotlist_entries = sa.Table(
    "hotlist_entries", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("pattern", sa.String(PLATE_TEXT_MAX), nullable=False, unique=True),   # A-Z0-9, later with wildcards
    sa.Column("note", sa.String(200), nullable=False),    # the label units show (named reason until 0003)
    sa.Column("added_at", TS, nullable=False),
)

# -- policy 462 (migration 0002) ---------------------------------------------------------------------
# hot-list entries gain the policy's reason (`category`; the API, CLI and CSV call it "reason"),
# source, who entered them and an expiry; `note` above stays the label units show.
hotlist_entries.append_column(sa.Column("category", sa.String(32), nullable=False, server_default="investigation"))
hotlist_entries.append_column(sa.Column("source", sa.String(100), nullable=False, server_default="manual"))
hotlist_entries.append_column(sa.Column("entered_by", sa.String(64), nullable=False, server_default="unknown"))
hotlist_entries.append_column(sa.Column("expires_at", TS))
hotlist_entries.append_column(sa.Column("case_number", sa.String(40)))

# Partial-plate search: a trigram GIN index on PostgreSQL (LIKE '7AB_12%' uses it); on SQLite the same
# name is a plain b-tree on plate, because one metadata serves both back ends.
sa.Index("ix_reads_plate_trgm", reads.c.plate, postgresql_using="gin", postgresql_ops={"plate": "gin_trgm_ops"})
sa.Index("ix_reads_site_captured", reads.c.site, reads.c.captured_at)

users = sa.Table(
    "users", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("full_name", sa.String(200), nullable=False),
    sa.Column("job_title", sa.String(200), nullable=False),
    sa.Column("agency", sa.String(200), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),              # see central.roles.ROLES
    sa.Column("password_hash", sa.String(255), nullable=False),     # argon2id, parameters inside
    sa.Column("status", sa.String(16), nullable=False),            # active | disabled
    sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0"),
    sa.Column("locked_until", TS),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("disabled_at", TS),
    sa.Column("last_login_at", TS),
)

training_records = sa.Table(
    "training_records", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("user_id", BigId, sa.ForeignKey("users.id"), nullable=False, index=True),
    sa.Column("course", sa.String(200), nullable=False),
    sa.Column("completed_on", sa.Date, nullable=False),
    sa.Column("expires_on", sa.Date, nullable=False),
    sa.Column("recorded_by", sa.String(64), nullable=False),
    sa.Column("recorded_at", TS, nullable=False),
)

user_sessions = sa.Table(
    "user_sessions", metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),      # sha256 hex; the token is never kept
    sa.Column("user_id", BigId, sa.ForeignKey("users.id"), nullable=False, index=True),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("last_seen_at", TS, nullable=False),
    sa.Column("expires_at", TS, nullable=False),
    sa.Column("ended_at", TS),
)

# Append-only, hash-chained (central.audit). `id` is assigned by the writer under a lock, 1, 2, 3...,
# so a gap is a deletion. Database triggers refuse UPDATE and DELETE (migration 0002) and, on
# PostgreSQL, TRUNCATE (0004); `sig` (0004) is the store's signature over the entry's number and hash.
audit_log = sa.Table(
    "audit_log", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("at", TS, nullable=False, index=True),
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
audit_log.append_column(sa.Column("sig", sa.String(88)))          # migration 0004

alerts = sa.Table(
    "alerts", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("read_id", sa.String(READ_ID_LEN), sa.ForeignKey("reads.read_id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("hotlist_entry_id", BigId, sa.ForeignKey("hotlist_entries.id", ondelete="SET NULL")),
    sa.Column("pattern", sa.String(PLATE_TEXT_MAX), nullable=False),           # copied: the entry may be removed later
    sa.Column("category", sa.String(32), nullable=False),
    sa.Column("plate", sa.String(PLATE_TEXT_MAX), nullable=False),
    sa.Column("site", sa.String(ID_MAX), nullable=False),
    sa.Column("captured_at", TS, nullable=False),
    sa.Column("raised_at", TS, nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False),            # unverified | confirmed | not_confirmed
    sa.Column("verified_by", sa.String(64)),
    sa.Column("verified_at", TS),
    sa.Column("verification_note", sa.String(1000)),
)

# -- the console (migration 0003) --------------------------------------------------------------------
# an entry names the policy purpose and the case it was entered under; an alert copies what an officer
# needs at the roadside and what its views are logged under (the entry may be removed later).
hotlist_entries.append_column(sa.Column("purpose", sa.String(64)))
for _name, _size in (("unit_id", 64), ("lane", 32), ("direction", 16), ("note", 200), ("purpose", 64),
                     ("case_number", 40)):
    alerts.append_column(sa.Column(_name, sa.String(_size)))
sa.Index("ix_alerts_hotlist_entry", alerts.c.hotlist_entry_id)

legal_holds = sa.Table(
    "legal_holds", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("case_number", sa.String(40), nullable=False, index=True),
    sa.Column("reason", sa.String(1000), nullable=False),
    sa.Column("placed_by", sa.String(64), nullable=False),
    sa.Column("placed_at", TS, nullable=False),
    sa.Column("released_by", sa.String(64)),
    sa.Column("released_at", TS),
    sa.Column("release_reason", sa.String(1000)),
)

# No ON DELETE: while a link exists the database itself refuses to delete the read.
legal_hold_reads = sa.Table(
    "legal_hold_reads", metadata,
    sa.Column("hold_id", BigId, sa.ForeignKey("legal_holds.id"), primary_key=True),
    sa.Column("read_id", sa.String(READ_ID_LEN), sa.ForeignKey("reads.read_id"), primary_key=True),
    sa.Index("ix_legal_hold_reads_read", "read_id"),
)

retention_runs = sa.Table(
    "retention_runs", metadata,
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
    sa.Column("status", sa.String(16), nullable=False),            # running | done | failed
    sa.Column("error", sa.String(1000)),
)

agencies = sa.Table(
    "agencies", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("kind", sa.String(32), nullable=False),              # law_enforcement | prosecutorial | other
    sa.Column("california_public", sa.Boolean, nullable=False),
    sa.Column("agreement_signed_on", sa.Date),
    sa.Column("agreement_expires_on", sa.Date),
    sa.Column("added_by", sa.String(64), nullable=False),
    sa.Column("added_at", TS, nullable=False),
)

share_requests = sa.Table(
    "share_requests", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("agency_id", BigId, sa.ForeignKey("agencies.id"), nullable=False, index=True),
    sa.Column("requester_name", sa.String(200), nullable=False),
    sa.Column("purpose", sa.String(1000), nullable=False),
    sa.Column("case_number", sa.String(40)),
    sa.Column("query", JSONType, nullable=False),                  # what is asked for: plate, from, to, sites
    sa.Column("received_at", TS, nullable=False),
    sa.Column("recorded_by", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),            # pending | approved | refused | released
    sa.Column("basis", sa.String(32)),                             # agreement | written_request
    sa.Column("decided_by", sa.String(64)),
    sa.Column("decided_at", TS),
    sa.Column("decision_reason", sa.String(1000)),
    sa.Column("released_by", sa.String(64)),
    sa.Column("released_at", TS),
    sa.Column("released_count", sa.Integer),
)

# -- hardening (migration 0004) ----------------------------------------------------------------------
# retention counts from when the store received a read, never from the unit's clock
sa.Index("ix_reads_received_at", reads.c.received_at)
