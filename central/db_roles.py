"""Two database roles on PostgreSQL: the owner, which runs migrations (`alpr-central init`) and owns
every table, and the serving role that `alpr-central serve` connects as.

The serving role gets what the API needs and no more on the audit log: SELECT and INSERT on
`audit_log` but not UPDATE, DELETE or TRUNCATE, and, not owning any table, it cannot ALTER a table or
disable the append-only triggers. Other tables it may read and write (reads are purged, sessions
ended, users changed). `grant_serving` is idempotent and is re-run by every `init`, so tables added
by a later migration are granted too. SQLite has no roles: whoever can write the file can do anything.
"""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from central.db import normalise_url
from central.schema import metadata

APPEND_ONLY = ("audit_log",)


def _ident(conn: sa.Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def grant_serving(owner: sa.Engine, serve_url: str) -> str:
    """Create (if missing) the role named in `serve_url` with its password, and grant it the serving
    rights on the owner's database. Returns the role name."""
    url = make_url(normalise_url(serve_url))
    if not url.drivername.startswith("postgresql"):
        raise ValueError("--serve-url: a postgresql:// URL (SQLite has no database roles)")
    role = url.username
    if not role:
        raise ValueError("--serve-url: name the serving role, postgresql://ROLE:PASSWORD@host/db")
    with owner.begin() as conn:
        if conn.dialect.name != "postgresql":
            raise ValueError("--serve-url needs --db to be PostgreSQL")
        if role == conn.execute(sa.text("SELECT current_user")).scalar_one():
            raise ValueError(f"--serve-url: the serving role must not be the owner ({role})")
        q = _ident(conn, role)
        exists = conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first()
        if not exists:
            conn.exec_driver_sql(f"CREATE ROLE {q} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE")
        if url.password:
            # a utility statement takes no bind parameters: the password goes in as a quoted literal
            conn.exec_driver_sql(f"ALTER ROLE {q} PASSWORD " + _literal(str(url.password)))
        database = conn.execute(sa.text("SELECT current_database()")).scalar_one()
        conn.exec_driver_sql(f"GRANT CONNECT ON DATABASE {_ident(conn, database)} TO {q}")
        conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA public TO {q}")
        for table in metadata.sorted_tables:
            t = _ident(conn, table.name)
            conn.exec_driver_sql(f"REVOKE ALL ON {t} FROM {q}")
            rights = "SELECT, INSERT" if table.name in APPEND_ONLY else "SELECT, INSERT, UPDATE, DELETE"
            conn.exec_driver_sql(f"GRANT {rights} ON {t} TO {q}")
        conn.exec_driver_sql(f"GRANT SELECT ON alembic_version TO {q}")
        conn.exec_driver_sql(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {q}")
    return role


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def table_rights(engine: sa.Engine, role: str, table: str) -> set[str]:
    """The privileges `role` holds on `table` (for checks and tests)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT privilege_type FROM information_schema.role_table_grants "
                                    "WHERE grantee = :r AND table_name = :t"), {"r": role, "t": table})
        return {r[0] for r in rows}
