"""The URL paths a unit calls on the central store, appended to the store's base URL.

The path is part of what a unit signs (`wire.signing`), so both sides must spell it the same.
"""
from __future__ import annotations

ENROL = "/v1/enroll"          # POST, unsigned: the one-time token is the credential
READS = "/v1/reads"           # POST, signed: a batch of sealed reads (`wire.batch`)
HEARTBEAT = "/v1/heartbeat"   # POST, signed: the unit's health; the answer carries the hot list's ETag
HOTLIST = "/v1/hotlist"       # GET, signed: the hot list, signed by the central key

SIGNED = (("POST", READS), ("POST", HEARTBEAT), ("GET", HOTLIST))
