"""The access log (policy 462.5(a), Civil Code 1798.90.52): append-only and hash-chained.

Every search, view, export and alert view appends an entry naming who (username and agency), when,
what was queried, why (purpose, case or incident number) and how many results; so do the events an
auditor needs beside them (logins, failed logins, user and training changes, holds, purges, sharing).

Entries are numbered 1, 2, 3... by the writer while it holds a lock (PostgreSQL: a transaction-scoped
advisory lock; SQLite: BEGIN IMMEDIATE already serialises writers), and each stores
`hash = SHA-256(prev_hash || canonical JSON of the entry)`, the first with 64 zeros as prev_hash.
`verify` walks the entries by number and names the first that was edited, deleted or re-ordered.
Triggers in the database refuse UPDATE and DELETE on the table (migration 0002), so tampering takes
someone who can drop the trigger; the chain shows what they did. A whole tail rewritten or cut off is
caught by checking an earlier head (`verify(expect=...)`): keep the head that reports print.
The entry is appended in the same transaction as the access it records: no log, no access.

Beyond the chain (which anyone who can write the table can recompute): every process that holds the
store's keys signs each entry's number and hash (`sig`, Ed25519, the key in HOME/keys, never in the
database; `sign_with` registers it for an engine), and `central.checkpoints` signs the chain's head at
intervals and with every report, kept outside the database. `verify(checkpoint=..., public_key=...)`
then names what the chain alone cannot see: a log emptied, cut below the signed head, rewritten
(edited and re-hashed) up to it, or extended by entries the store did not sign (forged).
"""
from __future__ import annotations

import base64
import hashlib
import json
import weakref
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from central.clock import to_ms, utcnow
from central.schema import audit_log
from wire.times import aware, iso

GENESIS = "0" * 64
LOCK_KEY = 4625001                      # pg_advisory_xact_lock key for the audit chain
SYSTEM_AGENCY = "ALPR central store"
ACCESS_ACTIONS = ("search", "view", "export", "alert_view", "share_release", "hotlist_view", "audit_read", "report")
ENTRY_DOMAIN = b"alpr-audit-entry-v1\n"   # what an entry signature covers starts with this


class Signer(Protocol):
    def sign(self, data: bytes) -> str: ...          # base64 Ed25519 signature (central.keys.CentralKeys)


_SIGNERS: "weakref.WeakKeyDictionary[sa.Engine, Signer]" = weakref.WeakKeyDictionary()


def sign_with(engine: sa.Engine, signer: Signer | None) -> None:
    """Entries appended through `engine` from now on carry `signer`'s signature (None: stop)."""
    if signer is None:
        _SIGNERS.pop(engine, None)
    else:
        _SIGNERS[engine] = signer


def entry_message(entry_id: int, digest: str) -> bytes:
    return ENTRY_DOMAIN + f"{entry_id}:{digest}".encode("ascii")


def signature_ok(public_key: Ed25519PublicKey, message: bytes, sig: str | None) -> bool:
    if not sig:
        return False
    try:
        public_key.verify(base64.b64decode(sig, validate=True), message)
        return True
    except (InvalidSignature, ValueError):
        return False


class Who(Protocol):
    username: str
    agency: str


@dataclass(frozen=True)
class Principal:
    username: str
    agency: str


def system(name: str) -> Principal:
    """Who an action from the command line or the scheduler is recorded under."""
    return Principal(name, SYSTEM_AGENCY)


def canonical(entry: dict[str, Any]) -> bytes:
    """The hashed form: fixed keys, sorted, no spaces, times as ISO text with milliseconds."""
    doc = {"at": iso(entry["at"]), "username": entry["username"], "agency": entry["agency"],
           "action": entry["action"], "query": entry["query"], "purpose": entry["purpose"],
           "case_number": entry["case_number"], "result_count": entry["result_count"]}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def entry_hash(prev_hash: str, entry: dict[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + canonical(entry)).hexdigest()


def _lock(conn: sa.Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})


def append(conn: sa.Connection, who: Who, action: str, query: dict[str, Any], *, purpose: str | None = None,
           case_number: str | None = None, result_count: int | None = None,
           at: datetime | None = None) -> int:
    """Append one entry inside the caller's transaction; returns its number."""
    _lock(conn)
    last = conn.execute(sa.select(audit_log.c.id, audit_log.c.hash).order_by(audit_log.c.id.desc()).limit(1)).first()
    entry = {"id": (last.id + 1) if last else 1, "at": to_ms(at or utcnow()), "username": who.username,
             "agency": who.agency, "action": action, "query": json.loads(json.dumps(query, default=str)),
             "purpose": purpose, "case_number": case_number, "result_count": result_count,
             "prev_hash": last.hash if last else GENESIS}
    entry["hash"] = entry_hash(entry["prev_hash"], entry)
    signer = _SIGNERS.get(conn.engine)
    if signer is not None:
        entry["sig"] = signer.sign(entry_message(entry["id"], entry["hash"]))
    conn.execute(audit_log.insert().values(**entry))
    return entry["id"]


@dataclass(frozen=True)
class SignedHead:
    """A head the store signed (`central.checkpoints`): entries 1..head_id hashed to head_hash."""
    at: str
    entries: int
    head_id: int | None
    head_hash: str | None


