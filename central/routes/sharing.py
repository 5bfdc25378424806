"""Agencies on file and sharing requests (policy 462.7, Civil Code 1798.90.55)."""
from __future__ import annotations

from datetime import date
from typing import Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from central import access, sharing
from central.routes.deps import actor_for, engine
from central.sessions import Actor

router = APIRouter(prefix="/v1", tags=["sharing"])


class AgencyIn(BaseModel):
    name: str
    kind: Literal["law_enforcement", "prosecutorial", "other"]
    california_public: bool = Field(description="a public agency in California (Civil Code 1798.90.5)")
    agreement_signed_on: date | None = None
    agreement_expires_on: date | None = None


class AgreementIn(BaseModel):
    agreement_signed_on: date | None
    agreement_expires_on: date | None = None


class Wanted(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    plate: str | None = None
    from_: str | None = Field(None, alias="from")
    to: str | None = None
    sites: list[str] = Field(default_factory=list)


class RequestIn(BaseModel):
    agency_id: int
    requester_name: str = Field(description="462.7(b)(2): the person requesting")
    purpose: str = Field(description="462.7(b)(3): the intended purpose")
    case_number: str | None = None
    query: Wanted = Field(description="the data asked for")


class DecisionIn(BaseModel):
    approve: bool
    reason: str


@router.get("/agencies", summary="Agencies on file")
def agencies(_actor: Actor = Depends(actor_for("agencies.read")), db: sa.Engine = Depends(engine)) -> list[dict[str, Any]]:
    return sharing.list_agencies(db)


@router.post("/agencies", status_code=201, summary="Put an agency on file")
def add_agency(body: AgencyIn, actor: Actor = Depends(actor_for("agencies.manage")),
               db: sa.Engine = Depends(engine)) -> dict[str, Any]:
    return sharing.add_agency(db, actor, body.name, body.kind, body.california_public, body.agreement_signed_on,
                              body.agreement_expires_on)


@router.put("/agencies/{agency_id}/agreement", summary="Record a participating-agency agreement")
def agreement(agency_id: int, body: AgreementIn, actor: Actor = Depends(actor_for("agencies.manage")),
              db: sa.Engine = Depends(engine)) -> dict[str, Any]:
    return sharing.set_agreement(db, actor, agency_id, body.agreement_signed_on, body.agreement_expires_on)


@router.get("/sharing/requests", summary="Sharing requests, decisions and releases on file")
def requests_(status: str | None = None, _actor: Actor = Depends(actor_for("sharing.read")),
              db: sa.Engine = Depends(engine)) -> list[dict[str, Any]]:
    return sharing.list_requests(db, status)


@router.post("/sharing/requests", status_code=201, summary="Record a written request (refused at once, with the "
             "reason, if the agency is not eligible)")
def record(body: RequestIn, actor: Actor = Depends(actor_for("sharing.request")),
           db: sa.Engine = Depends(engine)) -> dict[str, Any]:
    return sharing.record_request(db, actor, body.agency_id, body.requester_name, body.purpose,
                                  body.query.model_dump(by_alias=True), body.case_number)


@router.get("/sharing/requests/{request_id}", summary="One request")
def get_request(request_id: int, _actor: Actor = Depends(actor_for("sharing.read")),
                db: sa.Engine = Depends(engine)) -> dict[str, Any]:
    return sharing.get_request(db, request_id)


@router.post("/sharing/requests/{request_id}/decision", summary="Approve or refuse (commander or designee only)")
def decide(request_id: int, body: DecisionIn, request: Request, actor: Actor = Depends(actor_for("sharing.decide")),
           db: sa.Engine = Depends(engine)) -> dict[str, Any]:
    with access.audited_refusals(db, actor, "sharing.decide", {"method": "POST", "path": request.url.path}):
        return sharing.decide(db, actor, request_id, body.approve, body.reason)


@router.post("/sharing/requests/{request_id}/release", summary="Release the data of an approved request (once)")
def release(request_id: int, request: Request, actor: Actor = Depends(actor_for("sharing.release")),
            db: sa.Engine = Depends(engine)) -> dict[str, Any]:
    with access.audited_refusals(db, actor, "sharing.release", {"method": "POST", "path": request.url.path}):
        return sharing.release(db, actor, request_id)
