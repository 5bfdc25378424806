"""Opening a home's database for a command, only once `alpr-central init` has made it.

Without this check a command on a home never initialised either creates an empty SQLite file and then
fails on a missing table, or shows a driver's traceback; this says what to run instead.
"""
from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from central import db
from central.config import resolve_db, resolve_home


class NotInitialised(Exception):
    """The home or its database was never set up by `alpr-central init`; the message says what to run."""


def display_url(url: str) -> str:
    return sa.engine.make_url(db.normalise_url(url)).render_as_string(hide_password=True)


def _advice(home: Path, db_option: str | None) -> str:
    return f"run alpr-central init --home {home}" + (f" --db {db_option}" if db_option else "")


def engine_for(home_option: str | None, db_option: str | None) -> sa.Engine:
    """An engine on the home's database, or NotInitialised: a SQLite file that is not there is not
    created empty, and a database without the store's tables is not queried."""
    home = resolve_home(home_option)
    url = resolve_db(home, db_option)
    parsed = sa.engine.make_url(db.normalise_url(url))
    if parsed.get_backend_name() == "sqlite" and not (parsed.database and Path(parsed.database).is_file()):
        raise NotInitialised(f"no database at {display_url(url)}: {_advice(home, db_option)}")
    engine = db.make_engine(url)
    if db.current_revision(engine) is None:
        engine.dispose()
        raise NotInitialised(f"the database at {display_url(url)} holds no central store: {_advice(home, db_option)}")
    return engine


def check_keys(home_option: str | None) -> None:
    home = resolve_home(home_option)
    if not (home / "keys").is_dir():
        raise NotInitialised(f"{home} has no keys: {_advice(home, None)}")
