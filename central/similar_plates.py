"""Similar-plate search: the plates a reader may have made of the one an officer is looking for.

A plate reader confuses characters that look alike (0/O/D/Q, 1/I/L/T, 2/Z, 5/S, 8/B, 6/G), and now and
then drops a character or reads one that is not there (a bolt, a frame sticker). A similar search for
8OB123 therefore also finds B08123 and 808I23 (look-alikes at any number of places), 8OB23 and OB123
(one character missing) and 8OB1234 or X8OB123 (one extra). The two kinds are not combined: B08I234
(look-alikes and an extra character) is not similar to 8OB123. Combining them would multiply the
spellings by 36 letters and digits at every place (147,000 for 6TRL208 instead of 800), and the
look-up would no longer fit the search's time budget on millions of reads.

The match needs no column or index of its own: the plate is expanded here into every spelling it
stands for (`variants`), and the store looks those up in the plate index (`plate = ANY(array)` on
PostgreSQL, `IN (SELECT value FROM json_each(?))` on SQLite). A plate with more than `MAX_VARIANTS`
spellings (ten look-alike characters give a million) is compared by folded form instead
(`canonical_sql`), which reads every row the other filters leave: fine with a time window or a
site, and cut off by the search timeout otherwise, like a pattern without three known characters in
a row.
"""
from __future__ import annotations

import itertools
import json
import math
import string
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles

from wire.read import PLATE_MAX

GROUPS = ("0ODQ", "1ILT", "2Z", "5S", "8B", "6G")
GROUP_OF = {c: g for g in GROUPS for c in g}
ALPHABET = string.ascii_uppercase + string.digits
MAX_VARIANTS = 20_000


class TooMany(ValueError):
    """The plate stands for more spellings than an index lookup should take."""


def canonical(plate: str) -> str:
    """Each character replaced by the first of its group (B08123 and 8OB123 both give 808123)."""
    return "".join(GROUP_OF.get(c, c)[0] for c in plate)


def variants(plate: str, limit: int | None = None) -> list[str]:
    """Every plate similar to `plate` (itself included), sorted; TooMany past `limit` (MAX_VARIANTS).

    Look-alikes: each character any member of its group. One missing: the plate with one place left
    out. One extra: any letter or digit at any place. Plates are 1 to PLATE_MAX characters.
    """
    limit = MAX_VARIANTS if limit is None else limit
    groups = [GROUP_OF.get(c, c) for c in plate]
    if math.prod(len(g) for g in groups) > limit:
        raise TooMany(f"{plate} has {math.prod(len(g) for g in groups):,} look-alike spellings")
    out = set(map("".join, itertools.product(*groups)))
    if len(plate) > 1:
        out.update(plate[:i] + plate[i + 1:] for i in range(len(plate)))
    if len(plate) < PLATE_MAX:
        out.update(plate[:j] + c + plate[j:] for j in range(len(plate) + 1) for c in ALPHABET)
    return sorted(out)


def _canon_expr(column: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
    expr: sa.ColumnElement[str] = column
    for group in GROUPS:
        for c in group[1:]:
            expr = sa.func.replace(expr, c, group[0])
    return expr


def canonical_sql(column: sa.ColumnElement[str], plate: str) -> sa.ColumnElement[bool]:
    """The same match as `variants`, with look-alikes compared by folded form (no index serves that)."""
    clauses = [_canon_expr(column) == canonical(plate)]
    if len(plate) > 1:
        clauses.append(column.in_(sorted({plate[:i] + plate[i + 1:] for i in range(len(plate))})))
    if len(plate) < PLATE_MAX:
        clauses += [column.like(plate[:j] + "_" + plate[j:]) for j in range(len(plate) + 1)]
    return sa.or_(*clauses)


class _InList(sa.sql.expression.ColumnElement):
    """`column IN values` with the values as one parameter (an array on PostgreSQL, JSON on SQLite), so
    tens of thousands of plates cost one bind, and the planner still probes the plate index."""
    type = sa.Boolean()
    inherit_cache = False

    def __init__(self, column: sa.ColumnElement[Any], values: list[str]) -> None:
        self.column, self.values = column, values


@compiles(_InList, "postgresql")
def _in_list_pg(element: _InList, compiler: Any, **kw: Any) -> str:
    values = sa.bindparam(None, element.values, type_=postgresql.ARRAY(sa.String()))
    return f"{compiler.process(element.column, **kw)} = ANY({compiler.process(values, **kw)})"


@compiles(_InList)
def _in_list_other(element: _InList, compiler: Any, **kw: Any) -> str:
    values = sa.bindparam(None, json.dumps(element.values), type_=sa.String())
    return f"{compiler.process(element.column, **kw)} IN (SELECT value FROM json_each({compiler.process(values, **kw)}))"


def similar_to(column: sa.ColumnElement[str], plate: str) -> sa.ColumnElement[bool]:
    """WHERE clause: the plate or any similar one; by the plate index when the set is small enough."""
    try:
        return _InList(column, variants(plate))
    except TooMany:
        return canonical_sql(column, plate)