@dataclass
class Verdict:
    ok: bool
    entries: int
    head_id: int | None
    head_hash: str | None
    bad_id: int | None = None
    problem: str | None = None     # edited | deleted | reordered | broken | forged | emptied | cut | rewritten
    detail: str | None = None
    signed_head: dict[str, Any] | None = None     # the signed head checked against, if any

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def verify(engine: sa.Engine, expect: tuple[int, str] | None = None, *, checkpoint: SignedHead | None = None,
           public_key: Ed25519PublicKey | None = None) -> Verdict:
    """Walk the chain by number; stop at the first bad entry and say which and why.

    `expect` = (id, hash) of a head seen earlier (a report, a previous verify): the entry must still be
    there with that hash, which catches a tail cut off or rewritten from that point. `checkpoint` is
    the latest head the store signed (already checked against its signature): the log must still
    reach it with the same hash (else emptied, cut or rewritten). With `public_key`, each entry after
    that head must carry the store's signature (else forged); with no checkpoint, once one entry is
    signed every later one must be (entries from before signing began stay unsigned)."""
    prev_id, prev_hash, count = 0, GENESIS, 0
    anchor_ok = expect is None
    signed_from = checkpoint.head_id or 0 if checkpoint else None
    seen_signed = False
    head = checkpoint.__dict__ if checkpoint else None

    def bad(rid: int, problem: str, detail: str) -> Verdict:
        return Verdict(False, count, prev_id or None, prev_hash if prev_id else None, rid, problem, detail, head)

    with engine.connect() as conn:
        rows = conn.execution_options(yield_per=5000).execute(sa.select(audit_log).order_by(audit_log.c.id))
        for row in rows:
            count += 1
            rid = row.id
            if rid != prev_id + 1:
                return bad(rid, "deleted", f"entries {prev_id + 1}..{rid - 1} are missing before entry {rid}")
            if entry_hash(row.prev_hash, row._mapping) != row.hash:
                return bad(rid, "edited", f"entry {rid}: its content does not match its hash")
            if row.prev_hash != prev_hash:
                rows.close()
                follows = conn.execute(sa.select(audit_log.c.id).where(audit_log.c.hash == row.prev_hash)
                                       .limit(1)).scalar()
                if follows is not None:
                    return bad(rid, "reordered", f"entry {rid} follows entry {follows} in the chain, not entry {prev_id}")
                return bad(rid, "broken", f"entry {rid}: prev_hash does not match entry {prev_id} (an entry "
                                          "before it was edited and re-hashed, or replaced)")
            if checkpoint is not None and rid == checkpoint.head_id and row.hash != checkpoint.head_hash:
                return bad(rid, "rewritten", f"entry {rid} no longer has the hash the store signed at "
                                             f"{checkpoint.at} ({checkpoint.head_hash[:12]}...): the log was "
                                             f"edited and re-hashed at or before entry {rid}")
            if public_key is not None and (signed_from is None or rid > signed_from):
                if row.sig is None and (signed_from is not None or seen_signed):
                    return bad(rid, "forged", f"entry {rid} ({row.action} by {row.username}) is not signed by the "
                                              "store: it was written by someone without the store's key")
                if row.sig is not None:
                    if not signature_ok(public_key, entry_message(rid, row.hash), row.sig):
                        return bad(rid, "forged", f"entry {rid} ({row.action} by {row.username}): its signature "
                                                  "is not the store's: forged or altered")
                    seen_signed = True
            if expect is not None and rid == expect[0]:
                if row.hash != expect[1]:
                    return bad(rid, "edited", f"entry {rid} no longer has the expected head hash "
                                              f"{expect[1][:12]}... (the chain was rewritten from here or before)")
                anchor_ok = True
            prev_id, prev_hash = rid, row.hash
    if checkpoint is not None and checkpoint.head_id and prev_id < checkpoint.head_id:
        if count == 0:
            return bad(checkpoint.head_id, "emptied", f"the log is empty; the store signed a head of "
                                                      f"{checkpoint.entries} entries at {checkpoint.at}")
        return bad(prev_id + 1, "cut", f"the log ends at entry {prev_id}; the store signed a head at entry "
                                       f"{checkpoint.head_id} at {checkpoint.at}: entries {prev_id + 1}.."
                                       f"{checkpoint.head_id} at least were cut off")
    if not anchor_ok:
        return bad(expect[0], "deleted", f"the chain ends at entry {prev_id}; expected entry {expect[0]} is gone")
    return Verdict(True, count, prev_id or None, prev_hash if prev_id else None, signed_head=head)


def entries(engine: sa.Engine, *, start: datetime | None = None, end: datetime | None = None,
            username: str | None = None, action: str | None = None, after_id: int = 0,
            limit: int = 1000) -> list[dict[str, Any]]:
    query = sa.select(audit_log).where(audit_log.c.id > after_id).order_by(audit_log.c.id).limit(limit)
    if start:
        query = query.where(audit_log.c.at >= start)
    if end:
        query = query.where(audit_log.c.at <= end)
    if username:
        query = query.where(audit_log.c.username == username)
    if action:
        query = query.where(audit_log.c.action == action)
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [{**dict(r), "at": iso(aware(r["at"]))} for r in rows]
