"""Sharing ALPR data with other agencies (policy 462.7, Civil Code 1798.90.55).

Agencies on file have a kind (law enforcement, prosecutorial, other), whether they are a California
public agency, and a participating-agency agreement (signed, expires). A request records the agency,
the requester's name and the purpose, and what is asked for. The rules, all checked here:
- only law-enforcement or prosecutorial agencies that are California public agencies are eligible
  (462.7; Civil Code 1798.90.55(b) allows a public agency to share only with public agencies); a request
  from any other agency is refused when it is recorded, with the reason: it goes to the public-records
  process (policy manual 810);
- only the commander or designee approves or refuses (462.7(c)), with a reason; eligibility is checked
  again at the decision and again at release;
- the person who recorded a request can neither decide nor release it: a second person always reviews;
- data is released only for an approved request, once, and the release is an audited access;
- requests, decisions and releases stay on file (462.7(d)); nothing here deletes them.
The decision records its basis: a current participating-agency agreement (462.7(a)) or the written
request alone (462.7(b)).
"""
from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa

from central import audit
from central.clock import utcnow
from central.errors import ApiError
from central.purposes import SHARING_PURPOSE, check_case
from central.schema import agencies, read_images, reads, share_requests
from central.search import filters, read_doc, selection_from
from wire.times import iso

KINDS = ("law_enforcement", "prosecutorial", "other")
MAX_RELEASE = 10000
REFERRAL = ("refer to the public-records process (policy manual 810; Civil Code 1798.90.55)")


def _text(name: str, value: str | None, limit: int) -> str:
    value = (value or "").strip()
    if not value or len(value) > limit:
        raise ValueError(f"{name}: required, at most {limit} characters")
    return value


def add_agency(engine: sa.Engine, who: audit.Who, name: str, kind: str, california_public: bool,
               agreement_signed_on: date | None = None, agreement_expires_on: date | None = None) -> dict[str, Any]:
    name = _text("name", name, 200)
    if kind not in KINDS:
        raise ValueError(f"kind: one of {', '.join(KINDS)}")
    if agreement_expires_on and not agreement_signed_on:
        raise ValueError("agreement: an expiry needs a signing date")
    if agreement_signed_on and agreement_expires_on and agreement_expires_on <= agreement_signed_on:
        raise ValueError("agreement: expires must be after signed")
    with engine.begin() as conn:
        if conn.execute(sa.select(agencies.c.id).where(agencies.c.name == name)).first():
            raise ApiError(409, f"agency {name!r} is already on file")
        agency_id = conn.execute(agencies.insert().values(
            name=name, kind=kind, california_public=bool(california_public), agreement_signed_on=agreement_signed_on,
            agreement_expires_on=agreement_expires_on, added_by=who.username, added_at=utcnow())
            .returning(agencies.c.id)).scalar_one()
        audit.append(conn, who, "agency_added", {"agency": agency_id, "name": name, "kind": kind,
                                                 "california_public": bool(california_public)})
    return get_agency(engine, agency_id)


def set_agreement(engine: sa.Engine, who: audit.Who, agency_id: int, signed_on: date | None,
                  expires_on: date | None) -> dict[str, Any]:
    if expires_on and (not signed_on or expires_on <= signed_on):
        raise ValueError("agreement: expires must be after signed")
    with engine.begin() as conn:
        if not conn.execute(agencies.update().where(agencies.c.id == agency_id).values(
                agreement_signed_on=signed_on, agreement_expires_on=expires_on)).rowcount:
            raise ApiError(404, f"no agency {agency_id}")
        audit.append(conn, who, "agency_agreement", {"agency": agency_id, "signed": signed_on and signed_on.isoformat(),
                                                     "expires": expires_on and expires_on.isoformat()})
    return get_agency(engine, agency_id)


def _agreement_current(a: Any, day: date) -> bool:
    return bool(a.agreement_signed_on and a.agreement_signed_on <= day
                and (a.agreement_expires_on is None or a.agreement_expires_on >= day))


