"""Console: hot-list entries carry the policy purpose and case they were entered under, and their
free-text label is called `note` (the policy reason code stays `category`, which the API, the CLI and
CSV call "reason"); alerts carry the unit, lane, direction, label, purpose and case of what raised them.

Existing entries get the purpose that matches their reason; existing alerts are filled in from their
read and entry. Plain ALTER TABLE statements (no batch copy): on SQLite a table copy of
`hotlist_entries` would fire the ON DELETE SET NULL of `alerts.hotlist_entry_id`.

Revision ID: 0003
Revises: 0002
Create Date: 2027-01-10
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

PURPOSE_OF_CATEGORY = {"stolen_vehicle": "stolen_vehicle", "stolen_plate": "stolen_plate", "wanted": "wanted_vehicle",
                       "missing_person": "missing_person", "amber": "missing_person",
                       "investigation": "criminal_investigation"}
ALERT_COLUMNS = (("unit_id", 64), ("lane", 32), ("direction", 16), ("note", 200), ("purpose", 64), ("case_number", 40))


def upgrade() -> None:
    op.execute("ALTER TABLE hotlist_entries RENAME COLUMN reason TO note")
    op.add_column("hotlist_entries", sa.Column("purpose", sa.String(64)))
    cases = " ".join(f"WHEN '{c}' THEN '{p}'" for c, p in PURPOSE_OF_CATEGORY.items())
    op.execute(f"UPDATE hotlist_entries SET purpose = CASE category {cases} ELSE 'criminal_investigation' END")
    for name, size in ALERT_COLUMNS:
        op.add_column("alerts", sa.Column(name, sa.String(size)))
    for name in ("unit_id", "lane", "direction"):
        op.execute(f"UPDATE alerts SET {name} = (SELECT r.{name} FROM reads r WHERE r.read_id = alerts.read_id)")
    for name in ("note", "purpose", "case_number"):
        op.execute(f"UPDATE alerts SET {name} = (SELECT h.{name} FROM hotlist_entries h "
                   f"WHERE h.id = alerts.hotlist_entry_id)")
    op.create_index("ix_alerts_hotlist_entry", "alerts", ["hotlist_entry_id"])


def downgrade() -> None:
    op.drop_index("ix_alerts_hotlist_entry", "alerts")
    for name, _size in reversed(ALERT_COLUMNS):
        op.drop_column("alerts", name)
    op.drop_column("hotlist_entries", "purpose")
    op.execute("ALTER TABLE hotlist_entries RENAME COLUMN note TO reason")
