"""The wire contract between a unit and the central store: what both sides must agree on, in one place.

- `wire.read`: the read record (schema v1), its validation, the lane directions, and the limits
  (field lengths) that the central store's columns are sized from;
- `wire.seal`: sealing a read to the store's X25519 key (the envelope);
- `wire.signing`: a unit's Ed25519 signature on each request;
- `wire.batch`: a batch of sealed reads and the per-read verdicts (stored, duplicate, rejected);
- `wire.hotlist`: the signed hot-list document units download;
- `wire.patterns`: the plate-pattern language of hot lists and searches;
- `wire.paths`: the URL paths;
- `wire.times`: the one time format (ISO-8601 UTC, milliseconds, Z).

It imports neither `unit` nor `central` (a test checks this) and needs only `cryptography`, which is
all a bare `pip install` of the project pulls; the `unit` and `central` extras add each role's own.
"""