def ineligible_reason(a: Any) -> str | None:
    """Why data may not go to this agency, or None if it may."""
    if a.kind not in ("law_enforcement", "prosecutorial"):
        return f"{a.name} is not a law-enforcement or prosecutorial agency (462.7): {REFERRAL}"
    if not a.california_public:
        return (f"{a.name} is not a California public agency (Civil Code 1798.90.55(b) permits sharing only "
                f"with public agencies): {REFERRAL}")
    return None


def _agency_doc(a: Any) -> dict[str, Any]:
    today = utcnow().date()
    return {"id": a.id, "name": a.name, "kind": a.kind, "california_public": a.california_public,
            "agreement_signed_on": a.agreement_signed_on and a.agreement_signed_on.isoformat(),
            "agreement_expires_on": a.agreement_expires_on and a.agreement_expires_on.isoformat(),
            "agreement_current": _agreement_current(a, today), "eligible": ineligible_reason(a) is None,
            "added_by": a.added_by, "added_at": iso(a.added_at)}


def get_agency(engine: sa.Engine, agency_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(sa.select(agencies).where(agencies.c.id == agency_id)).first()
    if row is None:
        raise ApiError(404, f"no agency {agency_id}")
    return _agency_doc(row)


def list_agencies(engine: sa.Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [_agency_doc(r) for r in conn.execute(sa.select(agencies).order_by(agencies.c.name)).all()]


def record_request(engine: sa.Engine, who: audit.Who, agency_id: int, requester_name: str, purpose: str,
                   query: dict[str, Any], case_number: str | None = None) -> dict[str, Any]:
    """Put a written request on file; one from an ineligible agency is refused at once, with the reason."""
    requester_name = _text("requester_name", requester_name, 200)
    purpose = _text("purpose", purpose, 1000)
    case_number = check_case(case_number) if case_number else None
    selection = selection_from(query)
    stored_query = {k: v for k, v in selection.logged().items() if k in ("plate", "from", "to", "sites", "lane",
                                                                          "direction") and v}
    now = utcnow()
    with engine.begin() as conn:
        agency = conn.execute(sa.select(agencies).where(agencies.c.id == agency_id)).first()
        if agency is None:
            raise ApiError(404, f"no agency {agency_id}: put the agency on file first")
        refusal = ineligible_reason(agency)
        values: dict[str, Any] = dict(agency_id=agency_id, requester_name=requester_name, purpose=purpose,
                                      case_number=case_number, query=stored_query, received_at=now,
                                      recorded_by=who.username, status="pending")
        if refusal:
            values.update(status="refused", decided_by="(policy 462.7)", decided_at=now, decision_reason=refusal)
        request_id = conn.execute(share_requests.insert().values(**values).returning(share_requests.c.id)).scalar_one()
        audit.append(conn, who, "share_request", {"request": request_id, "agency": agency.name,
                                                  "requester": requester_name, "query": stored_query,
                                                  "status": values["status"]},
                     purpose=SHARING_PURPOSE, case_number=case_number)
    return get_request(engine, request_id)


def _locked_request(conn: sa.Connection, request_id: int, status: str, refusal: str) -> tuple[Any, Any]:
    """The request (locked until the transaction ends) and its agency; 404 if unknown, 409 unless
    it is in `status` (the message ends with `refusal`), so two decisions or releases cannot race."""
    row = conn.execute(sa.select(share_requests).where(share_requests.c.id == request_id).with_for_update()).first()
    if row is None:
        raise ApiError(404, f"no request {request_id}")
    if row.status != status:
        raise ApiError(409, f"request {request_id} is {row.status}{refusal}")
    agency = conn.execute(sa.select(agencies).where(agencies.c.id == row.agency_id)).one()
    return row, agency


def _not_recorder(row: Any, who: audit.Who, doing: str) -> None:
    if row.recorded_by == who.username:
        raise ApiError(403, f"refused: {who.username} recorded request {row.id} and may not {doing} it; "
                            "another person reviews it (462.7(c))")


def decide(engine: sa.Engine, who: audit.Who, request_id: int, approve: bool, reason: str) -> dict[str, Any]:
    reason = _text("reason", reason, 1000)
    now = utcnow()
    with engine.begin() as conn:
        row, agency = _locked_request(conn, request_id, "pending", ", not pending")
        _not_recorder(row, who, "approve or refuse")
        refusal = ineligible_reason(agency)
        if approve and refusal:
            raise ApiError(409, f"cannot approve: {refusal}")
        basis = "agreement" if _agreement_current(agency, now.date()) else "written_request"
        status = "approved" if approve else "refused"
        conn.execute(share_requests.update().where(share_requests.c.id == request_id).values(
            status=status, basis=basis if approve else None, decided_by=who.username, decided_at=now,
            decision_reason=reason))
        audit.append(conn, who, "share_decision", {"request": request_id, "agency": agency.name, "status": status,
                                                   "basis": basis if approve else None, "reason": reason},
                     purpose=SHARING_PURPOSE, case_number=row.case_number)
    return get_request(engine, request_id)


def release(engine: sa.Engine, who: audit.Who, request_id: int) -> dict[str, Any]:
    """Hand over the data for an approved request to an agency still eligible; once, and logged."""
    now = utcnow()
    with engine.begin() as conn:
        row, agency = _locked_request(conn, request_id, "approved",
                                      ": data is released only for an approved request")
        _not_recorder(row, who, "release")
        refusal = ineligible_reason(agency)
        if refusal:
            raise ApiError(409, f"cannot release: {refusal}")
        selection = selection_from(row.query)
        found = conn.execute(sa.select(reads).where(*filters(selection)).order_by(reads.c.captured_at)
                             .limit(MAX_RELEASE + 1)).mappings().all()
        if len(found) > MAX_RELEASE:
            raise ApiError(413, f"the request matches more than {MAX_RELEASE} reads: narrow it and ask again")
        ids = [r["read_id"] for r in found]
        crops = dict(conn.execute(sa.select(read_images.c.read_id, read_images.c.jpeg).where(
            read_images.c.read_id.in_(ids), read_images.c.kind == "crop")).all()) if ids else {}
        conn.execute(share_requests.update().where(share_requests.c.id == request_id).values(
            status="released", released_by=who.username, released_at=now, released_count=len(found)))
        audit.append(conn, who, "share_release", {"request": request_id, "agency": agency.name, "query": row.query},
                     purpose=SHARING_PURPOSE, case_number=row.case_number, result_count=len(found))
    data = [read_doc(r, {"crop": crops[r["read_id"]]} if r["read_id"] in crops else {}) for r in found]
    return {"request": get_request(engine, request_id), "reads": data}


def _request_doc(r: Any) -> dict[str, Any]:
    return {"id": r.id, "agency_id": r.agency_id, "agency": r.name, "requester_name": r.requester_name,
            "purpose": r.purpose, "case_number": r.case_number, "query": r.query, "received_at": iso(r.received_at),
            "recorded_by": r.recorded_by, "status": r.status, "basis": r.basis, "decided_by": r.decided_by,
            "decided_at": iso(r.decided_at), "decision_reason": r.decision_reason, "released_by": r.released_by,
            "released_at": iso(r.released_at), "released_count": r.released_count}


def _requests_query() -> sa.Select:
    return (sa.select(share_requests, agencies.c.name).join(agencies, agencies.c.id == share_requests.c.agency_id)
            .order_by(share_requests.c.id))


def get_request(engine: sa.Engine, request_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(_requests_query().where(share_requests.c.id == request_id)).first()
    if row is None:
        raise ApiError(404, f"no request {request_id}")
    return _request_doc(row)


def list_requests(engine: sa.Engine, status: str | None = None, start=None, end=None) -> list[dict[str, Any]]:
    query = _requests_query()
    if status:
        query = query.where(share_requests.c.status == status)
    if start:
        query = query.where(sa.or_(share_requests.c.received_at >= start, share_requests.c.decided_at >= start))
    if end:
        query = query.where(share_requests.c.received_at <= end)
    with engine.connect() as conn:
        return [_request_doc(r) for r in conn.execute(query).all()]

