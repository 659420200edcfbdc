"""An unauthenticated health check, for compose health checks, load balancers and the demo.

It takes a database connection and runs ``SELECT 1`` (within the API's pool timeout), so a
replica whose store is unreachable or whose pool is exhausted answers 503 and is taken out
of rotation, instead of answering 200 while every real request fails (issue 15, item 4).
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.database import database_ok
from api.deps import EngineDep

router = APIRouter(tags=["health"])


class HealthOut(BaseModel):
    status: str
    database: str


@router.get("/health", response_model=HealthOut, responses={503: {"model": HealthOut}})
def health(engine: EngineDep) -> HealthOut | JSONResponse:
    if database_ok(engine):
        return HealthOut(status="ok", database="ok")
    return JSONResponse(
        status_code=503,
        headers={"Retry-After": "5"},
        content=HealthOut(status="unavailable", database="unreachable").model_dump(),
    )
